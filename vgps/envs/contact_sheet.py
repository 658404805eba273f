"""Contact sheet: the first frame of every task (rows) under every shift variant (columns)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

SHEET_SHIFTS = ("none", "table_color", "table_texture", "table_height_low", "table_height_high",
                "lighting", "camera_jitter", "distractors")


def frames(tasks=None, shifts=SHEET_SHIFTS, image_size: int = 96, seed: int = 0) -> np.ndarray:
    """uint8[len(tasks), len(shifts), H, W, 3] reset frames."""
    from vgps.envs import EVAL_TASKS, make
    tasks = tasks or EVAL_TASKS
    out = np.zeros((len(tasks), len(shifts), image_size, image_size, 3), np.uint8)
    for i, t in enumerate(tasks):
        for j, s in enumerate(shifts):
            env = make(t, image_size=image_size, shift=s)
            out[i, j] = env.reset(seed=seed)[0]["image"]
            env.close()
    return out


def make_contact_sheet(out_dir: str | Path, tasks=None, shifts=SHEET_SHIFTS, image_size: int = 96,
                       seed: int = 0, name: str = "env_contact_sheet") -> list[Path]:
    """Render the sheet and save ``name.png``/``.svg`` with :func:`vgps.plotting.save_figure`."""
    import matplotlib.pyplot as plt

    from vgps.envs import EVAL_TASKS
    from vgps.plotting import save_figure
    tasks = tasks or EVAL_TASKS
    img = frames(tasks, shifts, image_size, seed)
    fig, axes = plt.subplots(len(tasks), len(shifts), figsize=(1.3 * len(shifts), 1.35 * len(tasks)),
                             squeeze=False)
    for i, t in enumerate(tasks):
        for j, s in enumerate(shifts):
            ax = axes[i, j]
            ax.imshow(img[i, j], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(s.replace("_", "\n", 1), fontsize=7)
            if j == 0:
                ax.set_ylabel(t.replace("google_robot_", "google\n").replace("widowx_", "widowx\n"),
                              fontsize=6)
    fig.suptitle(f"Embedded tabletop benchmark: evaluation tasks × shift variants (reset seed {seed})",
                 fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_dir, name)
