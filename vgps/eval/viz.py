"""Drawing K proposals on the camera image (notebook 04)."""
from __future__ import annotations

import numpy as np


def project_points(env, points: np.ndarray, camera: str = "main") -> np.ndarray:
    """World points ``[N, 3]`` → pixel coordinates ``[N, 2]`` (x right, y down) of ``env``'s camera
    image (pinhole model from MuJoCo's camera pose and ``fovy``)."""
    import mujoco  # lazy: importing mujoco before tensorflow segfaults TF's import
    u = env.unwrapped
    m, d = u.model, u.data
    cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    pos, rot = d.cam_xpos[cid], d.cam_xmat[cid].reshape(3, 3)
    size = u.image_size
    f = 0.5 * size / np.tan(np.deg2rad(m.cam_fovy[cid]) / 2)
    pc = (np.asarray(points) - pos) @ rot                       # camera frame: x right, y up, -z ahead
    depth = np.maximum(-pc[:, 2], 1e-6)
    return np.stack([size / 2 + f * pc[:, 0] / depth, size / 2 - f * pc[:, 1] / depth], -1)


def draw_proposals(ax, env, image, candidates, q=None, chosen=None, scale: float = 8.0, tcp=None):
    """Arrows from the gripper to ``tcp + scale·Δxyz`` for each candidate ``[K, 7]`` on ``image``;
    colour = Q (viridis), open-gripper proposals dashed, the chosen one thick red. ``tcp``: the
    gripper position when ``image`` was recorded (default: ``env``'s current one; the camera is
    fixed, so a recorded frame is drawn correctly from any later state of the same episode)."""
    import matplotlib.pyplot as plt
    ax.imshow(image)
    tcp = env.unwrapped.tcp_position() if tcp is None else np.asarray(tcp, float)
    start = project_points(env, tcp[None])[0]
    ends = project_points(env, tcp + scale * np.asarray(candidates)[:, :3])
    qn = None
    if q is not None and np.all(np.isfinite(q)):
        qn = (q - q.min()) / max(q.max() - q.min(), 1e-9)
    for k, e in enumerate(ends):
        c = plt.cm.viridis(qn[k]) if qn is not None else "w"
        ls = "--" if candidates[k][-1] > 0.5 else "-"
        ax.annotate("", e, start, arrowprops=dict(arrowstyle="->", color=c, lw=1, ls=ls, alpha=0.8))
    if chosen is not None:
        ax.annotate("", ends[chosen], start, arrowprops=dict(arrowstyle="->", color="red", lw=2.5))
    ax.set_xlim(0, image.shape[1]); ax.set_ylim(image.shape[0], 0)
    ax.axis("off")
