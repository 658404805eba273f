"""The embedded MuJoCo tabletop benchmark: a CPU-runnable stand-in for SIMPLER and Bridge/Fractal.

``make(task_id, image_size=64, shift=None, render=True)``; ``EVAL_TASKS`` (the six SIMPLER
tasks), ``TRAIN_TASKS`` (plus training-only instructions), ``STATE_DIM``; scripted experts in
:mod:`vgps.envs.experts`, dataset generation in :mod:`vgps.envs.generate`.
"""
from vgps.envs.catalogue import EMBODIMENTS, OBJECT_NAMES, STATE_DIM, object_slice
from vgps.envs.registration import gym_id, make, register_all
from vgps.envs.shifts import SHIFTS
from vgps.envs.tasks import EVAL_TASKS, TASKS, TRAIN_TASKS

register_all()

__all__ = ["make", "EVAL_TASKS", "TRAIN_TASKS", "TASKS", "STATE_DIM", "SHIFTS", "EMBODIMENTS",
           "OBJECT_NAMES", "object_slice", "gym_id"]
