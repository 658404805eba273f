"""Classify episode outcomes into the paper's §4 failure modes (notebooks 04, 05).

Per episode, from simulator state each step: was the source object ever grasped, was it still
held at the end, did it leave the gripper before success. Categories:
``success`` | ``never grasped`` (imprecise grasp) | ``dropped / released off target`` (premature
release or slip) | ``still holding at timeout`` (late release). The lock-step harness
(:func:`vgps.eval.harness.run_lockstep`) tracks the grasp and classifies every episode it runs;
the evaluator's cache stores the category as ``outcome``.
"""
from __future__ import annotations

import jax
import pandas as pd

CATEGORIES = ("success", "never grasped", "dropped / released off target", "still holding at timeout")


def classify(success: bool, ever_grasped: bool, held_at_end: bool) -> str:
    if success:
        return CATEGORIES[0]
    if not ever_grasped:
        return CATEGORIES[1]
    return CATEGORIES[3] if held_at_end else CATEGORIES[2]


def failure_modes(agent, envs: list, env_seeds: list[int], keys: jax.Array | None = None) -> pd.DataFrame:
    """Run ``len(env_seeds) <= len(envs)`` episodes in lock step (as :func:`run_lockstep`, whose
    per-episode ``keys`` default to the episode seeds' own streams, as in the evaluator, which
    stores the same ``outcome`` per episode); one row per episode with the outcome category (pick
    tasks count ``held_at_end`` as success). The environments must report their grasp."""
    from vgps.eval.harness import run_lockstep
    if len(env_seeds) > len(envs):
        raise ValueError(f"{len(env_seeds)} episodes for {len(envs)} environments")
    res = run_lockstep(agent, envs, env_seeds, keys)
    if any(r["outcome"] == "" for r in res):
        raise ValueError("these environments do not report a grasp (env.unwrapped.grasped(source)): "
                         "no failure modes")
    cols = ["env_seed", "success", "ever_grasped", "held_at_end", "outcome"]
    return pd.DataFrame([{c: r[c] for c in cols} for r in res])
