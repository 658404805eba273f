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
])
def test_encoder_reuse_equals_reencoding(encoder, obs):
    """q_from_embedding(encode(s), a[B, K]) == running the full network per action."""
    cfg = CriticConfig(encoder=encoder, obs_modality="state" if encoder == "mlp" else "image",
                       lang_conditioning="film", hidden_dims=(32, 32), encoder_dims=(32, 32),
                       conv_channels=(8, 16), embedding_dim=32)
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
