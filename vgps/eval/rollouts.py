"""Rollouts you can watch: one episode seed with and without V-GPS, side by side, as an animated
GIF (notebooks 04 and 05).

:func:`record` replays one episode exactly as the evaluation ran it (the episode seed's own RNG
stream, :func:`vgps.eval.harness.run_lockstep`) in a rendering environment and keeps every
camera frame and its outcome category (:mod:`vgps.eval.failures`). :func:`side_by_side_gif`
writes two recordings as one GIF: a caption per side, a step counter, the final frames held, one
palette for all frames, no dithering, no timestamp, so the bytes depend only on the frames.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vgps.eval.failures import failure_modes


class _Recorder:
    """An environment proxy that keeps the camera frame of every observation it returns."""

    def __init__(self, env):
        self.env, self.frames, self.instruction = env, [], ""

    @property
    def unwrapped(self):
        return self.env.unwrapped

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        self.frames = [np.asarray(obs["image"], np.uint8).copy()]
        self.instruction = str(info.get("instruction", ""))
        return obs, info

    def step(self, action):
        out = self.env.step(action)
        self.frames.append(np.asarray(out[0]["image"], np.uint8).copy())
        return out


def record(agent, env, env_seed: int) -> dict:
    """Run one episode (seed ``env_seed``, its own RNG stream as in the evaluator) of ``agent`` in
    ``env``, which must render (``envs.make(task, render=True)``). Returns ``frames`` (uint8
    ``[T + 1, H, W, 3]``, the reset frame first), ``success``, ``outcome`` (a
    :data:`vgps.eval.failures.CATEGORIES` entry), ``steps`` and ``instruction``."""
    if not getattr(env.unwrapped, "do_render", True):
        raise ValueError("record() needs a rendering environment: envs.make(task, render=True)")
    rec = _Recorder(env)
    row = failure_modes(agent, [rec], [int(env_seed)]).iloc[0]
    return {"frames": np.stack(rec.frames), "success": bool(row["success"]),
            "outcome": str(row["outcome"]), "steps": len(rec.frames) - 1,
            "instruction": rec.instruction}


def _font(size: int):
    """DejaVu Sans as shipped with matplotlib (Greek letters, the same file wherever matplotlib's
    pinned version is installed)."""
    import matplotlib
    from PIL import ImageFont
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"),
                              size)


TEXT_COLOURS = ((0, 0, 0), (255, 255, 255), (0, 120, 0), (180, 0, 0), (90, 90, 90))


def side_by_side_gif(left: dict, right: dict, path: str | Path, titles: tuple[str, str],
                     *, scale: int = 2, fps: int = 8, stride: int = 1, hold: int = 8,
                     header: str = "") -> Path:
    """Write ``left`` and ``right`` (:func:`record` results) side by side as an animated GIF at
    ``path`` (atomically: a temporary file, then renamed). Each side shows its title and outcome;
    frames are upscaled ``scale`` × (nearest neighbour), every ``stride``-th step is kept, the
    shorter episode holds its last frame, and the last frame stays ``hold`` frame times longer.
    Returns the path."""
    from PIL import Image, ImageDraw
    path = Path(path)
    a, b = np.asarray(left["frames"]), np.asarray(right["frames"])
    if a.shape[1:] != b.shape[1:] or a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] of one size, got {a.shape} and {b.shape}")
    n = max(len(a), len(b))
    idx = list(range(0, n, max(1, int(stride))))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    h, w = a.shape[1] * scale, a.shape[2] * scale
    gap, top, bottom = 6, 34 + (16 if header else 0), 18
    font, small = _font(12), _font(11)
    canvases = []
    for i in idx:
        canvas = Image.new("RGB", (2 * w + gap, h + top + bottom), "white")
        draw = ImageDraw.Draw(canvas)
        if header:
            draw.text((4, 2), header, fill="black", font=font)
        for j, (rec, frames, title) in enumerate(((left, a, titles[0]), (right, b, titles[1]))):
            k = min(i, len(frames) - 1)
            img = Image.fromarray(frames[k]).resize((w, h), Image.Resampling.NEAREST)
            x0 = j * (w + gap)
            canvas.paste(img, (x0, top))
            draw.text((x0 + 2, top - 32), title, fill="black", font=font)
            done = k == len(frames) - 1
            colour = TEXT_COLOURS[2 if rec["success"] else 3] if done else TEXT_COLOURS[4]
            status = rec["outcome"] if done else "running"
            draw.text((x0 + 2, top - 16), status, fill=colour, font=small)
            draw.text((x0 + 2, top + h + 2), f"step {k} / {len(frames) - 1}", fill="black", font=small)
        canvases.append(canvas)
    # one palette for the whole animation: median cut over all frames plus the exact text colours
    # (a few text pixels would otherwise be merged into a scene colour), no dithering
    strip = Image.new("RGB", (canvases[0].width, canvases[0].height * len(canvases)))
    for k, c in enumerate(canvases):
        strip.paste(c, (0, k * c.height))
    scene = strip.quantize(colors=256 - len(TEXT_COLOURS), method=Image.Quantize.MEDIANCUT,
                           dither=Image.Dither.NONE).getpalette()[:3 * (256 - len(TEXT_COLOURS))]
    entries = scene + [v for c in TEXT_COLOURS for v in c]
    palette = Image.new("P", (1, 1))
    palette.putpalette(entries + [0] * (768 - len(entries)))
    frames = [c.quantize(palette=palette, dither=Image.Dither.NONE) for c in canvases]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        step_ms = 10 * max(2, int(round(100 / fps)))        # GIF stores centiseconds
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                       duration=[step_ms] * (len(frames) - 1) + [step_ms * (1 + int(hold))],
                       optimize=False, disposal=1)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def contrast_gif(agents: tuple, task: str, env_seed: int, path: str | Path, titles: tuple[str, str],
                 *, image_size: int = 128, **gif) -> tuple[dict, dict]:
    """Record episode ``env_seed`` of ``task`` for both ``agents`` (e.g. a policy alone and
    steered) in rendering environments at ``image_size`` px, and write them side by side with
    :func:`side_by_side_gif` (``gif``: its keyword arguments; the header defaults to the
    episode's instruction). Returns the two recordings."""
    import vgps.envs as envs
    recs = []
    for agent in agents:
        env = envs.make(task, render=True, image_size=image_size)
        try:
            recs.append(record(agent, env, env_seed))
        finally:
            env.close()
    gif.setdefault("header", recs[0]["instruction"])
    side_by_side_gif(recs[0], recs[1], path, titles, **gif)
    return recs[0], recs[1]


def first_contrast(outcomes, base: str, steered: str, prefer: str = "never grasped"):
    """The first episode (in ``outcomes`` row order) where agent ``base`` fails and ``steered``
    succeeds on the same task and seed, preferring a base failure of kind ``prefer`` (the grasp:
    the decision point of the paper's §4). ``outcomes``: rows with ``task, env_seed, agent,
    outcome``. Returns the row (task, env_seed, base outcome) or None."""
    b = outcomes[outcomes["agent"] == base].set_index(["task", "env_seed"])["outcome"]
    s = outcomes[outcomes["agent"] == steered].set_index(["task", "env_seed"])["outcome"]
    pairs = [(t, e, b[(t, e)]) for (t, e) in b.index
             if (t, e) in s.index and b[(t, e)] != "success" and s[(t, e)] == "success"]
    pick = [p for p in pairs if p[2] == prefer] or pairs
    if not pick:
        return None
    t, e, o = pick[0]
    return {"task": t, "env_seed": int(e), "base_outcome": o}
