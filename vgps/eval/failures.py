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

from vgps.eval.harness import lockstep_chunks, pooled_envs, run_lockstep

CATEGORIES = ("success", "never grasped", "dropped / released off target", "still holding at timeout")


def classify(success: bool, ever_grasped: bool, held_at_end: bool) -> str:
    if success:
        return CATEGORIES[0]
    if not ever_grasped:
        return CATEGORIES[1]
    return CATEGORIES[3] if held_at_end else CATEGORIES[2]


def failure_modes(agent, envs: list, env_seeds: list[int], keys: jax.Array | None = None) -> pd.DataFrame:
    """Run ``len(env_seeds) <= len(envs)`` episodes in lock step (as :func:`run_lockstep`, whose
    per-episode ``keys`` default to the episode seeds' own streams, as in the evaluator); one
    row per episode with the outcome category (pick tasks count ``held_at_end`` as success)."""
    if len(env_seeds) > len(envs):
        raise ValueError(f"{len(env_seeds)} episodes for {len(envs)} environments")
    ever, held = np.zeros(len(envs), bool), np.zeros(len(envs), bool)

    def track(i, env, info):
        u = env.unwrapped
        held[i] = u.grasped(u.source)
        ever[i] |= held[i]

    res = run_lockstep(agent, envs, env_seeds, keys, on_step=track)
    n = len(env_seeds)
    succ = np.array([r["success"] for r in res])
    return pd.DataFrame({"env_seed": list(env_seeds), "success": succ, "ever_grasped": ever[:n],
                         "held_at_end": held[:n],
                         "outcome": [classify(*x) for x in zip(succ, ever[:n], held[:n])]})


def outcomes(make_agent, make_env, tasks, seeds, episodes: int, num_envs: int,
             env_pool: dict | None = None) -> pd.DataFrame:
    """Per-episode outcome category on ``tasks`` x ``seeds`` x ``episodes``, batched and seeded
    by :func:`~vgps.eval.harness.lockstep_chunks` as :meth:`vgps.eval.harness.Evaluator.run`
    batches one configuration, so ``success`` reproduces its results.
    ``make_agent()`` -> a fresh agent per task; columns ``task, seed, episode, env_seed, success,
    ever_grasped, held_at_end, outcome``."""
    env_pool = {} if env_pool is None else env_pool
    rows = []
    for task in tasks:
        jobs = [(int(sd), e) for sd in seeds for e in range(int(episodes))]
        envs = pooled_envs(env_pool, task, min(int(num_envs), len(jobs)), make_env)
        agent = make_agent()
        for chunk, env_seeds, keys in lockstep_chunks(jobs, num_envs):
            df = failure_modes(agent, envs, env_seeds, keys)
            rows.append(df.assign(task=task, seed=[sd for sd, _ in chunk], episode=[e for _, e in chunk]))
    cols = ["task", "seed", "episode", "env_seed", "success", "ever_grasped", "held_at_end", "outcome"]
    return pd.concat(rows, ignore_index=True)[cols]
