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
steps once it changes ("sticky gripper", as SimplerEnv does for Octo on the Google robot). The
WidowX gripper is debounced as the released V-GPS evaluation does (its SimplerEnv fork,
``OctoInference.step``): it switches only after the policy has asked for the other state on
``widowx_sticky_steps`` consecutive steps (V-GPS: 3, ``experiments/eval_vgps.py``; 1 = upstream
SimplerEnv, which follows every command at once).
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
WIDOWX_STICKY_STEPS_VGPS = 3        # the released V-GPS evaluation's WidowX debounce


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

    def __init__(self, task_id: str, state_dim: int = 1, make_env=None,
                 widowx_sticky_steps: int = 1):
        if int(widowx_sticky_steps) < 1:
            raise ValueError(f"widowx_sticky_steps must be >= 1, got {widowx_sticky_steps}")
        self.widowx_sticky_steps = int(widowx_sticky_steps)
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
        self._closed, self._disagree = False, 0            # WidowX: starts open
        return self._obs(raw), info

    def _widowx_gripper(self, open_cmd: float) -> float:
        """Absolute open (1) / closed (0) → ±1, switching after ``widowx_sticky_steps``
        consecutive commands for the other state."""
        self._disagree = self._disagree + 1 if (open_cmd < 0.5) != self._closed else 0
        if self._disagree >= self.widowx_sticky_steps:
            self._closed, self._disagree = not self._closed, 0
        return -1.0 if self._closed else 1.0

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
        grip = self._google_gripper(open_cmd) if self.google else self._widowx_gripper(open_cmd)
        raw, reward, terminated, truncated, info = self.env.step(
            np.concatenate([a[:3], _euler_to_axis_angle(a[3:6]), [grip]]))
        info = dict(info, instruction=self.instruction, success=bool(info.get("success", False)),
                    embodiment=self.embodiment)
        return self._obs(raw), reward, terminated, truncated, info


def make_simpler(task_id: str, widowx_sticky_steps: int = 1) -> SimplerEnv:
    """``widowx_sticky_steps``: 1 as upstream SimplerEnv, ``WIDOWX_STICKY_STEPS_VGPS`` (3) as
    the released V-GPS evaluation (``EvalConfig.widowx_sticky_steps`` of the profile)."""
    if not simpler_available():
        raise ImportError("simpler_env is not installed (git clone --recurse-submodules "
                          "https://github.com/simpler-env/SimplerEnv, pip install ManiSkill2_real2sim "
                          "and SimplerEnv); use vgps.envs.make for the embedded suite")
    return SimplerEnv(task_id, widowx_sticky_steps=widowx_sticky_steps)


def env_factory(eval_cfg, render: bool = False):
    """``(make_env, description)``: the environments an evaluation runs in. SIMPLER when
    ``simpler_env`` imports (image observations, with ``eval_cfg.widowx_sticky_steps``, an
    :class:`vgps.config.EvalConfig` field), otherwise the embedded MuJoCo suite: state, plus the
    camera frame when ``render`` (for critics or policies that read images)."""
    if simpler_available():
        steps = eval_cfg.widowx_sticky_steps
        return (lambda task: make_simpler(task, widowx_sticky_steps=steps),
                "SIMPLER is installed: evaluating in SIMPLER (image observations)")
    import vgps.envs as envs
    return (lambda task: envs.make(task, render=render),
            "SIMPLER (simpler_env) is not installed here: evaluating on the embedded MuJoCo suite, "
            + ("state observations and camera frames" if render else "state observations"))
