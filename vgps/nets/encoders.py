"""Observation encoders conditioned on an instruction embedding.

Every encoder maps ``(observations: dict, language: float32[B, D]) -> float32[B, Z]``.

- :class:`MLPEncoder`   ``observations["state"]`` (state modality); language concatenated or FiLM.
- :class:`ConvEncoder`  a small strided conv stack with GroupNorm + FiLM (CPU image profiles).
- :class:`ResNetEncoder` ResNet-v1 18/34 (basic blocks), GroupNorm, FiLM after every residual
  block, global average pooling (the paper's critic encoder, App. B.1 / Fig. 5). Its activation,
  GroupNorm groups/epsilon, input coordinate channels and initialisers are config fields, so the
  ``paper`` profile builds the released one (V-GPS ``jaxrl_m/vision/resnet_v1.py``: swish,
  GroupNorm(4, eps 1e-5), spatial coordinates, kaiming-normal convs; docs/paper_recipe.md).

FiLM is initialised as the identity: ``x * (1 + gamma(l)) + beta(l)`` with zero-initialised
projections, so a fresh network ignores the instruction until it learns to use it.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def image_to_float(image):
    """uint8 ``[..., H, W, 3]`` -> float32 in [-1, 1]; float input is taken to be in [0, 1]."""
    if jnp.issubdtype(image.dtype, jnp.integer):
        return image.astype(jnp.float32) / 127.5 - 1.0
    return image.astype(jnp.float32) * 2.0 - 1.0


ACTIVATIONS = {"relu": nn.relu, "swish": nn.swish}


def activation(name: str):
    """``"relu"`` or ``"swish"`` -> the flax function."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def kernel_inits(weight_init: str) -> tuple[dict, dict]:
    """Keyword arguments ``(conv, dense)`` for a ``CriticConfig.weight_init``: ``"flax"`` = the
    flax defaults (lecun-normal), ``"vgps"`` = the released V-GPS code (kaiming-normal convs,
    ``resnet_v1.py``; xavier-uniform dense layers, ``jaxrl_m/common/common.py`` ``default_init``)."""
    if weight_init == "flax":
        return {}, {}
    if weight_init == "vgps":
        return ({"kernel_init": nn.initializers.kaiming_normal()},
                {"kernel_init": nn.initializers.xavier_uniform()})
    raise ValueError(f"unknown weight_init {weight_init!r}; choose 'flax' or 'vgps'")


def add_spatial_coordinates(x):
    """``x [B, H, W, C] -> [B, H, W, C + 2]``: channel C is the row and C + 1 the column
    coordinate, each in [-1, 1] (as V-GPS ``AddSpatialCoordinates``)."""
    b, h, w, _ = x.shape
    rows = jnp.linspace(-1.0, 1.0, h, dtype=x.dtype) if h > 1 else jnp.zeros((1,), x.dtype)
    cols = jnp.linspace(-1.0, 1.0, w, dtype=x.dtype) if w > 1 else jnp.zeros((1,), x.dtype)
    grid = jnp.stack(jnp.meshgrid(rows, cols, indexing="ij"), axis=-1)     # [H, W, 2]
    return jnp.concatenate([x, jnp.broadcast_to(grid, (b, h, w, 2))], axis=-1)


def resize_to(x, size: int | None):
    """Float ``x [B, H, W, C]`` -> ``[B, size, size, C]``: an exact area average when ``size``
    divides H and W (e.g. 256 -> 64), else antialiased bilinear. ``None`` or same size: unchanged."""
    b, h, w, c = x.shape
    if size is None or (h == size and w == size):
        return x
    if h % size == 0 and w % size == 0 and h >= size and w >= size:
        return x.reshape(b, size, h // size, size, w // size, c).mean(axis=(2, 4))
    return jax.image.resize(x, (b, size, size, c), method="linear", antialias=True)


def frames_to_float(image, size: int | None, method: str = "area"):
    """Camera frames ``[B, H, W, 3]`` -> float32 in [-1, 1] at ``size`` x ``size``.

    ``"area"``: :func:`resize_to` on the float image. ``"lanczos3"``: as the released V-GPS
    evaluation prepares the critic's frame (its SimplerEnv fork, ``OctoInference._resize_image``):
    lanczos3 with antialiasing on the 0-255 image, rounded and clipped to uint8 values, then
    scaled (only for integer frames of another size; otherwise as ``"area"``)."""
    if method not in ("area", "lanczos3"):
        raise ValueError(f"unknown resize method {method!r}; choose 'area' or 'lanczos3'")
    b, h, w, c = image.shape
    if (method == "area" or size is None or (h == size and w == size)
            or not jnp.issubdtype(image.dtype, jnp.integer)):
        return resize_to(image_to_float(image), size)
    x = jax.image.resize(image.astype(jnp.float32), (b, size, size, c), method="lanczos3",
                         antialias=True)
    return jnp.clip(jnp.round(x), 0.0, 255.0) / 127.5 - 1.0


class FiLM(nn.Module):
    """Feature-wise affine conditioning, identity at initialisation. ``x [B, ..., C]``, ``l [B, D]``."""

    @nn.compact
    def __call__(self, x, lang):
        c = x.shape[-1]
        gb = nn.Dense(2 * c, kernel_init=nn.initializers.zeros, name="proj")(lang)
        gamma, beta = jnp.split(gb, 2, axis=-1)
        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
        return x * (1.0 + gamma.reshape(shape)) + beta.reshape(shape)


class MLPEncoder(nn.Module):
    """State encoder: ``state [B, S]`` and ``lang [B, D]`` -> ``[B, dims[-1]]``."""
    dims: Sequence[int] = (256, 256)
    lang_conditioning: str = "concat"   # "concat" | "film"

    @nn.compact
    def __call__(self, observations, lang):
        x = observations["state"].astype(jnp.float32)
        if self.lang_conditioning == "concat":
            x = jnp.concatenate([x, lang.astype(jnp.float32)], axis=-1)
        for i, d in enumerate(self.dims):
            x = nn.Dense(d, name=f"dense_{i}")(x)
            x = nn.LayerNorm(name=f"ln_{i}")(x)
            x = nn.relu(x)
            if self.lang_conditioning == "film":
                x = FiLM(name=f"film_{i}")(x, lang)
        return x


def _groups(c: int, max_groups: int = 32) -> int:
    g = min(max_groups, c)
    while c % g:
        g -= 1
    return g


class ConvEncoder(nn.Module):
    """Small conv encoder: per stage conv3x3/stride 2 -> GroupNorm -> ReLU -> FiLM; then flatten
    -> Dense(embedding_dim). With 4 stages a 64x64 image ends at 4x4 (never <= 2x2: XLA-CPU is
    very slow on tiny feature maps)."""
    channels: Sequence[int] = (32, 64, 64, 128)
    embedding_dim: int = 256
    input_size: int | None = None        # frames are resized to this first (frames_to_float)
    resize_method: str = "area"

    @nn.compact
    def __call__(self, observations, lang):
        x = frames_to_float(observations["image"], self.input_size, self.resize_method)
        for i, c in enumerate(self.channels):
            x = nn.Conv(c, (3, 3), strides=(2, 2), padding="SAME", use_bias=False, name=f"conv_{i}")(x)
            x = nn.GroupNorm(num_groups=_groups(c, 8), name=f"gn_{i}")(x)
            x = nn.relu(x)
            x = FiLM(name=f"film_{i}")(x, lang)
        x = x.reshape(x.shape[0], -1)
        x = nn.Dense(self.embedding_dim, name="proj")(x)
        return nn.relu(nn.LayerNorm(name="proj_ln")(x))


class BasicBlock(nn.Module):
    """ResNet-v1 basic block (two 3x3 convs, GroupNorm) followed by FiLM."""
    channels: int
    strides: int = 1
    act: str = "relu"
    max_groups: int = 32
    gn_epsilon: float = 1e-6
    weight_init: str = "flax"

    @nn.compact
    def __call__(self, x, lang):
        g, act, (ci, _) = _groups(self.channels, self.max_groups), activation(self.act), \
            kernel_inits(self.weight_init)
        gn = dict(epsilon=self.gn_epsilon)
        y = nn.Conv(self.channels, (3, 3), (self.strides, self.strides), padding="SAME",
                    use_bias=False, name="conv1", **ci)(x)
        y = act(nn.GroupNorm(g, name="gn1", **gn)(y))
        y = nn.Conv(self.channels, (3, 3), padding="SAME", use_bias=False, name="conv2", **ci)(y)
        y = nn.GroupNorm(g, name="gn2", **gn)(y)
        if x.shape[-1] != self.channels or self.strides != 1:
            x = nn.Conv(self.channels, (1, 1), (self.strides, self.strides), use_bias=False,
                        name="proj_conv", **ci)(x)
            x = nn.GroupNorm(g, name="proj_gn", **gn)(x)
        return FiLM(name="film")(act(x + y), lang)


RESNET_STAGES = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


class ResNetEncoder(nn.Module):
    """ResNet-v1 18/34 with GroupNorm and FiLM after every block; global average pooling -> [B, 512].
    ``spatial_coordinates`` appends two coordinate channels to the image before the stem."""
    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    width: int = 64
    input_size: int | None = None
    resize_method: str = "area"
    act: str = "relu"
    max_groups: int = 32
    gn_epsilon: float = 1e-6
    spatial_coordinates: bool = False
    weight_init: str = "flax"

    @nn.compact
    def __call__(self, observations, lang):
        x = frames_to_float(observations["image"], self.input_size, self.resize_method)
        if self.spatial_coordinates:
            x = add_spatial_coordinates(x)
        ci, _ = kernel_inits(self.weight_init)
        x = nn.Conv(self.width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], use_bias=False,
                    name="stem_conv", **ci)(x)
        x = nn.GroupNorm(_groups(self.width, self.max_groups), epsilon=self.gn_epsilon,
                         name="stem_gn")(x)
        x = nn.max_pool(activation(self.act)(x), (3, 3), strides=(2, 2), padding="SAME")
        for s, n_blocks in enumerate(self.stage_sizes):
            for b in range(n_blocks):
                strides = 2 if (s > 0 and b == 0) else 1
                x = BasicBlock(self.width * 2 ** s, strides, self.act, self.max_groups,
                               self.gn_epsilon, self.weight_init,
                               name=f"stage{s}_block{b}")(x, lang)
        return jnp.mean(x, axis=(1, 2))


def patchify(x, p: int):
    """``x [B, H, W, C] -> [B, H/p, W/p, p*p*C]``: non-overlapping ``p x p`` patches by reshape and
    transpose (no convolution: XLA-CPU's im2col, ``conv_general_dilated_patches``, is slow)."""
    b, h, w, c = x.shape
    if h % p or w % p:
        raise ValueError(f"a {h}x{w} map does not split into {p}x{p} patches "
                         "(set CriticConfig.input_image_size / patch_size to match)")
    x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // p, w // p, p * p * c)


class MixerBlock(nn.Module):
    """MLP-Mixer block on tokens ``[B, T, C]``: a token-mixing MLP (across the T positions, hidden
    size T) and a channel MLP (hidden ``mlp_ratio * C``), each pre-LayerNorm and residual; then FiLM."""
    mlp_ratio: int = 2

    @nn.compact
    def __call__(self, x, lang):
        t, c = x.shape[1], x.shape[2]
        y = nn.LayerNorm(name="ln_tok")(x).swapaxes(1, 2)                     # [B, C, T]
        y = nn.Dense(t, name="tok_2")(nn.relu(nn.Dense(t, name="tok_1")(y)))
        x = x + y.swapaxes(1, 2)
        y = nn.LayerNorm(name="ln_ch")(x)
        y = nn.Dense(c, name="ch_2")(nn.relu(nn.Dense(self.mlp_ratio * c, name="ch_1")(y)))
        return FiLM(name="film")(x + y, lang)


class PatchMixerEncoder(nn.Module):
    """Matmul-shaped image encoder for XLA-CPU (module docstring): ``patch_size`` patches -> Dense
    (``width / 2``) -> 2x2 patch merge -> Dense(``width``), each followed by LayerNorm, ReLU and
    FiLM; ``depth`` :class:`MixerBlock` s on the merged token grid (4x4 at 64 px with 8-px patches);
    flatten -> Dense(``embedding_dim``) -> LayerNorm -> ReLU."""
    patch_size: int = 8
    width: int = 192
    depth: int = 1
    embedding_dim: int = 256
    input_size: int | None = None
    resize_method: str = "area"

    @nn.compact
    def __call__(self, observations, lang):
        x = frames_to_float(observations["image"], self.input_size, self.resize_method)
        x = patchify(x, self.patch_size)                                      # [B, h, w, p*p*3]
        x = nn.relu(nn.LayerNorm(name="embed_ln")(nn.Dense(self.width // 2, name="embed")(x)))
        x = FiLM(name="film_embed")(x, lang)
        x = patchify(x, 2)                                                    # 2x2 merge
        x = nn.relu(nn.LayerNorm(name="merge_ln")(nn.Dense(self.width, name="merge")(x)))
        x = FiLM(name="film_merge")(x, lang)
        b, gh, gw, c = x.shape
        x = x.reshape(b, gh * gw, c)
        for i in range(self.depth):
            x = MixerBlock(name=f"mixer_{i}")(x, lang)
        x = nn.Dense(self.embedding_dim, name="proj")(x.reshape(b, -1))
        return nn.relu(nn.LayerNorm(name="proj_ln")(x))


def make_encoder(cfg) -> nn.Module:
    """Encoder named by ``cfg.encoder`` (a :class:`vgps.config.CriticConfig`)."""
    if cfg.encoder == "mlp":
        return MLPEncoder(tuple(cfg.encoder_dims), cfg.lang_conditioning)
    if cfg.encoder == "conv_small":
        return ConvEncoder(tuple(cfg.conv_channels), cfg.embedding_dim, cfg.input_image_size,
                           cfg.resize_method)
    if cfg.encoder == "patch_mixer":
        return PatchMixerEncoder(cfg.patch_size, cfg.mixer_width, cfg.mixer_depth,
                                 cfg.embedding_dim, cfg.input_image_size, cfg.resize_method)
    if cfg.encoder in RESNET_STAGES:
        return ResNetEncoder(RESNET_STAGES[cfg.encoder], input_size=cfg.input_image_size,
                             resize_method=cfg.resize_method,
                             act=cfg.activation, max_groups=cfg.gn_groups,
                             gn_epsilon=cfg.gn_epsilon, spatial_coordinates=cfg.spatial_coordinates,
                             weight_init=cfg.weight_init)
    raise ValueError(f"unknown encoder {cfg.encoder!r}")
