"""SIMPLER (``simpler_env``) behind the embedded suite's env interface, used only when importable.

``make_simpler(task_id)`` maps our task ids to SIMPLER's, and returns an env whose ``reset(seed=)``
gives ``({"image": uint8[H,W,3], "state": zeros}, {"instruction": ..., "embodiment": ...})`` and
whose ``step`` takes our Bridge-convention action (Euler deltas, gripper 1 = open) and reports
``info["success"]``.

Follows SimplerEnv's own loop (``simpler_env/main_inference.py``, ``policies/octo/octo_model.py``):
the instruction and the camera image come from ``env.unwrapped`` (gymnasium 1.x's ``TimeLimit``
no longer forwards ``get_language_instruction`` or ``robot_uid``); rotations are sent as
axis-angle; the WidowX gripper as ±1 (open > 0.5); the Google robot's gripper is *relative* (+1
close, −1 open, 0 keep), so an absolute command becomes ``previous − current`` and is held for 15
steps once it changes ("sticky gripper", as SimplerEnv does for Octo on the Google robot).
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


STICKY_STEPS = 15                   # SimplerEnv: sticky_gripper_num_repeat for the Google robot


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

    def __init__(self, task_id: str, state_dim: int = 1, make_env=None):
        if task_id not in SIMPLER_TASKS:
            raise KeyError(f"no SIMPLER counterpart for {task_id!r}; known: {sorted(SIMPLER_TASKS)}")
        import simpler_env
        from simpler_env.utils.env.observation_utils import get_image_from_maniskill2_obs_dict
        make_env = make_env or simpler_env.make
        self._get_image = get_image_from_maniskill2_obs_dict
        self.env = make_env(SIMPLER_TASKS[task_id])
        self.base = self.env.unwrapped                     # what TimeLimit no longer forwards
        self.task_id, self.state_dim = task_id, state_dim
        self.google = task_id.startswith("google_robot")
        self.embodiment = "google_robot" if self.google else "widowx"

    def _obs(self, raw):
        return {"image": np.asarray(self._get_image(self.base, raw), np.uint8),
                "state": np.zeros(self.state_dim, np.float32)}

    def reset(self, *, seed: int | None = None):
        raw, info = self.env.reset(seed=seed)
        info = dict(info, instruction=self.base.get_language_instruction(),
                    embodiment=self.embodiment)
        self.instruction = info["instruction"]
        self._prev_open, self._sticky, self._sticky_left = None, 0.0, 0
        return self._obs(raw), info

    def _google_gripper(self, open_cmd: float) -> float:
        """Absolute open (1) / closed (0) → the Google robot's relative command, sticky 15 steps."""
        rel = 0.0 if self._prev_open is None else self._prev_open - open_cmd
        self._prev_open = open_cmd
        if abs(rel) > 0.5 and self._sticky_left == 0:
            self._sticky, self._sticky_left = rel, STICKY_STEPS
        if self._sticky_left:
            rel = self._sticky
            self._sticky_left -= 1
        return float(rel)

    def step(self, action):
        a = np.asarray(action, np.float32)
        open_cmd = float(a[6] > 0.5)
        grip = self._google_gripper(open_cmd) if self.google else 2.0 * open_cmd - 1.0
        raw, reward, terminated, truncated, info = self.env.step(
            np.concatenate([a[:3], _euler_to_axis_angle(a[3:6]), [grip]]))
        info = dict(info, instruction=self.instruction, success=bool(info.get("success", False)),
                    embodiment=self.embodiment)
        return self._obs(raw), reward, terminated, truncated, info


def make_simpler(task_id: str) -> SimplerEnv:
    if not simpler_available():
        raise ImportError("simpler_env is not installed (git clone --recurse-submodules "
                          "https://github.com/simpler-env/SimplerEnv, pip install ManiSkill2_real2sim "
                          "and SimplerEnv); use vgps.envs.make for the embedded suite")
    return SimplerEnv(task_id)
