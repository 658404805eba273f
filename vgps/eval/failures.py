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

from vgps.eval.harness import _stack

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
    obs, instr = zip(*[(o, i["instruction"]) for o, i in (e.reset(seed=int(s)) for e, s in zip(envs, env_seeds))])
    obs, instr = list(obs), list(instr)
    b = len(envs)
    done, succ, ever, held = (np.zeros(b, bool) for _ in range(4))
    agent.reset(b)
    t = 0
    while not done.all():
        actions, _ = agent.act(_stack(obs), instr, jax.random.fold_in(rng, t))
        for i in np.flatnonzero(~done):
            o, _, term, trunc, info = envs[i].step(np.asarray(actions[i], np.float32))
            u = envs[i].unwrapped
            h = u.grasped(u.source)
            obs[i], ever[i], held[i] = o, ever[i] | h, h
            succ[i] |= bool(info.get("success", False))
            done[i] = term or trunc
        t += 1
    return pd.DataFrame({"env_seed": list(env_seeds), "success": succ, "ever_grasped": ever,
                         "held_at_end": held,
                         "outcome": [classify(*x) for x in zip(succ, ever, held)]})
