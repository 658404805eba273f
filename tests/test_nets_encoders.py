"""Encoders and the critic network: parameter counts, FiLM identity, encoder reuse."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgps.config import CriticConfig
from vgps.nets import CriticNet, FiLM


def _n_params(tree):
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def test_resnet34_critic_has_paper_size():
    """Paper Table 13: the ResNet-34 Q network has 25.6M parameters (shapes only, no compute)."""
    cfg = CriticConfig(obs_modality="image", encoder="resnet34")
    net = CriticNet(cfg)
    spec = (jax.ShapeDtypeStruct((1, 128, 128, 3), jnp.uint8), jax.ShapeDtypeStruct((1, 512), jnp.float32),
            jax.ShapeDtypeStruct((1, 7), jnp.float32))
    shapes = jax.eval_shape(lambda i, l, a: net.init(jax.random.PRNGKey(0), {"image": i}, l, a), *spec)
    n = _n_params(shapes)
    assert abs(n - 25.6e6) / 25.6e6 < 0.01, n


def test_film_is_identity_at_init():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 8))
    lang = jax.random.normal(jax.random.PRNGKey(1), (2, 16))
    p = jax.jit(FiLM().init)(jax.random.PRNGKey(2), x, lang)
    np.testing.assert_array_equal(jax.jit(FiLM().apply)(p, x, lang), x)


@pytest.mark.parametrize("encoder,obs", [
    ("mlp", {"state": np.random.default_rng(0).normal(size=(3, 10)).astype(np.float32)}),
    ("conv_small", {"image": np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)}),
    ("patch_mixer", {"image": np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)}),
])
def test_encoder_reuse_equals_reencoding(encoder, obs):
    """q_from_embedding(encode(s), a[B, K]) == running the full network per action."""
    cfg = CriticConfig(encoder=encoder, obs_modality="state" if encoder == "mlp" else "image",
                       lang_conditioning="film", hidden_dims=(32, 32), encoder_dims=(32, 32),
                       conv_channels=(8, 16), mixer_width=16, embedding_dim=32)
    net = CriticNet(cfg)
    lang = np.random.default_rng(1).normal(size=(3, 512)).astype(np.float32)
    acts = np.random.default_rng(2).uniform(-1, 1, (3, 3, 7)).astype(np.float32)
    p = jax.jit(net.init)(jax.random.PRNGKey(0), obs, lang, acts[:, 0])
    # make FiLM non-trivial so language actually matters
    p = jax.tree_util.tree_map_with_path(
        lambda path, x: x + 0.01 if "film" in jax.tree_util.keystr(path) else x, p)

    @jax.jit
    def reuse(p):
        z = net.apply(p, obs, lang, method=CriticNet.encode)
        return net.apply(p, z, acts, method=CriticNet.q_from_embedding)

    @jax.jit
    def each(p):
        return jnp.stack([net.apply(p, obs, lang, acts[:, k]) for k in range(3)], axis=-1)

    q_reuse, q_each = reuse(p), each(p)
    assert q_reuse.shape == (2, 3, 3)
    np.testing.assert_allclose(q_reuse, q_each, rtol=1e-5, atol=1e-5)


def test_conv_small_final_map_not_tiny():
    """64 px through the default conv_small ends at 4x4 (XLA-CPU is slow on <= 2x2 maps)."""
    n_stride2 = len(CriticConfig().conv_channels)
    assert 64 // 2 ** n_stride2 > 2


def test_resize_to_is_an_area_average_for_integer_factors():
    from vgps.nets.encoders import resize_to
    x = jnp.arange(2 * 4 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 4, 1)
    y = resize_to(x, 2)
    assert y.shape == (2, 2, 2, 1)
    # top-left 2x2 block of the first image: 0, 1, 4, 5 -> 2.5
    assert float(y[0, 0, 0, 0]) == 2.5 and float(y[1, 1, 1, 0]) == (26 + 27 + 30 + 31) / 4
    assert resize_to(x, None) is x and resize_to(x, 4) is x
    assert resize_to(jnp.ones((1, 6, 6, 3)), 4).shape == (1, 4, 4, 3)   # non-integer factor


def test_critic_reads_a_large_frame_at_its_input_resolution():
    """input_image_size=16: a 64-px frame scores exactly as its 4x4-block average at 16 px,
    and the parameters do not depend on the frame size."""
    cfg = CriticConfig(obs_modality="image", encoder="conv_small", conv_channels=(8, 16),
                       embedding_dim=16, hidden_dims=(16, 16), input_image_size=16)
    net = CriticNet(cfg)
    big = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    small = big.astype(np.float32).reshape(2, 16, 4, 16, 4, 3).mean(axis=(2, 4)) / 255.0
    lang = np.random.default_rng(1).normal(size=(2, 512)).astype(np.float32)
    acts = np.random.default_rng(2).uniform(-1, 1, (2, 5, 7)).astype(np.float32)
    p_big = net.init(jax.random.PRNGKey(0), {"image": big}, lang, acts)
    p_small = net.init(jax.random.PRNGKey(0), {"image": small}, lang, acts)
    assert jax.tree.map(jnp.shape, p_big) == jax.tree.map(jnp.shape, p_small)
    # uint8 -> [-1, 1] and float [0, 1] -> [-1, 1] are the same affine map, so the two agree
    np.testing.assert_allclose(net.apply(p_big, {"image": big}, lang, acts),
                               net.apply(p_big, {"image": small}, lang, acts), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- patch_mixer (the CPU image encoder)
def _mixer_inputs(b=3, size=64, seed=0):
    rng = np.random.default_rng(seed)
    return ({"image": rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8)},
            rng.normal(size=(b, 512)).astype(np.float32))


def _perturb_film(p, eps=0.01):
    return jax.tree_util.tree_map_with_path(
        lambda path, x: x + eps if "film" in jax.tree_util.keystr(path) else x, p)


def test_patch_mixer_shape_and_film_identity_at_init():
    """Default patch_mixer at 64 px: [B, 256]; FiLM after the embedding, the merge and every Mixer
    block, all identity at init, so a fresh encoder gives bit-identical output for any instruction."""
    from vgps.nets.encoders import PatchMixerEncoder, make_encoder
    cfg = CriticConfig(obs_modality="image", encoder="patch_mixer")
    enc = make_encoder(cfg)
    assert isinstance(enc, PatchMixerEncoder)
    assert (enc.patch_size, enc.width, enc.depth, enc.embedding_dim) == (8, 192, 1, 256)
    obs, lang = _mixer_inputs()
    p = jax.jit(enc.init)(jax.random.PRNGKey(0), obs, lang)
    films = sorted(k for k in jax.tree_util.tree_flatten_with_path(p)[0]
                   for k in [jax.tree_util.keystr(k[0])] if "film" in k and "kernel" in k)
    assert len(films) == 2 + cfg.mixer_depth, films
    apply = jax.jit(enc.apply)
    z = apply(p, obs, lang)
    assert z.shape == (3, 256) and z.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(z)))
    assert float(jnp.min(z)) >= 0.0 and float(jnp.mean(z > 0)) > 0.2     # ReLU(LayerNorm) output
    np.testing.assert_array_equal(apply(p, obs, -3.0 * lang), z)
    np.testing.assert_array_equal(apply(p, obs, jnp.zeros_like(lang)), z)
    # the image does matter
    assert float(jnp.max(jnp.abs(apply(p, {"image": obs["image"][::-1]}, lang) - z[::-1]))) == 0.0
    assert float(jnp.max(jnp.abs(apply(p, {"image": 255 - obs["image"]}, lang) - z))) > 1e-2


def test_patch_mixer_instruction_matters_once_film_is_trained():
    from vgps.nets.encoders import make_encoder
    enc = make_encoder(CriticConfig(obs_modality="image", encoder="patch_mixer", mixer_width=32,
                                    mixer_depth=2, embedding_dim=32))
    obs, lang = _mixer_inputs()
    p = _perturb_film(jax.jit(enc.init)(jax.random.PRNGKey(0), obs, lang))
    apply = jax.jit(enc.apply)
    z, z_other = apply(p, obs, lang), apply(p, obs, lang[::-1])
    assert float(jnp.max(jnp.abs(z - z_other))) > 1e-2
    np.testing.assert_array_equal(z[1], z_other[1])       # row 1 keeps its own instruction


def test_patch_mixer_gradient_reaches_every_parameter():
    from vgps.nets.encoders import make_encoder
    enc = make_encoder(CriticConfig(obs_modality="image", encoder="patch_mixer", mixer_width=32,
                                    mixer_depth=2, embedding_dim=32))
    obs, lang = _mixer_inputs()
    p = jax.jit(enc.init)(jax.random.PRNGKey(0), obs, lang)
    g = jax.jit(jax.grad(lambda p: jnp.sum(enc.apply(p, obs, lang) ** 2)))(p)
    norms = {jax.tree_util.keystr(k): float(jnp.linalg.norm(v))
             for k, v in jax.tree_util.tree_flatten_with_path(g)[0]}
    assert len(norms) == len(jax.tree.leaves(p))
    assert all(np.isfinite(v) and v > 0 for v in norms.values()), \
        {k: v for k, v in norms.items() if not (np.isfinite(v) and v > 0)}


def test_patch_mixer_reads_a_128px_frame_at_input_image_size():
    """input_image_size=64: a 128-px frame encodes exactly as its 2x2-block average at 64 px; the
    parameters do not depend on the frame size. Without it a frame that does not split into
    patches is refused."""
    from vgps.nets.encoders import make_encoder
    cfg = CriticConfig(obs_modality="image", encoder="patch_mixer", mixer_width=32, embedding_dim=32,
                       input_image_size=64)
    enc = make_encoder(cfg)
    big = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    small = big.astype(np.float32).reshape(2, 64, 2, 64, 2, 3).mean(axis=(2, 4)) / 255.0
    lang = np.random.default_rng(1).normal(size=(2, 512)).astype(np.float32)
    p_big = enc.init(jax.random.PRNGKey(0), {"image": big}, lang)
    p_small = enc.init(jax.random.PRNGKey(0), {"image": small}, lang)
    assert jax.tree.map(jnp.shape, p_big) == jax.tree.map(jnp.shape, p_small)
    z = enc.apply(p_big, {"image": big}, lang)
    assert z.shape == (2, 32)
    np.testing.assert_allclose(z, enc.apply(p_big, {"image": small}, lang), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="8x8 patches"):
        make_encoder(dataclasses.replace(cfg, input_image_size=None)).init(
            jax.random.PRNGKey(0), {"image": big[:, :60, :60]}, lang)


def test_patch_mixer_calql_update_trains_the_encoder():
    """A Cal-QL critic on 64-px frames and the instruction: one behaviour-BC and one critic update
    run, give finite losses, and move every encoder leaf by Adam's first step (|delta| <= lr, most
    entries ~lr), FiLM included, so afterwards the instruction changes the embedding."""
    from vgps.agents import calql
    from vgps.agents.synthetic import random_transitions
    from vgps.nets.critic import CriticNet
    cfg = CriticConfig(obs_modality="image", encoder="patch_mixer", mixer_width=32, embedding_dim=32,
                       hidden_dims=(32, 32), behavior_hidden_dims=(32,), batch_size=16,
                       cql_n_actions=2, lr=1e-3)
    tr = random_transitions(16, image_size=64, seed=0)
    for k in ("observations", "next_observations"):
        tr[k] = {"image": tr[k]["image"]}
    agent = calql.make(cfg)
    assert [ph.name for ph in agent.phases] == ["behavior", "critic"]
    s0 = agent.init(jax.random.PRNGKey(0), jax.tree.map(lambda x: x[:1], tr))
    s1, m_bc = jax.jit(agent.phases[0].update)(s0, tr)
    s2, m = jax.jit(agent.phases[1].update)(s1, tr)
    assert all(np.isfinite(float(v)) for v in jax.tree.leaves((m_bc, m)))
    assert float(m["td_loss"]) > 0 and int(s2["step"]) == 2
    enc0 = s1["critic"]["params"]["params"]["encoder"]
    enc1 = s2["critic"]["params"]["params"]["encoder"]
    assert "film_merge" in enc0 and "mixer_0" in enc0
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(enc0)[0], jax.tree.leaves(enc1)):
        d = np.abs(np.asarray(b) - np.asarray(a))
        assert d.max() <= cfg.lr * 1.001, jax.tree_util.keystr(path)
        assert np.mean(d > 0.5 * cfg.lr) > 0.5, (jax.tree_util.keystr(path), np.mean(d > 0.5 * cfg.lr))
    # target network: Polyak with tau=5e-3 of the same move
    t0, t1 = s1["critic"]["target_params"], s2["critic"]["target_params"]
    k = jax.tree.leaves(t0["params"]["encoder"]["embed"])[1]
    k1 = jax.tree.leaves(t1["params"]["encoder"]["embed"])[1]
    k_on = jax.tree.leaves(enc1["embed"])[1]
    np.testing.assert_allclose(k1, (1 - cfg.tau) * k + cfg.tau * k_on, rtol=1e-5, atol=1e-7)
    net = CriticNet(cfg)
    z = net.apply(s2["critic"]["params"], tr["observations"], tr["language"], method=CriticNet.encode)
    z_other = net.apply(s2["critic"]["params"], tr["observations"], -tr["language"],
                        method=CriticNet.encode)
    assert z.shape == (16, 32) and float(jnp.max(jnp.abs(z - z_other))) > 0
