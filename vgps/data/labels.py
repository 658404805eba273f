"""Sparse reward labelling of demonstrations (paper §5.1, App. B.1) and Monte-Carlo returns.

The datasets carry no rewards, so the last ``H`` (=3) steps of each episode are labelled
"success" and every earlier step "not yet": shifted values 0 / −1 (the paper's choice, default)
or 1 / 0. Success steps are terminal (mask 0). With γ = 0.98 the MC return-to-go is

    G_t = r_t + γ · mask_t · G_{t+1},

so a success step has G = r_success and a shifted demo's first steps approach −1/(1−γ) = −50.

Per-episode success flag (``use_success_flag``, an option beyond the paper): an episode whose
flag is False gets no success label — every step is a failure step with mask 1. Such an
episode ends by time-out, not termination, so its end is treated as absorbing failure: the last
transition's next observation is its own observation (a self-loop, flagged ``absorbing``) and
every step's MC return is the infinite-horizon value r_fail/(1−γ) (−50 shifted, 0 unshifted),
as Cal-QL does for failed sparse-reward trajectories. For a successful episode the last step is
terminal, so its (repeated) next observation is never bootstrapped from.
"""
from __future__ import annotations

import numpy as np


def reward_values(shifted: bool = True) -> tuple[float, float]:
    """(success reward, failure reward): (0, −1) shifted, (1, 0) unshifted."""
    return (0.0, -1.0) if shifted else (1.0, 0.0)


def label_steps(length: int, *, horizon: int = 3, shifted: bool = True, gamma: float = 0.98,
                success: bool | None = None, use_success_flag: bool = False) -> dict:
    """Labels for one episode of ``length`` steps (T).

    Returns float32[T] ``rewards``, ``masks``, ``mc_returns``; bool[T] ``success_step``,
    ``absorbing``; int64[T] ``next_index`` (index of the next observation within the episode).
    Episodes shorter than ``horizon`` are success-labelled on every step.
    """
    if length < 1:
        raise ValueError(f"episode length must be >= 1, got {length}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    r_succ, r_fail = reward_values(shifted)
    failed = use_success_flag and success is False
    t = np.arange(length)
    success_step = np.zeros(length, bool) if failed else t >= length - horizon
    rewards = np.where(success_step, r_succ, r_fail).astype(np.float32)
    masks = np.where(success_step, 0.0, 1.0).astype(np.float32)
    if failed:
        mc = np.full(length, r_fail / (1.0 - gamma), np.float64)
    else:
        mc = np.zeros(length, np.float64)
        g = 0.0
        for k in range(length - 1, -1, -1):
            g = rewards[k] + gamma * masks[k] * g
            mc[k] = g
    absorbing = np.zeros(length, bool)
    absorbing[-1] = failed
    return {"rewards": rewards, "masks": masks, "mc_returns": mc.astype(np.float32),
            "success_step": success_step, "absorbing": absorbing,
            "next_index": np.minimum(t + 1, length - 1).astype(np.int64)}


def label_config(cfg) -> dict:
    """The :class:`vgps.config.DataConfig` fields that decide the labels (part of a critic's cache key)."""
    return {"horizon": int(cfg.horizon), "shifted_rewards": bool(cfg.shifted_rewards),
            "gamma": float(cfg.gamma), "use_success_flag": bool(cfg.use_success_flag)}


def label_episode(episode: dict, cfg) -> dict:
    """:func:`label_steps` for an episode dict with a :class:`vgps.config.DataConfig` (or its
    :func:`label_config` dict, e.g. ``TrainingData.labels``): how training labels an episode."""
    c = cfg if isinstance(cfg, dict) else label_config(cfg)
    return label_steps(len(episode["action"]), horizon=c["horizon"], shifted=c["shifted_rewards"],
                       gamma=c["gamma"], success=episode.get("success"),
                       use_success_flag=c["use_success_flag"])
