"""Hand-built transition sets for tests and benchmarks (no simulator, no dataset)."""
from __future__ import annotations

import numpy as np


def random_transitions(n: int, *, state_dim: int = 12, image_size: int | None = None,
                       language_dim: int = 512, action_dim: int = 7, num_tasks: int = 3,
                       gamma: float = 0.98, seed: int = 0) -> dict:
    """``n`` transitions in the batch format of docs/design.md, rewards in {-1, 0}.

    Rows come from episodes of length 20 whose last 3 steps are success steps (reward 0,
    mask 0); ``mc_returns`` are the matching discounted returns-to-go.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n) % 20
    success = t >= 17
    rewards = np.where(success, 0.0, -1.0).astype(np.float32)
    steps_left = np.maximum(17 - t, 0)
    mc = (-(1 - gamma ** steps_left) / (1 - gamma)).astype(np.float32)
    task = (np.arange(n) // 20) % num_tasks
    lang_table = rng.normal(size=(num_tasks, language_dim)).astype(np.float32)
    obs, nobs = {}, {}
    state = rng.normal(size=(n, state_dim)).astype(np.float32)
    state[:, 0] = t / 20.0
    obs["state"], nobs["state"] = state, np.roll(state, -1, axis=0)
    if image_size:
        img = rng.integers(0, 256, size=(n, image_size, image_size, 3), dtype=np.uint8)
        obs["image"], nobs["image"] = img, np.roll(img, -1, axis=0)
    actions = np.clip(rng.normal(scale=0.5, size=(n, action_dim)), -1, 1).astype(np.float32)
    actions[:, -1] = (t < 10).astype(np.float32)
    return {"observations": obs, "next_observations": nobs, "actions": actions,
            "rewards": rewards, "masks": (~success).astype(np.float32), "mc_returns": mc,
            "language": lang_table[task]}
