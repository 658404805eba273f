"""Named, seedable distribution-shift variants (the paper's scenes A/B/C, App. D).

``shift`` is ``None`` or names joined by ``+`` (``"table_height_low+distractors"``). Values
that vary (colours, light, camera offsets, distractor choice) are drawn from the reset seed
(:meth:`Shift.draw` gives the episode's :class:`Scene`). The named shifts are *held-out*
variants; ``diverse`` draws *training* scenes from ranges disjoint from them, so data generated
in diverse scenes never show a held-out variant.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INCH = 0.0254
SHIFTS = {
    "table_color": "table recoloured with a hue no training scene uses",
    "table_texture": "unseen checkered tabletop (scene C)",
    "table_height_low": "table 1 inch lower (scene B)",
    "table_height_high": "table 1 inch higher",
    "lighting": "key light dimmer and more oblique than in any training scene",
    "camera_jitter": "camera moved 2-3 cm and turned 2-3 degrees per axis",
    "distractors": "two objects of the embodiment's other tasks as clutter (never clutter in "
                   "training scenes)",
    "diverse": "a training scene: each family below drawn at random per episode from its "
               "training range, disjoint from the held-out variants above",
}
# "diverse" scenes (what training data are generated in) and the held-out variants the evaluation
# shifts use: disjoint ranges, so a held-out scene is unseen by construction.
TRAIN_RANGE = {"hue": (0.0, 0.45), "light_xy": (0.0, 0.35), "light": (0.55, 0.9),
               "cam_pos": (0.0, 0.015), "cam_deg": (0.0, 1.5), "table_dz": (-0.5 * INCH, 0.5 * INCH),
               "distractors": (1, 2)}
HELDOUT_RANGE = {"hue": (0.5, 0.95), "light_xy": (0.5, 0.8), "light": (0.25, 0.45),
                 "cam_pos": (0.02, 0.03), "cam_deg": (2.0, 3.0), "table_dz": (-INCH, INCH),
                 "distractors": (2, 2)}
DIVERSE_P = 0.5          # each family is varied in a training scene with this probability
# Training clutter: objects no task of the embodiment uses. Held-out clutter: objects of the
# embodiment's other tasks, which its data show only as task objects, never as clutter (so a
# state-based policy has seen their state slots, but never as distractors).
TRAIN_DISTRACTORS = {"widowx": ("apple", "sponge", "orange"),
                     "google_robot": ("green_block", "spoon", "carrot")}
DISTRACTOR_POOL = {"widowx": ("eggplant", "spoon", "green_block", "yellow_block"),   # held out
                   "google_robot": ("apple", "orange", "sponge", "pepsi_can")}
_FAMILIES = ("table_color", "table_texture", "table_height", "lighting", "camera_jitter",
             "distractors")


@dataclass(frozen=True)
class Shift:
    names: tuple[str, ...] = ()

    @property
    def diverse(self) -> bool:
        return "diverse" in self.names

    @property
    def table_heights(self) -> tuple[float, ...]:
        """Every table height an episode of this shift can have (each is a compiled model)."""
        if "table_height_low" in self.names or "table_height_high" in self.names:
            return (self.held_out_dz,)
        return (0.0, *TRAIN_RANGE["table_dz"]) if self.diverse else (0.0,)

    @property
    def held_out_dz(self) -> float:
        return (HELDOUT_RANGE["table_dz"][0] if "table_height_low" in self.names else 0.0) + \
               (HELDOUT_RANGE["table_dz"][1] if "table_height_high" in self.names else 0.0)

    def distractor_pool(self, embodiment: str) -> tuple[str, ...]:
        """Objects this shift may add to a scene (compiled into the model, parked when absent)."""
        return (DISTRACTOR_POOL[embodiment] if "distractors" in self.names else ()) + \
               (TRAIN_DISTRACTORS[embodiment] if self.diverse else ())

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def __str__(self) -> str:
        return "+".join(self.names) or "none"

    def draw(self, seed: int) -> "Scene":
        """The concrete scene of the episode with reset seed ``seed``. A held-out shift varies its
        family within :data:`HELDOUT_RANGE`; ``diverse`` varies each other family with probability
        :data:`DIVERSE_P` within :data:`TRAIN_RANGE` (a named held-out shift overrides its family)."""
        if not self.names:
            return Scene()
        on = {f: f in self.names for f in _FAMILIES}
        on["table_height"] = self.held_out_dz != 0.0
        train = dict.fromkeys(_FAMILIES, False)
        if self.diverse:
            pick = np.random.default_rng([seed, 4]).uniform(size=len(_FAMILIES)) < DIVERSE_P
            train = {f: bool(p) and not on[f] for f, p in zip(_FAMILIES, pick)}
        rng = np.random.default_rng([seed, 1])
        sc = {}
        for fam in ("table_color", "lighting", "camera_jitter"):
            if on[fam] or train[fam]:
                sc[fam] = _VISUAL[fam](rng, HELDOUT_RANGE if on[fam] else TRAIN_RANGE)
        texture = "checker" if on["table_texture"] else "speckle" if train["table_texture"] else None
        dz = self.held_out_dz
        if train["table_height"]:
            dz = float(rng.choice(TRAIN_RANGE["table_dz"]))
        n_dis, pool = 0, "held_out" if on["distractors"] else "train" if train["distractors"] else ""
        if pool:
            lo, hi = (HELDOUT_RANGE if pool == "held_out" else TRAIN_RANGE)["distractors"]
            n_dis = int(np.random.default_rng([seed, 5]).integers(lo, hi + 1))
        return Scene(table_dz=dz, texture=texture, distractor_pool=pool, n_distractors=n_dis, **sc)


@dataclass(frozen=True)
class Scene:
    """One episode's scene: the table height and visual changes drawn by :meth:`Shift.draw`."""
    table_dz: float = 0.0
    table_color: tuple | None = None          # rgb
    texture: str | None = None                # "speckle" (training) | "checker" (held out)
    lighting: tuple | None = None             # (direction xyz, diffuse)
    camera_jitter: tuple | None = None        # (position offset xyz m, angles xyz rad)
    distractor_pool: str = ""                 # "" | "train" | "held_out"
    n_distractors: int = 0

    def families(self) -> tuple[str, ...]:
        """Which families differ from the default scene (episode metadata, shift tables)."""
        out = [f for f in ("table_color", "lighting", "camera_jitter") if getattr(self, f) is not None]
        out += [f"table_texture_{self.texture}"] if self.texture else []
        out += ["table_height"] if self.table_dz else []
        out += [f"distractors_{self.distractor_pool}"] if self.n_distractors else []
        return tuple(out)


def _color(rng, r):
    return tuple(_hsv(rng.uniform(*r["hue"]), rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.8)))


def _light(rng, r):
    xy = rng.uniform(*r["light_xy"], 2) * rng.choice([-1.0, 1.0], 2)
    d = np.array([*xy, -1.0])
    return tuple(d / np.linalg.norm(d)), float(rng.uniform(*r["light"]))


def _camera(rng, r):
    sign = lambda: rng.choice([-1.0, 1.0], 3)  # noqa: E731
    pos = rng.uniform(*r["cam_pos"], 3) * sign()
    ang = np.deg2rad(rng.uniform(*r["cam_deg"], 3)) * sign()
    return tuple(pos), tuple(ang)


_VISUAL = {"table_color": _color, "lighting": _light, "camera_jitter": _camera}


def parse_shift(shift: str | None) -> Shift:
    """``None``/``"none"`` or ``+``-joined names from :data:`SHIFTS`; unknown names raise."""
    if shift is None or shift in ("", "none"):
        return Shift()
    names = tuple(shift.split("+"))
    bad = [n for n in names if n not in SHIFTS]
    if bad:
        raise ValueError(f"unknown shift {bad}; valid: {sorted(SHIFTS)} (join with '+')")
    return Shift(names)


def apply_visual(model, ids: dict, base: dict, scene: Scene) -> None:
    """Reset the model's visual fields to ``base`` then apply the scene's changes."""
    model.geom_rgba[ids["table"]] = base["table_rgba"]
    model.geom_matid[ids["table"]] = -1
    model.light_dir[0] = base["light_dir"]
    model.light_diffuse[0] = base["light_diffuse"]
    model.cam_pos[0] = base["cam_pos"]
    model.cam_quat[0] = base["cam_quat"]
    if scene.table_color is not None:
        model.geom_rgba[ids["table"], :3] = scene.table_color
    if scene.texture:
        model.geom_matid[ids["table"]] = ids[scene.texture]
        if scene.texture == "checker":
            model.geom_rgba[ids["table"]] = (1, 1, 1, 1)
    if scene.lighting is not None:
        model.light_dir[0] = scene.lighting[0]
        model.light_diffuse[0] = scene.lighting[1] * np.ones(3)
    if scene.camera_jitter is not None:
        model.cam_pos[0] = base["cam_pos"] + np.asarray(scene.camera_jitter[0])
        model.cam_quat[0] = _quat_mul(base["cam_quat"], _small_quat(scene.camera_jitter[1]))


def _hsv(h, s, v):
    import colorsys
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def _small_quat(ang) -> np.ndarray:
    q = np.array([1.0, *(0.5 * np.asarray(ang))])
    return q / np.linalg.norm(q)


def _quat_mul(a, b) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])
