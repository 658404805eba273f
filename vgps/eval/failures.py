"""Classify episode outcomes into the paper's §4 failure modes (notebook 04).

Per episode, from simulator state each step: was the source object ever grasped, was it still
held at the end, did it leave the gripper before success. Categories:
``success`` | ``never grasped`` (imprecise grasp) | ``dropped / released off target`` (premature
release or slip) | ``still holding at timeout`` (late release).
"""
from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from vgps.eval.harness import run_lockstep

CATEGORIES = ("success", "never grasped", "dropped / released off target", "still holding at timeout")


def classify(success: bool, ever_grasped: bool, held_at_end: bool) -> str:
    if success:
        return CATEGORIES[0]
    if not ever_grasped:
        return CATEGORIES[1]
    return CATEGORIES[3] if held_at_end else CATEGORIES[2]


def failure_modes(agent, envs: list, env_seeds: list[int], rng: jax.Array) -> pd.DataFrame:
    """Run ``len(env_seeds) == len(envs)`` episodes in lock step; one row per episode with the
    outcome category (pick tasks count ``held_at_end`` as success already)."""
    if len(env_seeds) != len(envs):
        raise ValueError("one seed per environment")
    ever, held = np.zeros(len(envs), bool), np.zeros(len(envs), bool)

    def track(i, env, info):
        u = env.unwrapped
        held[i] = u.grasped(u.source)
        ever[i] |= held[i]

    res = run_lockstep(agent, envs, env_seeds, rng, on_step=track)
    succ = np.array([r["success"] for r in res])
    return pd.DataFrame({"env_seed": list(env_seeds), "success": succ, "ever_grasped": ever,
                         "held_at_end": held,
                         "outcome": [classify(*x) for x in zip(succ, ever, held)]})
