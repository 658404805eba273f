"""The shared object catalogue and embodiment parameters.

One fixed object order for both embodiments, so ``state`` has the same layout everywhere:
``state = [ee_x, ee_y, ee_z, ee_roll, ee_pitch, ee_yaw, gripper_opening]`` followed by
``(x, y, z, present)`` per catalogue object (robot-base frame, metres; zeros when absent).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectSpec:
    """A rigid tabletop object built from MJCF primitives."""
    name: str
    label: str            # how instructions name it
    rest_z: float         # body-origin height above the table top when resting
    top: float            # height of the top surface above the table top
    radius: float         # footprint radius used for spawning without overlap
    mass: float
    grasp_dz: float = 0.0  # TCP height relative to the body origin when grasping
    inner: float = 0.0    # half-size of the "on"/"in" region when used as a target
    roll: bool = False    # rounded: no random yaw needed


CATALOGUE: tuple[ObjectSpec, ...] = (
    ObjectSpec("spoon", "spoon", 0.011, 0.022, 0.06, 0.03, grasp_dz=0.004),
    ObjectSpec("towel", "towel", 0.004, 0.008, 0.10, 0.30, inner=0.072),
    ObjectSpec("carrot", "carrot", 0.014, 0.028, 0.06, 0.04, grasp_dz=0.002),
    ObjectSpec("plate", "plate", 0.005, 0.010, 0.09, 0.30, inner=0.065),
    ObjectSpec("green_block", "green block", 0.02, 0.04, 0.04, 0.05, grasp_dz=0.002, inner=0.02),
    ObjectSpec("yellow_block", "yellow block", 0.02, 0.04, 0.04, 0.05, grasp_dz=0.002, inner=0.02),
    ObjectSpec("eggplant", "eggplant", 0.022, 0.044, 0.065, 0.06, grasp_dz=0.0),
    ObjectSpec("yellow_basket", "yellow basket", 0.004, 0.058, 0.12, 0.40, inner=0.07),
    ObjectSpec("coke_can", "coke can", 0.06, 0.12, 0.05, 0.15, grasp_dz=0.035, roll=True),
    ObjectSpec("pepsi_can", "pepsi can", 0.06, 0.12, 0.05, 0.15, grasp_dz=0.035, roll=True),
    ObjectSpec("apple", "apple", 0.03, 0.06, 0.05, 0.08, grasp_dz=0.004, roll=True),
    ObjectSpec("orange", "orange", 0.03, 0.06, 0.05, 0.08, grasp_dz=0.004, roll=True),
    ObjectSpec("sponge", "sponge", 0.018, 0.036, 0.06, 0.03, grasp_dz=0.002),
)
OBJECTS = {o.name: o for o in CATALOGUE}
OBJECT_NAMES = tuple(o.name for o in CATALOGUE)
PROPRIO_DIM = 7
PER_OBJECT = 4
STATE_DIM = PROPRIO_DIM + PER_OBJECT * len(CATALOGUE)


def object_slice(name: str) -> slice:
    """Where ``name``'s ``(x, y, z, present)`` lives in ``state``."""
    i = PROPRIO_DIM + PER_OBJECT * OBJECT_NAMES.index(name)
    return slice(i, i + PER_OBJECT)


@dataclass(frozen=True)
class Embodiment:
    """Arm size, control rate, camera and workspace of one robot."""
    name: str
    control_hz: float
    base: tuple[float, float, float]        # shoulder position
    links: tuple[float, float]              # upper arm, forearm (visual arm)
    max_open: float                         # finger gap when open (m)
    max_step: float                         # |dxyz| per control step (m)
    max_rot_step: float                     # |drpy| per control step (rad)
    spawn_x: tuple[float, float]
    spawn_y: tuple[float, float]
    home: tuple[float, float, float]        # TCP start, z above the table top
    workspace_lo: tuple[float, float, float]
    workspace_hi: tuple[float, float, float]
    camera_pos: tuple[float, float, float]
    camera_lookat: tuple[float, float, float]
    camera_fovy: float
    arm_rgba: tuple[float, float, float, float]
    table_rgba: tuple[float, float, float, float]


EMBODIMENTS = {
    "widowx": Embodiment(
        name="widowx", control_hz=5.0, base=(0.0, 0.0, 0.12), links=(0.25, 0.25),
        max_open=0.075, max_step=0.05, max_rot_step=0.25,
        spawn_x=(0.20, 0.40), spawn_y=(-0.15, 0.15), home=(0.20, 0.0, 0.16),
        workspace_lo=(0.08, -0.28, 0.0), workspace_hi=(0.50, 0.28, 0.30),
        camera_pos=(-0.02, 0.30, 0.40), camera_lookat=(0.32, -0.02, 0.0), camera_fovy=55.0,
        arm_rgba=(0.12, 0.12, 0.14, 1.0), table_rgba=(0.62, 0.52, 0.40, 1.0)),
    "google_robot": Embodiment(
        name="google_robot", control_hz=3.0, base=(0.0, -0.22, 0.45), links=(0.38, 0.36),
        max_open=0.10, max_step=0.08, max_rot_step=0.3,
        spawn_x=(0.34, 0.60), spawn_y=(-0.20, 0.20), home=(0.26, -0.16, 0.28),
        workspace_lo=(0.15, -0.38, 0.0), workspace_hi=(0.75, 0.38, 0.45),
        camera_pos=(0.12, 0.0, 0.72), camera_lookat=(0.48, 0.0, 0.0), camera_fovy=50.0,
        arm_rgba=(0.85, 0.85, 0.88, 1.0), table_rgba=(0.45, 0.45, 0.48, 1.0)),
}
