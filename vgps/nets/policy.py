"""Tanh-squashed Gaussian policy head (SAC actor, IQL/AWR actor, frozen behaviour π).

Actions live in ``[-bound, bound]^A`` (normalised action space). ``log_prob`` includes the
tanh change-of-variables term, so CQL importance weights use the true density.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vgps.nets.critic import MLP
from vgps.nets.encoders import make_encoder

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
_EPS = 1e-3


class TanhGaussianPolicy(nn.Module):
    """``(obs, lang) -> (mean [B, A], log_std [B, A])`` of the pre-tanh Gaussian."""
    cfg: object
    hidden_dims: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, observations, lang):
        z = make_encoder(self.cfg)(observations, lang)
        out = MLP(tuple(self.hidden_dims), 2 * self.cfg.action_dim, self.cfg.activation,
                  self.cfg.weight_init)(z)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def _gauss_logp(u, mean, log_std):
    return jnp.sum(-0.5 * ((u - mean) / jnp.exp(log_std)) ** 2 - log_std
                   - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def _tanh_logdet(u, bound):
    # log |d(bound * tanh u)/du| = log bound + log(1 - tanh^2 u), numerically stable form.
    return jnp.sum(jnp.log(bound) + 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)


def sample_and_log_prob(rng, mean, log_std, num_samples: int, bound: float = 1.0):
    """Reparameterised samples ``[B, N, A]`` and their log densities ``[B, N]``."""
    noise = jax.random.normal(rng, (mean.shape[0], num_samples, mean.shape[-1]))
    u = mean[:, None] + jnp.exp(log_std)[:, None] * noise
    logp = _gauss_logp(u, mean[:, None], log_std[:, None]) - _tanh_logdet(u, bound)
    return bound * jnp.tanh(u), logp


def log_prob(actions, mean, log_std, bound: float = 1.0):
    """Log density of ``actions [B, A]`` (clipped inside the open box) under the policy -> ``[B]``."""
    a = jnp.clip(actions / bound, -1.0 + _EPS, 1.0 - _EPS)
    u = jnp.arctanh(a)
    return _gauss_logp(u, mean, log_std) - _tanh_logdet(u, bound)


def mode(mean, bound: float = 1.0):
    """Deterministic action ``bound * tanh(mean)``."""
    return bound * jnp.tanh(mean)
