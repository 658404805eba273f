"""Q(s, a, l) ensemble and V(s, l), with the encoder run once per state.

``CriticNet.encode(obs, lang) -> z [B, Z]`` then ``CriticNet.q_from_embedding(z, a) -> [E, B, K]``
for actions ``[B, K, A]`` (or ``[B, A]`` -> ``[E, B]``): every extra action reuses ``z``.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vgps.nets.encoders import make_encoder


class MLP(nn.Module):
    """Dense-ReLU stack with a linear output of size ``out_dim``."""
    hidden_dims: Sequence[int]
    out_dim: int = 1

    @nn.compact
    def __call__(self, x):
        for i, d in enumerate(self.hidden_dims):
            x = nn.relu(nn.Dense(d, name=f"dense_{i}")(x))
        return nn.Dense(self.out_dim, name="out")(x)


class QHead(nn.Module):
    """One Q head: concat(z, a) -> MLP -> scalar, for ``z [B, Z]`` and ``a [B, A]`` -> ``[B]``
    or ``a [B, K, A]`` -> ``[B, K]``.

    The first layer is split, ``W [z; a] + b = (W_z z + b) + W_a a``: the ``z`` part is computed
    once per state and shared by all K actions (same function as a Dense on the concatenation,
    ~2x fewer FLOPs per extra action with a 256-d embedding)."""
    hidden_dims: Sequence[int]

    @nn.compact
    def __call__(self, z, actions):
        d0 = self.hidden_dims[0]
        hz = nn.Dense(d0, name="dense_0_z")(z)
        ha = nn.Dense(d0, use_bias=False, name="dense_0_a")(actions)
        if actions.ndim == z.ndim + 1:
            hz = hz[..., None, :]
        x = nn.relu(hz + ha)
        return MLP(tuple(self.hidden_dims[1:]), 1, name="mlp")(x)[..., 0]


class CriticNet(nn.Module):
    """Shared encoder + ``num_qs`` Q heads (clipped double Q)."""
    cfg: object   # vgps.config.CriticConfig

    def setup(self):
        self.encoder = make_encoder(self.cfg)
        self.heads = nn.vmap(QHead, variable_axes={"params": 0}, split_rngs={"params": True},
                             in_axes=None, out_axes=0, axis_size=self.cfg.num_qs)(
            tuple(self.cfg.hidden_dims))

    def encode(self, observations, lang):
        """``-> z [B, Z]``."""
        return self.encoder(observations, lang)

    def q_from_embedding(self, z, actions):
        """``z [B, Z]``, ``actions [B, K, A]`` -> ``[E, B, K]`` (or ``[B, A]`` -> ``[E, B]``)."""
        return self.heads(z, actions)

    def __call__(self, observations, lang, actions):
        return self.q_from_embedding(self.encode(observations, lang), actions)


class ValueNet(nn.Module):
    """V(s, l) for IQL: its own encoder -> MLP -> scalar ``[B]``."""
    cfg: object

    @nn.compact
    def __call__(self, observations, lang):
        z = make_encoder(self.cfg)(observations, lang)
        return MLP(tuple(self.cfg.hidden_dims), 1)(z)[..., 0]
