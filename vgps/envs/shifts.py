"""Named, seedable distribution-shift variants (the paper's scenes A/B/C, App. D).

``shift`` is ``None`` or names joined by ``+`` (``"table_height_low+distractors"``). Values
that vary (colours, light, camera offsets, distractor choice) are drawn from the reset seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INCH = 0.0254
SHIFTS = {
    "table_color": "table recoloured (random hue per episode)",
    "table_texture": "unseen checkered tabletop (scene C)",
    "table_height_low": "table 1 inch lower (scene B)",
    "table_height_high": "table 1 inch higher",
    "lighting": "key light direction and brightness changed",
    "camera_jitter": "camera moved up to 3 cm and turned up to 3 degrees",
    "distractors": "two extra catalogue objects on the table",
}
DISTRACTOR_POOL = {
    "widowx": ("apple", "sponge", "orange", "coke_can"),
    "google_robot": ("green_block", "yellow_block", "carrot", "spoon"),
}


@dataclass(frozen=True)
class Shift:
    names: tuple[str, ...] = ()

    @property
    def table_dz(self) -> float:
        return (-INCH if "table_height_low" in self.names else 0.0) + \
               (INCH if "table_height_high" in self.names else 0.0)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def __str__(self) -> str:
        return "+".join(self.names) or "none"


def parse_shift(shift: str | None) -> Shift:
    """``None``/``"none"`` or ``+``-joined names from :data:`SHIFTS`; unknown names raise."""
    if shift is None or shift in ("", "none"):
        return Shift()
    names = tuple(shift.split("+"))
    bad = [n for n in names if n not in SHIFTS]
    if bad:
        raise ValueError(f"unknown shift {bad}; valid: {sorted(SHIFTS)} (join with '+')")
    return Shift(names)


def apply_visual(model, ids: dict, base: dict, shift: Shift, rng: np.random.Generator) -> None:
    """Reset the model's visual fields to ``base`` then apply the shift's seeded changes."""
    model.geom_rgba[ids["table"]] = base["table_rgba"]
    model.geom_matid[ids["table"]] = -1
    model.light_dir[0] = base["light_dir"]
    model.light_diffuse[0] = base["light_diffuse"]
    model.cam_pos[0] = base["cam_pos"]
    model.cam_quat[0] = base["cam_quat"]
    if "table_color" in shift:
        hue = rng.uniform(0, 1)
        model.geom_rgba[ids["table"], :3] = _hsv(hue, rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.8))
    if "table_texture" in shift:
        model.geom_matid[ids["table"]] = ids["checker"]
        model.geom_rgba[ids["table"]] = (1, 1, 1, 1)
    if "lighting" in shift:
        d = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8), -1.0])
        model.light_dir[0] = d / np.linalg.norm(d)
        model.light_diffuse[0] = rng.uniform(0.25, 1.0) * np.ones(3)
    if "camera_jitter" in shift:
        model.cam_pos[0] = base["cam_pos"] + rng.uniform(-0.03, 0.03, 3)
        ang = np.deg2rad(rng.uniform(-3, 3, 3))
        model.cam_quat[0] = _quat_mul(base["cam_quat"], _small_quat(ang))


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
