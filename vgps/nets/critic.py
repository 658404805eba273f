"""Q(s, a, l) ensemble and V(s, l), with the encoder run once per state.

``CriticNet.encode(obs, lang) -> z [B, Z]`` then ``CriticNet.q_from_embedding(z, a) -> [E, B, K]``
for actions ``[B, K, A]`` (or ``[B, A]`` -> ``[E, B]``): every extra action reuses ``z``.
``CriticConfig.activation`` / ``weight_init`` / ``shared_q_output`` select the released V-GPS MLP
(swish, xavier-uniform, one ``Dense(1)`` shared by the heads: ``actor_critic_nets.py``) in ``paper``.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vgps.nets.encoders import activation, kernel_inits, make_encoder


class MLP(nn.Module):
    """Dense-activation stack with a linear output of size ``out_dim`` (none if ``out_dim`` is 0)."""
    hidden_dims: Sequence[int]
    out_dim: int = 1
    act: str = "relu"
    weight_init: str = "flax"

    @nn.compact
    def __call__(self, x):
        act, (_, di) = activation(self.act), kernel_inits(self.weight_init)
        for i, d in enumerate(self.hidden_dims):
            x = act(nn.Dense(d, name=f"dense_{i}", **di)(x))
        return nn.Dense(self.out_dim, name="out", **di)(x) if self.out_dim else x


class QHead(nn.Module):
    """One Q head: concat(z, a) -> MLP -> scalar, for ``z [B, Z]`` and ``a [B, A]`` -> ``[B]``
    or ``a [B, K, A]`` -> ``[B, K]``.

    The first layer is split, ``W [z; a] + b = (W_z z + b) + W_a a``: the ``z`` part is computed
    once per state and shared by all K actions (same function as a Dense on the concatenation,
    ~2x fewer FLOPs per extra action with a 256-d embedding)."""
    hidden_dims: Sequence[int]
    act: str = "relu"
    weight_init: str = "flax"
    with_output: bool = True      # False: return the last hidden layer (a shared output follows)

    @nn.compact
    def __call__(self, z, actions):
        d0, (_, di) = self.hidden_dims[0], kernel_inits(self.weight_init)
        hz = nn.Dense(d0, name="dense_0_z", **di)(z)
        ha = nn.Dense(d0, use_bias=False, name="dense_0_a", **di)(actions)
        if actions.ndim == z.ndim + 1:
            hz = hz[..., None, :]
        x = activation(self.act)(hz + ha)
        out = MLP(tuple(self.hidden_dims[1:]), int(self.with_output), self.act, self.weight_init,
                  name="mlp")(x)
        return out[..., 0] if self.with_output else out


class CriticNet(nn.Module):
    """Shared encoder + ``num_qs`` Q heads (clipped double Q)."""
    cfg: object   # vgps.config.CriticConfig

    def setup(self):
        cfg = self.cfg
        self.encoder = make_encoder(cfg)
        self.heads = nn.vmap(QHead, variable_axes={"params": 0}, split_rngs={"params": True},
                             in_axes=None, out_axes=0, axis_size=cfg.num_qs)(
            tuple(cfg.hidden_dims), cfg.activation, cfg.weight_init, not cfg.shared_q_output)
        if cfg.shared_q_output:
            self.q_out = nn.Dense(1, **kernel_inits(cfg.weight_init)[1])

    def encode(self, observations, lang):
        """``-> z [B, Z]``."""
        return self.encoder(observations, lang)

    def q_from_embedding(self, z, actions):
        """``z [B, Z]``, ``actions [B, K, A]`` -> ``[E, B, K]`` (or ``[B, A]`` -> ``[E, B]``)."""
        q = self.heads(z, actions)
        return self.q_out(q)[..., 0] if self.cfg.shared_q_output else q

    def __call__(self, observations, lang, actions):
        return self.q_from_embedding(self.encode(observations, lang), actions)


class ValueNet(nn.Module):
    """V(s, l) for IQL: its own encoder -> MLP -> scalar ``[B]``."""
    cfg: object

    @nn.compact
    def __call__(self, observations, lang):
        cfg = self.cfg
        z = make_encoder(cfg)(observations, lang)
        return MLP(tuple(cfg.hidden_dims), 1, cfg.activation, cfg.weight_init)(z)[..., 0]
