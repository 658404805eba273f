"""Frozen behaviour model π_β for Cal-QL: a tanh-Gaussian fitted by maximum likelihood (BC)
to the critic's own training data, trained first and then never updated.

It supplies the CQL policy samples and the max-target backup actions (``calql_policy=
"behavior"``). It is *not* one of the generalists being steered (those are vgps.policies).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from vgps.nets.policy import TanhGaussianPolicy, log_prob


def make_net(cfg) -> TanhGaussianPolicy:
    return TanhGaussianPolicy(cfg, tuple(cfg.behavior_hidden_dims))


def bc_loss(net, params, batch, bound: float):
    """Negative log-likelihood of the batch actions ``[B, A]``; returns (loss, metrics)."""
    mean, log_std = net.apply(params, batch["observations"], batch["language"])
    nll = -jnp.mean(log_prob(batch["actions"], mean, log_std, bound))
    mse = jnp.mean((bound * jnp.tanh(mean) - batch["actions"]) ** 2)
    return nll, {"behavior/nll": nll, "behavior/mse": mse, "behavior/std": jnp.mean(jnp.exp(log_std))}


def make_bc_update(net, tx, bound: float, key: str = "behavior"):
    """``update(state, batch)`` training ``state[key]`` (``{"params", "opt"}``) by BC."""
    def update(state, batch):
        sub = state[key]
        (loss, m), g = jax.value_and_grad(lambda p: bc_loss(net, p, batch, bound), has_aux=True)(
            sub["params"])
        upd, opt = tx.update(g, sub["opt"], sub["params"])
        new = dict(state)
        new[key] = {"params": optax.apply_updates(sub["params"], upd), "opt": opt}
        new["step"] = state["step"] + 1
        return new, {"loss": loss, **m}
    return update
