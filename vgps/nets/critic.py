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
    """One Q head: concat(z, a) -> MLP -> scalar. ``z [..., Z]``, ``a [..., A]`` -> ``[...]``."""
    hidden_dims: Sequence[int]

    @nn.compact
    def __call__(self, z, actions):
        return MLP(self.hidden_dims, 1)(jnp.concatenate([z, actions], axis=-1))[..., 0]


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
        if actions.ndim == 3:
            z = jnp.broadcast_to(z[:, None, :], actions.shape[:2] + z.shape[-1:])
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
