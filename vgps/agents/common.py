"""Pieces shared by the learners: the Agent/Phase description, Polyak averaging, relabelling."""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class Phase:
    """A run of ``num_steps`` calls of ``update(state, batch) -> (state, metrics)``."""
    name: str
    num_steps: int
    update: Callable


@dataclasses.dataclass(frozen=True)
class Agent:
    """What :func:`vgps.agents.train.train` needs: ``init(rng, batch) -> state`` and phases."""
    name: str
    cfg: object
    init: Callable
    phases: tuple[Phase, ...]
    critic_net: object

    @property
    def total_steps(self) -> int:
        return sum(p.num_steps for p in self.phases)


def adam(lr: float, warmup_steps: int = 0, clip: float | None = None):
    """``optax.adam(lr)``; with ``warmup_steps`` the learning rate rises linearly from 0 to ``lr``
    over that many updates and then stays constant, and with ``clip`` gradients are clipped to that
    global norm first (the released V-GPS ``jaxrl_m/common/optimizers.py`` ``make_optimizer``)."""
    schedule = lr if not warmup_steps else optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup_steps), optax.constant_schedule(lr)], [warmup_steps])
    tx = optax.adam(schedule)
    return optax.chain(optax.clip_by_global_norm(clip), tx) if clip else tx


def polyak(target, online, tau: float):
    """``target <- (1 - tau) * target + tau * online`` leaf-wise."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def relabel_negatives(rng, batch, fraction: float, failure_reward: float, gamma: float):
    """Give the first ``round(fraction * B)`` transitions a mismatched instruction (the batch's
    language rolled by one) and mark them failures: reward ``failure_reward``, mask 1,
    Monte-Carlo return ``failure_reward / (1 - gamma)``. Rows whose rolled instruction equals
    their own are left untouched. ``rng`` is unused (kept for a future random permutation)."""
    del rng
    b = batch["language"].shape[0]
    n = int(round(fraction * b))
    if n == 0:
        return batch
    lang = batch["language"]
    rolled = jnp.roll(lang, 1, axis=0)
    differs = jnp.any(jnp.abs(rolled - lang) > 1e-6, axis=-1)
    sel = (jnp.arange(b) < n) & differs
    out = dict(batch)
    out["language"] = jnp.where(sel[:, None], rolled, lang)
    out["rewards"] = jnp.where(sel, failure_reward, batch["rewards"])
    out["masks"] = jnp.where(sel, 1.0, batch["masks"])
    if "mc_returns" in batch:
        out["mc_returns"] = jnp.where(sel, failure_reward / (1.0 - gamma), batch["mc_returns"])
    return out
