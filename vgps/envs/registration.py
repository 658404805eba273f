"""Gymnasium registration (``gymnasium.make("vgps/<task_id>-v0")``) and the ``make`` factory."""
from __future__ import annotations

import gymnasium as gym

from vgps.envs.tasks import TASKS


def gym_id(task_id: str) -> str:
    return f"vgps/{task_id}-v0"


def register_all() -> None:
    """Register every task once (idempotent)."""
    for task_id in TASKS:
        if gym_id(task_id) not in gym.registry:
            gym.register(id=gym_id(task_id), entry_point="vgps.envs.core:TabletopEnv",
                         kwargs={"task_id": task_id}, disable_env_checker=True)


def make(task_id: str, *, image_size: int = 64, shift: str | None = None, render: bool = True):
    """A bare :class:`~vgps.envs.core.TabletopEnv` (no wrappers) for ``task_id``."""
    from vgps.envs.core import TabletopEnv
    return TabletopEnv(task_id, image_size=image_size, shift=shift, render=render)
