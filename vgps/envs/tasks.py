"""Task specifications and success predicates (judged from simulator state only).

A task moves ``source`` relative to ``target``; ``kind`` picks the predicate:
``on`` (resting on top, released), ``in`` (inside the basket, released), ``pick`` (grasped and
lifted), ``near`` (released on the table close to ``target``, nothing else displaced).
Success must hold on ``HOLD_STEPS`` consecutive control steps (like SIMPLER's consecutive check),
then the episode terminates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vgps.envs.catalogue import OBJECTS

HOLD_STEPS = 2
LIFT_HEIGHT = 0.04          # pick: object origin raised this much above its start
NEAR_DIST = 0.14            # near: xy centre distance below this
NEAR_DISTURB = 0.05         # near: no other object moved more than this (xy)
REST_TOL = (0.012, 0.02)    # on: below / above the nominal resting height
MOVE_NEAR_POOL = ("coke_can", "pepsi_can", "apple", "orange", "sponge")


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    embodiment: str
    instruction: str                  # may contain {object1} / {object2}
    horizon: int
    kind: str                         # on | in | pick | near
    source: str = ""                  # empty for move-near (drawn per episode)
    target: str = ""
    extra: tuple[str, ...] = ()       # other objects always present
    pool: tuple[str, ...] = ()        # move-near / pick: draw the others from here
    n_pool: int = 0                   # how many pool objects are present
    is_eval: bool = False


def _t(*a, **k) -> TaskSpec:
    return TaskSpec(*a, **k)


EVAL_SPECS = (
    _t("widowx_spoon_on_towel", "widowx", "put the spoon on the towel", 60, "on", "spoon", "towel", is_eval=True),
    _t("widowx_carrot_on_plate", "widowx", "put carrot on plate", 60, "on", "carrot", "plate", is_eval=True),
    _t("widowx_stack_blocks", "widowx", "stack the green block on the yellow block", 60, "on",
       "green_block", "yellow_block", is_eval=True),
    _t("widowx_eggplant_in_basket", "widowx", "put eggplant into yellow basket", 120, "in",
       "eggplant", "yellow_basket", is_eval=True),
    _t("google_robot_pick_coke_can", "google_robot", "pick coke can", 80, "pick", "coke_can", is_eval=True),
    _t("google_robot_move_near", "google_robot", "move {object1} near {object2}", 80, "near",
       pool=MOVE_NEAR_POOL, n_pool=3, is_eval=True),
)
TRAIN_ONLY_SPECS = (
    _t("widowx_carrot_on_towel", "widowx", "put the carrot on the towel", 60, "on", "carrot", "towel"),
    _t("widowx_spoon_on_plate", "widowx", "put the spoon on the plate", 60, "on", "spoon", "plate"),
    _t("widowx_eggplant_on_towel", "widowx", "put the eggplant on the towel", 60, "on", "eggplant", "towel"),
    _t("widowx_stack_yellow_on_green", "widowx", "stack the yellow block on the green block", 60, "on",
       "yellow_block", "green_block"),
    _t("widowx_green_block_in_basket", "widowx", "put the green block into the yellow basket", 120, "in",
       "green_block", "yellow_basket"),
    _t("widowx_carrot_in_basket", "widowx", "put the carrot into the yellow basket", 120, "in",
       "carrot", "yellow_basket"),
    _t("google_robot_pick_apple", "google_robot", "pick apple", 80, "pick", "apple",
       pool=("pepsi_can", "orange", "sponge"), n_pool=1),
    _t("google_robot_pick_pepsi_can", "google_robot", "pick pepsi can", 80, "pick", "pepsi_can",
       pool=("coke_can", "apple", "sponge"), n_pool=1),
    _t("google_robot_pick_sponge", "google_robot", "pick sponge", 80, "pick", "sponge",
       pool=("coke_can", "orange", "apple"), n_pool=1),
    _t("google_robot_pick_orange", "google_robot", "pick orange", 80, "pick", "orange",
       pool=("pepsi_can", "apple", "sponge"), n_pool=1),
)
TASKS = {t.task_id: t for t in EVAL_SPECS + TRAIN_ONLY_SPECS}
EVAL_TASKS = tuple(t.task_id for t in EVAL_SPECS)
TRAIN_TASKS = tuple(TASKS)


def task_objects(spec: TaskSpec) -> tuple[str, ...]:
    """Every object the task's scene may contain (fixed per task; absent ones are parked)."""
    names = [n for n in (spec.source, spec.target, *spec.extra, *spec.pool) if n]
    return tuple(dict.fromkeys(names))


# --- predicates: pure functions of positions, unit-tested directly -------------------------------

def on_top(src_pos, tgt_pos, src: str, tgt: str, table_z: float, grasped: bool) -> bool:
    """``src`` rests on ``tgt``'s top surface, inside its footprint, and is not held."""
    s, t = OBJECTS[src], OBJECTS[tgt]
    d = np.abs(np.asarray(src_pos[:2]) - np.asarray(tgt_pos[:2]))
    inside = bool(np.hypot(*d) <= t.inner) if tgt == "plate" else bool(np.all(d <= t.inner))
    nominal = tgt_pos[2] - t.rest_z + t.top + s.rest_z
    resting = nominal - REST_TOL[0] <= src_pos[2] <= nominal + REST_TOL[1]
    return inside and resting and not grasped


def inside(src_pos, tgt_pos, src: str, tgt: str, table_z: float, grasped: bool) -> bool:
    """``src`` lies inside the container ``tgt`` (footprint and below its rim), not held."""
    t = OBJECTS[tgt]
    d = np.abs(np.asarray(src_pos[:2]) - np.asarray(tgt_pos[:2]))
    rim = tgt_pos[2] - t.rest_z + t.top
    return bool(np.all(d <= t.inner)) and src_pos[2] < rim and not grasped


def lifted(src_pos, init_pos, grasped: bool) -> bool:
    """``src`` is held and raised at least ``LIFT_HEIGHT`` above where it started."""
    return grasped and src_pos[2] - init_pos[2] >= LIFT_HEIGHT


def near(src_pos, tgt_pos, src: str, table_z: float, grasped: bool, others_moved: float) -> bool:
    """``src`` released on the table within ``NEAR_DIST`` of ``tgt``; nothing else pushed away."""
    s = OBJECTS[src]
    close = np.hypot(*(np.asarray(src_pos[:2]) - np.asarray(tgt_pos[:2]))) < NEAR_DIST
    on_table = abs(src_pos[2] - (table_z + s.rest_z)) < 0.015
    return bool(close) and on_table and not grasped and others_moved < NEAR_DISTURB
