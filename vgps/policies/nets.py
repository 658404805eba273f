"""Flax heads of the five behaviour-cloned stand-ins (state observations + instruction embedding).

Shapes: ``state [B, S]``, ``lang [B, D]``, actions normalized to roughly [-1, 1], chunks ``[B, H, 7]``.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

NUM_BINS = 256


class MLP(nn.Module):
    dims: Sequence[int]
    final_act: bool = True

    @nn.compact
    def __call__(self, x):
        for i, d in enumerate(self.dims):
            x = nn.Dense(d)(x)
            if i < len(self.dims) - 1 or self.final_act:
                x = nn.gelu(nn.LayerNorm()(x))
        return x


class Trunk(nn.Module):
    """Observation-language encoder ``(state [B,S], lang [B,D]) -> [B, H]`` (FiLM on the language)."""
    dims: Sequence[int]

    @nn.compact
    def __call__(self, state, lang):
        lz = nn.gelu(nn.Dense(64)(lang))
        h = nn.Dense(self.dims[0])(state)
        film = nn.Dense(2 * self.dims[0], kernel_init=nn.initializers.zeros)(lz)
        g, b = jnp.split(film, 2, axis=-1)
        h = nn.gelu(nn.LayerNorm()(h) * (1 + g) + b)
        return MLP(tuple(self.dims[1:]) or (self.dims[0],))(jnp.concatenate([h, lz], -1))


class ImageTrunk(nn.Module):
    """Image-language encoder ``(image uint8[B,H,W,3], lang [B,D]) -> [B, H]``: the critic's small
    FiLM conv encoder (:class:`vgps.nets.encoders.ConvEncoder`) followed by an MLP."""
    channels: Sequence[int]
    dims: Sequence[int]

    @nn.compact
    def __call__(self, image, lang):
        from vgps.nets.encoders import ConvEncoder
        h = ConvEncoder(tuple(self.channels), self.dims[0])({"image": image}, lang)
        return MLP(tuple(self.dims[1:]) or (self.dims[0],))(h)


class ViTTrunk(nn.Module):
    """Octo-like transformer trunk ``(image uint8[B,H,W,3], lang [B,D]) -> [B, width]``: patch
    tokens (``patch``×``patch``), one language token and one readout token, ``depth`` pre-LN
    blocks of ``heads``-head attention; the readout token's output is the feature. ViT-S/16 at
    256 px (Octo-small's primary camera) is ``patch=16, width=384, depth=12, heads=6``."""
    patch: int
    width: int
    depth: int
    heads: int

    @nn.compact
    def __call__(self, image, lang):
        from vgps.nets.encoders import image_to_float
        x = nn.Conv(self.width, (self.patch, self.patch), (self.patch, self.patch), padding="VALID")(
            image_to_float(image))
        b = x.shape[0]
        x = x.reshape(b, -1, self.width)
        x = x + self.param("pos", nn.initializers.normal(0.02), (1, x.shape[1], self.width))
        readout = jnp.broadcast_to(self.param("readout", nn.initializers.normal(0.02),
                                              (1, 1, self.width)), (b, 1, self.width))
        x = jnp.concatenate([nn.Dense(self.width)(lang)[:, None], x, readout], 1)
        for _ in range(self.depth):
            h = nn.LayerNorm()(x)
            x = x + nn.MultiHeadDotProductAttention(self.heads)(h, h)
            h = nn.LayerNorm()(x)
            x = x + nn.Dense(self.width)(nn.gelu(nn.Dense(4 * self.width)(h)))
        return nn.LayerNorm()(x[:, -1])


def timestep_embedding(t, dim=32):
    half = dim // 2
    freqs = jnp.exp(-jnp.log(1000.0) * jnp.arange(half) / half)
    ang = t[..., None].astype(jnp.float32) * freqs
    return jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], -1)


class DiffusionPolicyNet(nn.Module):
    """ε-prediction network: ``eps(feat, noisy chunk [.., H*7], t)``; feat computed once per obs."""
    trunk_dims: Sequence[int]
    denoise_dims: Sequence[int]
    out_dim: int
    image_channels: Sequence[int] = ()          # non-empty: observations are images
    vit: Sequence[int] = ()                     # (patch, width, depth, heads): ViT trunk instead

    def setup(self):
        self.trunk = (ViTTrunk(*self.vit) if self.vit else
                      ImageTrunk(self.image_channels, self.trunk_dims) if self.image_channels
                      else Trunk(self.trunk_dims))
        self.denoiser = MLP(self.denoise_dims)
        self.out = nn.Dense(self.out_dim)

    def features(self, state, lang):
        return self.trunk(state, lang)

    def eps(self, feat, x, t):
        h = jnp.concatenate([feat, x, timestep_embedding(t)], -1)
        return self.out(self.denoiser(h))

    def __call__(self, state, lang, x, t):
        return self.eps(self.features(state, lang), x, t)


class TokenPolicyNet(nn.Module):
    """RT-1-X-like: all 7 dims as independent 256-way categoricals → logits ``[B, 7, 256]``."""
    trunk_dims: Sequence[int]

    @nn.compact
    def __call__(self, state, lang):
        h = Trunk(self.trunk_dims)(state, lang)
        return nn.Dense(7 * NUM_BINS)(h).reshape(h.shape[:-1] + (7, NUM_BINS))


class ARTokenPolicyNet(nn.Module):
    """OpenVLA-like autoregressive decoder: logits of dim d given dims < d → ``[B, 7, 256]``.

    ``tokens [B, 7]`` int (teacher forcing); position d only sees tokens < d (causal mask).
    """
    trunk_dims: Sequence[int]
    head_dims: Sequence[int]
    embed_dim: int = 32

    def setup(self):
        self.trunk = Trunk(self.trunk_dims)
        self.tok_embed = nn.Embed(NUM_BINS + 1, self.embed_dim)   # index 256 = "not yet decoded"
        self.pos_embed = nn.Embed(7, self.embed_dim)
        self.head = MLP(self.head_dims)
        self.out = nn.Dense(NUM_BINS)

    def features(self, state, lang):
        return self.trunk(state, lang)

    def logits(self, feat, tokens):
        """``feat [B, F]``, ``tokens [B, 7]`` → ``[B, 7, 256]`` (causal: position d sees tokens < d)."""
        b = tokens.shape[0]
        causal = jnp.tril(jnp.ones((7, 7), bool), k=-1)                      # [pos, prev]
        masked = jnp.where(causal[None], tokens[:, None, :], NUM_BINS)       # [B, 7, 7]
        ctx = self.tok_embed(masked).reshape(b, 7, -1)                       # [B, 7, 7*E]
        pos = jnp.broadcast_to(self.pos_embed(jnp.arange(7)), (b, 7, self.embed_dim))
        f = jnp.broadcast_to(feat[:, None], (b, 7, feat.shape[-1]))
        return self.out(self.head(jnp.concatenate([f, ctx, pos], -1)))

    def __call__(self, state, lang, tokens):
        return self.logits(self.features(state, lang), tokens)


def ddpm_schedule(num_steps: int):
    """Cosine noise schedule → dict of ``betas, alphas, alpha_bars`` (length ``num_steps``)."""
    s = 0.008
    x = jnp.linspace(0, num_steps, num_steps + 1)
    ac = jnp.cos(((x / num_steps) + s) / (1 + s) * jnp.pi / 2) ** 2
    ac = ac / ac[0]
    betas = jnp.clip(1 - ac[1:] / ac[:-1], 0, 0.999)
    alphas = 1 - betas
    return {"betas": betas, "alphas": alphas, "alpha_bars": jnp.cumprod(alphas)}


def ddpm_sample(eps_fn, feat, out_dim: int, num_steps: int, keys, clip: float = 5.0):
    """Ancestral DDPM sampling. ``feat [N, F]`` → ``x0 [N, out_dim]`` (normalized space).
    ``keys``: one PRNG key per row of ``feat``; row ``n``'s noise comes from ``keys[n]`` alone."""
    sch = ddpm_schedule(num_steps)
    step_keys = jax.vmap(lambda k: jax.random.split(k, num_steps + 1))(keys)    # [N, T + 1]
    normal = jax.vmap(lambda k: jax.random.normal(k, (out_dim,)))
    x = normal(step_keys[:, 0])

    def body(i, x):
        t = num_steps - 1 - i
        eps = eps_fn(feat, x, jnp.full((x.shape[0],), t))
        ab, a, b = sch["alpha_bars"][t], sch["alphas"][t], sch["betas"][t]
        x0 = jnp.clip((x - jnp.sqrt(1 - ab) * eps) / jnp.sqrt(ab), -clip, clip)
        ab_prev = jnp.where(t > 0, sch["alpha_bars"][jnp.maximum(t - 1, 0)], 1.0)
        mean = (jnp.sqrt(ab_prev) * b / (1 - ab)) * x0 + (jnp.sqrt(a) * (1 - ab_prev) / (1 - ab)) * x
        var = b * (1 - ab_prev) / (1 - ab)
        return mean + jnp.where(t > 0, jnp.sqrt(var), 0.0) * normal(step_keys[:, i + 1])

    return jax.lax.fori_loop(0, num_steps, body, x)
