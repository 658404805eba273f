"""SIMPLER (``simpler_env``) behind the embedded suite's env interface, used only when importable.

``make_simpler(task_id)`` maps our task ids to SIMPLER's, and returns an env whose ``reset(seed=)``
gives ``({"image": uint8[H,W,3], "state": zeros}, {"instruction": ...})`` and whose ``step`` takes
our Bridge-convention action (Euler deltas, gripper 1 = open) and reports ``info["success"]``.
"""
from __future__ import annotations

import numpy as np

SIMPLER_TASKS = {
    "widowx_spoon_on_towel": "widowx_spoon_on_towel",
    "widowx_carrot_on_plate": "widowx_carrot_on_plate",
    "widowx_stack_blocks": "widowx_stack_cube",
    "widowx_eggplant_in_basket": "widowx_put_eggplant_in_basket",
    "google_robot_pick_coke_can": "google_robot_pick_coke_can",
    "google_robot_move_near": "google_robot_move_near",
}


def simpler_available() -> bool:
    try:
        import simpler_env  # noqa: F401
        return True
    except ImportError:
        return False


def _euler_to_axis_angle(rpy: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation
    return Rotation.from_euler("xyz", rpy).as_rotvec().astype(np.float32)


class SimplerEnv:
    """Wrapper with the embedded env's API (see module docstring)."""

    def __init__(self, task_id: str, state_dim: int = 1):
        if task_id not in SIMPLER_TASKS:
            raise KeyError(f"no SIMPLER counterpart for {task_id!r}; known: {sorted(SIMPLER_TASKS)}")
        import simpler_env
        from simpler_env.utils.env.observation_utils import get_image_from_maniskill2_obs_dict
        self._get_image = get_image_from_maniskill2_obs_dict
        self.env = simpler_env.make(SIMPLER_TASKS[task_id])
        self.task_id, self.state_dim = task_id, state_dim
        self.google = task_id.startswith("google_robot")

    def _obs(self, raw):
        return {"image": np.asarray(self._get_image(self.env, raw), np.uint8),
                "state": np.zeros(self.state_dim, np.float32)}

    def reset(self, *, seed: int | None = None):
        raw, info = self.env.reset(seed=seed)
        info = dict(info, instruction=self.env.get_language_instruction())
        self.instruction = info["instruction"]
        return self._obs(raw), info

    def step(self, action):
        a = np.asarray(action, np.float32)
        grip = 2.0 * (a[6] > 0.5) - 1.0                  # SIMPLER: +1 open, −1 close
        if self.google:
            grip = -grip                                   # Google robot: +1 close
        raw, reward, terminated, truncated, info = self.env.step(
            np.concatenate([a[:3], _euler_to_axis_angle(a[3:6]), [grip]]))
        info = dict(info, instruction=self.instruction, success=bool(info.get("success", False)))
        return self._obs(raw), reward, terminated, truncated, info


def make_simpler(task_id: str) -> SimplerEnv:
    if not simpler_available():
        raise ImportError("simpler_env is not installed (git clone --recurse-submodules "
                          "https://github.com/simpler-env/SimplerEnv, pip install ManiSkill2_real2sim "
                          "and SimplerEnv); use vgps.envs.make for the embedded suite")
    return SimplerEnv(task_id)
