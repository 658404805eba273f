"""MJCF scene building from primitives: table, visual arm, mocap-welded parallel gripper, objects.

Physics settings follow the probes in the shared notes (grasping is reliable only with them):
mocap weld with zero relative pose, gravity compensation on the gripper, finger force limit
±8 N, ``solimp 0.95 0.99``, friction 1.5, ``condim 4``, elliptic cones, ``impratio 10``,
``implicitfast``; shadows and multisampling off for ~3 ms 64-px frames.
"""
from __future__ import annotations

import numpy as np

from vgps.envs.catalogue import OBJECTS, Embodiment

TIMESTEP = 0.004
TABLE_HALF = (0.45, 0.55, 0.02)
FINGER_FORCE = 8.0
FINGER_ARMATURE = 0.3
CONTACT_SOLREF = "0.01 1"
MASS_SCALE = 1.0
PARK_Z = -3.0          # absent objects float (collision-free) far below the floor


def _v(x) -> str:
    return " ".join(f"{float(t):.6g}" for t in x)


def look_at_quat(pos, target) -> np.ndarray:
    """MuJoCo camera quaternion (w, x, y, z) looking from ``pos`` at ``target``, z up."""
    pos, target = np.asarray(pos, float), np.asarray(target, float)
    back = pos - target
    back /= np.linalg.norm(back)                # camera +z points away from the scene
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    rot = np.stack([right, up, back], axis=1)   # columns: camera x, y, z in world
    return mat_to_quat(rot)


def mat_to_quat(r: np.ndarray) -> np.ndarray:
    """Rotation matrix to unit quaternion (w, x, y, z)."""
    t = np.trace(r)
    if t > 0:
        s = 2.0 * np.sqrt(t + 1.0)
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        q = np.empty(4)
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    q = np.asarray(q, float)
    return q / np.linalg.norm(q)


def _object_xml(name: str) -> str:
    """Geoms of one catalogue object (body origin at its resting centre)."""
    g = f'class="obj"'
    shapes = {
        "spoon": f'<geom name="spoon_g0" {g} type="capsule" size="0.011 0.04" euler="0 90 0" rgba="0.78 0.78 0.82 1"/>'
                 f'<geom name="spoon_g1" {g} type="ellipsoid" size="0.024 0.017 0.008" pos="0.058 0 -0.003" rgba="0.78 0.78 0.82 1"/>',
        "towel": f'<geom name="towel_g0" {g} type="box" size="0.08 0.08 0.004" rgba="0.2 0.35 0.85 1"/>',
        "carrot": f'<geom name="carrot_g0" {g} type="capsule" size="0.014 0.038" euler="0 90 0" rgba="1 0.5 0.05 1"/>'
                  f'<geom name="carrot_g1" class="vis" type="box" size="0.015 0.006 0.006" pos="-0.065 0 0" rgba="0.1 0.6 0.1 1"/>',
        "plate": f'<geom name="plate_g0" {g} type="cylinder" size="0.075 0.005" rgba="0.96 0.96 0.96 1"/>',
        "green_block": f'<geom name="green_block_g0" {g} type="box" size="0.02 0.02 0.02" rgba="0.1 0.75 0.2 1"/>',
        "yellow_block": f'<geom name="yellow_block_g0" {g} type="box" size="0.02 0.02 0.02" rgba="0.95 0.85 0.1 1"/>',
        "eggplant": f'<geom name="eggplant_g0" {g} type="capsule" size="0.022 0.035" euler="0 90 0" rgba="0.42 0.12 0.5 1"/>'
                    f'<geom name="eggplant_g1" class="vis" type="cylinder" size="0.008 0.01" euler="0 90 0" pos="-0.065 0 0" rgba="0.1 0.5 0.1 1"/>',
        "coke_can": f'<geom name="coke_can_g0" {g} type="cylinder" size="0.033 0.06" rgba="0.85 0.05 0.05 1"/>'
                    f'<geom name="coke_can_g1" class="vis" type="cylinder" size="0.0335 0.012" pos="0 0 0.01" rgba="0.95 0.95 0.95 1"/>',
        "pepsi_can": f'<geom name="pepsi_can_g0" {g} type="cylinder" size="0.033 0.06" rgba="0.1 0.2 0.75 1"/>'
                     f'<geom name="pepsi_can_g1" class="vis" type="cylinder" size="0.0335 0.012" pos="0 0 0.01" rgba="0.9 0.1 0.1 1"/>',
        "apple": f'<geom name="apple_g0" {g} type="ellipsoid" size="0.035 0.035 0.03" rgba="0.75 0.1 0.15 1"/>',
        "orange": f'<geom name="orange_g0" {g} type="ellipsoid" size="0.035 0.035 0.03" rgba="1 0.55 0.0 1"/>',
        "sponge": f'<geom name="sponge_g0" {g} type="box" size="0.045 0.03 0.018" rgba="0.65 0.85 0.2 1"/>',
    }
    if name == "yellow_basket":
        c, h, t, w = 'rgba="0.95 0.8 0.1 1"', 0.027, 0.006, 0.08
        return (f'<geom name="yellow_basket_g0" {g} type="box" size="{w} {w} 0.004" {c}/>'
                f'<geom name="yellow_basket_g1" {g} type="box" size="{t} {w} {h}" pos="{w - t} 0 {h}" {c}/>'
                f'<geom name="yellow_basket_g2" {g} type="box" size="{t} {w} {h}" pos="{t - w} 0 {h}" {c}/>'
                f'<geom name="yellow_basket_g3" {g} type="box" size="{w} {t} {h}" pos="0 {w - t} {h}" {c}/>'
                f'<geom name="yellow_basket_g4" {g} type="box" size="{w} {t} {h}" pos="0 {t - w} {h}" {c}/>')
    return shapes[name]


def build_xml(emb: Embodiment, object_names: tuple[str, ...], table_dz: float = 0.0,
              speckle: bool = False) -> str:
    """MJCF text for one embodiment with the given objects (positions set at reset); ``speckle``
    adds the training scenes' speckled table material (tinted by the table colour)."""
    speckle_xml = ('<texture name="speckle" type="2d" builtin="flat" mark="random" random="0.3" '
                   'rgb1="1 1 1" markrgb="0.55 0.55 0.55" width="64" height="64"/>'
                   '<material name="table_speckle" texture="speckle" texrepeat="4 4"/>'
                   if speckle else "")
    half_gap = emb.max_open / 2
    tx = 0.5 * (emb.spawn_x[0] + emb.spawn_x[1])
    objs = []
    for i, name in enumerate(object_names):
        spec = OBJECTS[name]
        objs.append(f'<body name="{name}" pos="{3 + i * 0.3} 3 {PARK_Z}">'
                    f'<freejoint name="{name}_joint"/>'
                    f'<inertial pos="0 0 0" mass="{spec.mass * MASS_SCALE}" diaginertia="{_inertia(spec)}"/>'
                    f'{_object_xml(name)}</body>')
    arm = "".join(
        f'<body name="{n}" mocap="true"><geom class="vis" type="capsule" size="{r} {L / 2}" '
        f'rgba="{_v(emb.arm_rgba)}"/></body>'
        for n, r, L in (("arm_upper", 0.022, emb.links[0]), ("arm_fore", 0.018, emb.links[1]),
                        ("arm_wrist", 0.016, 0.05)))
    cam_quat = look_at_quat(emb.camera_pos, emb.camera_lookat)
    return f"""
<mujoco model="vgps_{emb.name}">
  <compiler angle="degree" autolimits="true"/>
  <option timestep="{TIMESTEP}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5" specular="0.05 0.05 0.05"/>
    <rgba haze="0.6 0.7 0.8 1"/>
  </visual>
  <asset>
    <texture name="checker" type="2d" builtin="checker" rgb1="0.85 0.85 0.85" rgb2="0.25 0.3 0.35" width="64" height="64"/>
    <material name="table_checker" texture="checker" texrepeat="6 6"/>{speckle_xml}
  </asset>
  <default>
    <geom solref="{CONTACT_SOLREF}" solimp="0.95 0.99 0.001" friction="1.5 0.005 0.0001" condim="4"/>
    <default class="obj"><geom density="0"/></default>
    <default class="vis"><geom contype="0" conaffinity="0" density="0"/></default>
  </default>
  <worldbody>
    <light name="key" pos="{tx} 0 1.5" dir="0 0 -1" diffuse="0.6 0.6 0.6" castshadow="false"/>
    <geom name="floor" type="plane" size="3 3 0.05" pos="0 0 -0.75" rgba="0.35 0.33 0.3 1"/>
    <geom name="table" type="box" size="{_v(TABLE_HALF)}" pos="{tx} 0 {table_dz - TABLE_HALF[2]}" rgba="{_v(emb.table_rgba)}" friction="1 0.005 0.0001"/>
    <geom name="robot_base" class="vis" type="cylinder" size="0.05 {emb.base[2] / 2}" pos="{emb.base[0]} {emb.base[1]} {emb.base[2] / 2}" rgba="{_v(emb.arm_rgba)}"/>
    <camera name="main" pos="{_v(emb.camera_pos)}" quat="{_v(cam_quat)}" fovy="{emb.camera_fovy}"/>
    {arm}
    <body name="ee_target" mocap="true" pos="{_v(emb.home)}"/>
    <body name="palm" pos="{_v(emb.home)}" gravcomp="1">
      <freejoint name="palm_joint"/>
      <inertial pos="0 0 0.05" mass="0.4" diaginertia="0.001 0.001 0.001"/>
      <geom name="palm_g" type="box" size="0.02 {half_gap + 0.012} 0.012" pos="0 0 0.066" rgba="{_v(emb.arm_rgba)}" friction="0.3 0.005 0.0001"/>
      <body name="finger_l" gravcomp="1">
        <joint name="finger_l" type="slide" axis="0 1 0" range="0 {half_gap}" damping="2" armature="{FINGER_ARMATURE}"/>
        <geom name="finger_l_g" type="box" size="0.012 0.005 0.033" pos="0 0.005 0.021" mass="0.03" rgba="0.3 0.3 0.32 1"/>
      </body>
      <body name="finger_r" gravcomp="1">
        <joint name="finger_r" type="slide" axis="0 -1 0" range="0 {half_gap}" damping="2" armature="{FINGER_ARMATURE}"/>
        <geom name="finger_r_g" type="box" size="0.012 0.005 0.033" pos="0 -0.005 0.021" mass="0.03" rgba="0.3 0.3 0.32 1"/>
      </body>
    </body>
    {"".join(objs)}
  </worldbody>
  <equality>
    <weld body1="ee_target" body2="palm" relpose="0 0 0 1 0 0 0" solref="0.02 1"/>
  </equality>
  <actuator>
    <position name="finger_l" joint="finger_l" kp="300" ctrlrange="0 {half_gap}" forcerange="-{FINGER_FORCE} {FINGER_FORCE}"/>
    <position name="finger_r" joint="finger_r" kp="300" ctrlrange="0 {half_gap}" forcerange="-{FINGER_FORCE} {FINGER_FORCE}"/>
  </actuator>
</mujoco>
"""


def _inertia(spec) -> str:
    i = 0.4 * spec.mass * MASS_SCALE * max(spec.rest_z, 0.02) ** 2 + 1e-6
    return _v((i, i, i))
