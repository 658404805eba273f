"""The ``paper`` profile is the released V-GPS recipe (issue 17, item 6; docs/paper_recipe.md):
the architecture, optimiser, data and evaluation options it switches on behave as the released
code's, and none of them changes anything while left at its default."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.data_helpers import HashEncoder, copy_tiny
from vgps.agents import StepSampler, calql, load_critic, train
from vgps.agents.common import adam
from vgps.agents.synthetic import random_transitions
from vgps.config import CriticConfig, DataConfig, get_profile
from vgps.nets.critic import CriticNet
from vgps.nets.encoders import ResNetEncoder, add_spatial_coordinates, kernel_inits


def test_spatial_coordinates_are_the_released_grid():
    x = jnp.zeros((2, 5, 7, 3))
    out = np.asarray(add_spatial_coordinates(x))
    # V-GPS jaxrl_m/vision/resnet_v1.py AddSpatialCoordinates, written out with numpy
    grid = np.stack(np.meshgrid(*[np.arange(s) / (s - 1) * 2 - 1 for s in (5, 7)]),
                    axis=-1).transpose(1, 0, 2)
    assert out.shape == (2, 5, 7, 5)
    np.testing.assert_allclose(out[0, :, :, 3:], grid, atol=1e-6)
    np.testing.assert_allclose(out[1, :, :, 3:], grid, atol=1e-6)
    assert out[0, 0, 0, 3] == -1 and out[0, -1, 0, 3] == 1          # channel 3: the row
    assert out[0, 0, 0, 4] == -1 and out[0, 0, -1, 4] == 1          # channel 4: the column


def _released_resnet18():
    return ResNetEncoder((2, 2, 2, 2), act="swish", max_groups=4, gn_epsilon=1e-5,
                         spatial_coordinates=True, weight_init="vgps")


def test_released_resnet_reads_five_channels_and_uses_four_groups():
    obs = {"image": np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), np.uint8)}
    lang = np.ones((2, 8), np.float32)
    params = _released_resnet18().init(jax.random.PRNGKey(0), obs, lang)["params"]
    assert params["stem_conv"]["kernel"].shape == (7, 7, 5, 64)     # 3 colours + (row, column)
    # GroupNorm(4) normalises over groups of C/4 channels (numpy), which 32 groups would not
    x = np.random.default_rng(1).normal(size=(1, 4, 4, 64)).astype(np.float32)
    g = x.reshape(1, 4, 4, 4, 16)
    want = ((g - g.mean(axis=(1, 2, 4), keepdims=True))
            / np.sqrt(g.var(axis=(1, 2, 4), keepdims=True) + 1e-5)).reshape(x.shape)
    np.testing.assert_allclose(_group_norm(4, x), want, atol=1e-4)
    assert not np.allclose(_group_norm(32, x), want, atol=1e-2)
    # and the block really uses it: the encoder's GroupNorm modules run with 4 groups
    from vgps.nets.encoders import _groups
    assert _groups(64, 4) == 4 and _groups(512, 4) == 4


def _group_norm(groups, x):
    import flax.linen as nn
    m = nn.GroupNorm(groups, epsilon=1e-5)
    return np.asarray(m.apply(m.init(jax.random.PRNGKey(0), x), x))


def test_vgps_initialisers_are_kaiming_convs_and_xavier_dense():
    conv, dense = kernel_inits("vgps")
    k = np.asarray(conv["kernel_init"](jax.random.PRNGKey(0), (3, 3, 64, 64)))
    assert k.std() == pytest.approx(np.sqrt(2.0 / (3 * 3 * 64)), rel=0.05)   # kaiming normal
    w = np.asarray(dense["kernel_init"](jax.random.PRNGKey(0), (256, 256)))
    bound = np.sqrt(6.0 / 512)
    assert np.abs(w).max() <= bound and w.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    assert kernel_inits("flax") == ({}, {})
    with pytest.raises(ValueError, match="weight_init"):
        kernel_inits("he")


def test_shared_q_output_is_one_dense_after_two_heads():
    cfg = CriticConfig(shared_q_output=True, activation="swish", weight_init="vgps",
                       hidden_dims=(16, 16), encoder_dims=(16,))
    obs, lang = {"state": np.ones((3, 5), np.float32)}, np.ones((3, 512), np.float32)
    act = np.random.default_rng(0).normal(size=(3, 4, 7)).astype(np.float32)
    net = CriticNet(cfg)
    p = net.init(jax.random.PRNGKey(0), obs, lang, act[:, 0])["params"]
    assert p["q_out"]["kernel"].shape == (16, 1)                     # one output layer ...
    assert "out" not in p["heads"]["mlp"]                            # ... none per head
    assert p["heads"]["dense_0_z"]["kernel"].shape[0] == 2           # two heads below it
    q = np.asarray(net.apply({"params": p}, obs, lang, act))
    assert q.shape == (2, 3, 4) and not np.allclose(q[0], q[1])
    # by hand: swish hidden layers of each head, then the shared Dense(1)
    z = net.apply({"params": p}, obs, lang, method=CriticNet.encode)
    h = p["heads"]
    for e in range(2):
        hz = z @ h["dense_0_z"]["kernel"][e] + h["dense_0_z"]["bias"][e]
        x = jax.nn.swish(hz[:, None] + np.einsum("bka,ah->bkh", act, h["dense_0_a"]["kernel"][e]))
        d1 = h["mlp"]["dense_0"]
        x = jax.nn.swish(x @ d1["kernel"][e] + d1["bias"][e])
        want = (x @ p["q_out"]["kernel"] + p["q_out"]["bias"])[..., 0]
        np.testing.assert_allclose(q[e], want, rtol=1e-5, atol=1e-5)


def test_warmup_rises_linearly_then_stays_and_zero_warmup_is_plain_adam():
    g = {"w": jnp.ones(3)}
    tx = adam(1e-3, warmup_steps=10)
    st, sizes = tx.init(g), []
    for _ in range(15):
        u, st = tx.update(g, st, g)
        sizes.append(float(-u["w"][0]))
    np.testing.assert_allclose(sizes[:11], np.arange(11) * 1e-4, rtol=1e-4, atol=1e-12)  # lr·count/10
    np.testing.assert_allclose(sizes[11:], 1e-3, rtol=1e-4)
    plain, ours = optax.adam(1e-3), adam(1e-3)
    assert jax.tree.structure(plain.init(g)) == jax.tree.structure(ours.init(g))
    clipped = adam(1e-3, clip=1.0)
    assert isinstance(clipped.init(g)[0], optax.EmptyState)        # clip_by_global_norm first


def test_temperature_has_its_own_learning_rate():
    batch = random_transitions(8, state_dim=4)
    out = {}
    for lr in (None, 3e-4):
        cfg = CriticConfig(calql_policy="sac", hidden_dims=(16,), encoder_dims=(16,),
                           behavior_hidden_dims=(16,), temperature_lr=lr, num_steps=1)
        agent = calql.make(cfg)
        st = agent.init(jax.random.PRNGKey(0), batch)
        st, _ = jax.jit(agent.phases[0].update)(st, batch)
        out[lr] = abs(float(st["log_alpha"]["params"]))               # log(1) = 0 before
    assert out[None] == pytest.approx(1e-4, rel=1e-3)                # Adam's first step = lr
    assert out[3e-4] == pytest.approx(3e-4, rel=1e-3)


@pytest.mark.parametrize("which", ["online", "target"])
def test_steer_params_choose_what_critic_msgpack_holds(tmp_path, which):
    from vgps.data.normalize import ActionNormalizer
    cfg = CriticConfig(hidden_dims=(16,), encoder_dims=(16,), behavior_hidden_dims=(16,),
                       batch_size=8, num_steps=6, behavior_steps=2, log_every=2,
                       checkpoint_every=4, steer_params=which)
    data = random_transitions(64, state_dim=4)
    norm = ActionNormalizer(np.zeros(7), np.ones(7), np.ones(7, bool))
    res = train(cfg, StepSampler(data, 8, seed=0, normalizer=norm), tmp_path, progress=False)
    key = "params" if which == "online" else "target_params"
    other = "target_params" if which == "online" else "params"
    got = jax.tree.leaves(load_critic(tmp_path).params)
    for a, b in zip(got, jax.tree.leaves(res.state["critic"][key])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(not np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(got, jax.tree.leaves(res.state["critic"][other])))
    (tmp_path / "critic.msgpack").unlink()                           # the checkpoint fallback
    for a, b in zip(jax.tree.leaves(load_critic(tmp_path).params),
                    jax.tree.leaves(res.state["critic"][key])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_balance_weights_multiply_by_dataset_size(tmp_path, monkeypatch):
    from vgps.data.loader import load_training_data
    monkeypatch.setenv("VGPS_ARTIFACTS", str(tmp_path / "artifacts"))
    dirs = [copy_tiny(tmp_path, "bridge_tiny"), copy_tiny(tmp_path, "fractal_tiny")]
    kw = dict(obs_keys=("state",), batch_size=8, backend="memory", encoder=HashEncoder())
    plain = load_training_data(dirs, None, DataConfig(), **kw)
    balanced = load_training_data(dirs, None, DataConfig(balance_weights=True), **kw)
    n = np.asarray(plain.num_transitions, np.float64)
    assert list(plain.weights) == [1.0, 0.54]
    np.testing.assert_allclose(balanced.weights, [1.0 * n[0], 0.54 * n[1]])
    assert plain.normalizer != balanced.normalizer                    # pooled by the mixture


def test_paper_profile_is_the_released_recipe():
    from vgps.agents.runs import critic_variant
    p = get_profile("paper")
    c, d, e = p.critic, p.data, p.eval
    assert (c.encoder, c.activation, c.gn_groups, c.gn_epsilon) == ("resnet34", "swish", 4, 1e-5)
    assert c.spatial_coordinates and c.shared_q_output and c.weight_init == "vgps"
    assert (c.warmup_steps, c.temperature_lr, c.steer_params) == (2000, 3e-4, "target")
    assert (c.batch_size, c.num_steps, c.input_image_size) == (256, 500_000, 256)
    assert c.resize_method == "lanczos3"
    assert d.balance_weights and dict(d.mix_weights)["fractal"] == 0.54087122203
    assert (d.brightness, d.contrast, d.saturation) == (0.1, (0.9, 1.1), (0.9, 1.1))
    assert (e.fixed_K, e.fixed_beta, e.widowx_sticky_steps) == (50, 1.0, 3)
    assert critic_variant(p, "calql_sac").critic.calql_policy == "sac"
    assert critic_variant(p, "calql").critic.calql_policy == "behavior"   # names keep meaning
    iql = critic_variant(p, "iql").critic
    assert (iql.algorithm, iql.tau, iql.negative_relabel_fraction, iql.num_steps) == \
        ("iql", 0.002, 0.1, 200_000)
    assert iql.grad_clip == 1.0 and critic_variant(p, "calql").critic.grad_clip is None
    # the other profiles keep every new option at its neutral default
    for name in ("smoke", "default"):
        q = get_profile(name)
        assert q.critic_overrides == {} and q.eval.widowx_sticky_steps == 1
        neutral = CriticConfig()
        for f in ("activation", "gn_groups", "gn_epsilon", "spatial_coordinates", "weight_init",
                  "shared_q_output", "warmup_steps", "temperature_lr", "grad_clip",
                  "steer_params", "resize_method"):
            assert getattr(q.critic, f) == getattr(neutral, f), (name, f)
        assert not q.data.balance_weights


def test_paper_critic_trains_at_a_small_size():
    """The released architecture and optimisers, shrunk (ResNet-18 at 32 px, batch 4): a few
    updates run, stay finite and move the parameters."""
    p = get_profile("paper")
    cfg = dataclasses.replace(p.critic, encoder="resnet18", input_image_size=None,
                              calql_policy="sac", batch_size=4, num_steps=2, warmup_steps=1)
    batch = random_transitions(4, image_size=32)
    batch["observations"].pop("state"), batch["next_observations"].pop("state")
    agent = calql.make(cfg)
    st0 = agent.init(jax.random.PRNGKey(0), batch)
    st = st0
    for i in range(2):
        st, m = jax.jit(agent.phases[0].update)(st, batch)
        assert np.isfinite(float(m["loss"]))
    moved = [not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(st0["critic"]["params"]), jax.tree.leaves(st["critic"]["params"]))]
    assert any(moved)


def test_lanczos3_frames_match_the_released_tf_resize():
    """``resize_method="lanczos3"``: the critic's frame as the released evaluation makes it,
    ``tf.image.resize(lanczos3, antialias=True)`` of the uint8 frame, rounded to uint8."""
    import tensorflow as tf
    from vgps.nets.encoders import frames_to_float
    img = np.random.default_rng(0).integers(0, 256, (2, 80, 96, 3), np.uint8)
    img[:, 20:40, 30:60] = 255                                       # edges: ringing to clip
    want = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(
        img, (32, 32), method="lanczos3", antialias=True)), 0, 255), tf.uint8).numpy()
    got = (np.asarray(frames_to_float(jnp.asarray(img), 32, "lanczos3")) + 1.0) * 127.5
    diff = np.abs(np.round(got) - want.astype(np.float64))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01              # float rounding ties only
    same = np.asarray(frames_to_float(jnp.asarray(img[:, :32, :32]), 32, "lanczos3"))
    np.testing.assert_allclose(same, img[:, :32, :32] / 127.5 - 1.0, atol=1e-6)  # not resized
    with pytest.raises(ValueError, match="resize method"):
        frames_to_float(jnp.asarray(img), 32, "bicubic")
