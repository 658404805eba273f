"""Write the tiny RLDS datasets committed under tests/data/ (deterministic; rerun to refresh).

``tests/data/bridge_tiny/1.0.0``  bridge layout, 32x32 images, state 8, 6 episodes (2 failed)
``tests/data/fractal_tiny/1.0.0`` fractal layout, 32x32 images, state 8, 4 episodes (1 failed)
Each has a ``train`` and a ``val`` split. Frames are a coloured square moving over a plain
background (so they compress), actions are smooth with the gripper closing mid-episode.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vgps.data.rlds_writer import write_rlds
from vgps.paths import TEST_DATA

INSTRUCTIONS = ("put carrot on plate", "put the spoon on the towel", "stack the green block")


def make_episode(i: int, length: int, *, size: int = 32, state_dim: int = 8, success=True,
                 embodiment: str = "widowx", seed: int = 0) -> dict:
    """One synthetic episode (docs/design.md format) whose frames and actions are hand-checkable."""
    rng = np.random.default_rng([seed, i])
    t = np.arange(length)
    img = np.full((length, size, size, 3), (40, 60, 80), np.uint8)
    pos = (t * (size - 8) // max(length - 1, 1)).astype(int)
    for k in range(length):
        img[k, 4:12, pos[k]:pos[k] + 8] = (220, 120 + 20 * (i % 3), 30)
    state = np.zeros((length, state_dim), np.float32)
    state[:, 0] = t / max(length - 1, 1)
    state[:, 1:] = rng.normal(scale=0.1, size=(length, state_dim - 1)).astype(np.float32)
    action = np.zeros((length, 7), np.float32)
    action[:, :6] = rng.normal(scale=0.02, size=(length, 6)).astype(np.float32)
    action[:, 0] += 0.05
    action[:, 6] = (t < length // 2).astype(np.float32)   # open, then closed
    quality = "clean" if success else "premature_release"
    return {"observation": {"image": img, "state": state}, "action": action,
            "instruction": INSTRUCTIONS[i % len(INSTRUCTIONS)], "success": success,
            "metadata": {"task_id": f"task_{i % len(INSTRUCTIONS)}", "embodiment": embodiment,
                         "quality": quality, "seed": int(seed * 1000 + i),
                         "failure_mode": "" if success else "premature_release"}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=TEST_DATA)
    args = ap.parse_args(argv)
    lengths_b = [1, 2, 3, 4, 9, 12]
    fail_b = {3, 5}
    train_b = [make_episode(i, n, success=i not in fail_b, seed=1) for i, n in enumerate(lengths_b)]
    val_b = [make_episode(10 + i, 6, seed=2) for i in range(2)]
    print(write_rlds({"train": train_b, "val": val_b}, args.out, name="bridge_tiny", layout="bridge"))
    lengths_f = [5, 7, 8, 10]
    train_f = [make_episode(i, n, success=i != 2, embodiment="google_robot", seed=3)
               for i, n in enumerate(lengths_f)]
    val_f = [make_episode(20, 6, embodiment="google_robot", seed=4)]
    print(write_rlds({"train": train_f, "val": val_f}, args.out, name="fractal_tiny",
                     layout="fractal"))


if __name__ == "__main__":
    main()
