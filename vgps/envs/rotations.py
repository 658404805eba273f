"""Small quaternion helpers (w, x, y, z); Euler angles are extrinsic x-y-z (roll, pitch, yaw)."""
from __future__ import annotations

import numpy as np


def euler_to_quat(rpy) -> np.ndarray:
    r, p, y = (0.5 * float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy])


def quat_to_euler(q) -> np.ndarray:
    w, x, y, z = (float(v) for v in q)
    roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return np.array([roll, pitch, yaw])


def quat_z_to(v) -> np.ndarray:
    """Quaternion rotating the +z axis onto direction ``v``."""
    v = np.asarray(v, float) / max(np.linalg.norm(v), 1e-12)
    if v[2] < -0.999999:
        return np.array([0.0, 1.0, 0.0, 0.0])
    q = np.array([1.0 + v[2], -v[1], v[0], 0.0])
    return q / np.linalg.norm(q)
