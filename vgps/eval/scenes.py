"""Scene shifts, the analogue of the paper's real-world scenes A/B/C (App. D, Table 1): each policy
with and without V-GPS in the training scenes and in every held-out scene family.

A scene is a shift string of :mod:`vgps.envs.shifts`: ``"diverse"`` draws training scenes (what
diverse-scene data are generated in), the named shifts are variants no training scene shows.
:func:`evaluate_scenes` runs the same episodes (task, seed, episode) in every scene, one cached
evaluator per scene; :func:`shift_table` pairs V-GPS with the base policy on those episodes.
"""
from __future__ import annotations

import pandas as pd

from vgps.eval.harness import RunConfig, make_evaluator
from vgps.eval.stats import paired_difference, stratified_bootstrap_mean

# name -> (shift, what it is, embodiments it applies to (None: all))
SCENES = {
    "training scenes": ("diverse", "a fresh draw of the training scenes", None),
    "unseen table colour": ("table_color", "a table hue no training scene has", None),
    "checker texture": ("table_texture", "checkered tabletop (scene C)", None),
    "table 1 in lower": ("table_height_low", "table 1 inch lower (scene B)", None),
    "table 1 in higher": ("table_height_high", "table 1 inch higher", None),
    "dim oblique light": ("lighting", "key light dimmer and more oblique", None),
    "camera moved": ("camera_jitter", "camera moved 2-3 cm, turned 2-3 degrees", None),
    "unseen distractors": ("distractors", "two objects of the held-out distractor pool", None),
    "texture + distractors": ("table_texture+distractors", "one combination (WidowX)", ("widowx",)),
    "light + camera": ("lighting+camera_jitter", "one combination (Google robot)", ("google_robot",)),
}


def scene_tasks(scene: str, tasks) -> list[str]:
    """The tasks of ``tasks`` that ``scene`` applies to (its embodiments)."""
    from vgps.envs.tasks import TASKS
    embs = SCENES[scene][2]
    return [t for t in tasks if embs is None or TASKS[t].embodiment in embs]


def evaluate_scenes(cache_dir, label: str, policies: dict, configs, tasks, seeds, episodes: int, *,
                    critic=None, encoder=None, scenes=tuple(SCENES), render: bool = False,
                    num_envs: int = 16, key_parts=(), progress=None) -> pd.DataFrame:
    """Per-episode results of every :class:`~vgps.eval.harness.RunConfig` in ``configs`` in every
    scene (a ``scene`` column added). The same (task, seed, episode) has the same layout in every
    scene (shifts draw from their own seed streams); ``render=True`` for critics or policies that
    read the camera. ``progress(scene)`` is called before each scene."""
    unknown = [s for s in scenes if s not in SCENES]
    if unknown:
        raise KeyError(f"unknown scene(s) {unknown}; choose from {list(SCENES)}")
    out = []
    for scene in scenes:
        if progress:
            progress(scene)
        ev = make_evaluator(cache_dir, f"{label}-{SCENES[scene][0]}", policies, critic=critic,
                            encoder=encoder, shift=SCENES[scene][0], render=render,
                            num_envs=num_envs, key_parts=key_parts)
        for cfg in configs:
            df = ev.run(cfg, scene_tasks(scene, tasks), seeds, episodes)
            out.append(df.assign(scene=scene))
    return pd.concat(out, ignore_index=True)


def shift_table(df: pd.DataFrame, steered: RunConfig | None = None, reps: int = 2000,
                seed: int = 0) -> pd.DataFrame:
    """One row per (scene, policy): base and V-GPS success (mean over tasks, stratified-bootstrap
    95 % interval), the paired improvement on the same episodes with its interval, and how much of
    the base policy's training-scene success it keeps in the scene (``base kept``). ``steered``
    picks the V-GPS rows (default: the only non-base configuration in ``df``)."""
    base = df[df["method"] == "policy"]
    v = df[df["method"] != "policy"]
    if steered is not None:
        v = v[(v["method"] == steered.method) & (v["K"] == steered.K) & (v["beta"] == steered.beta)]
    if v[["method", "K", "beta"]].drop_duplicates().shape[0] != 1:
        raise ValueError("several V-GPS settings in the results: pass steered=RunConfig(...)")
    order = [s for s in SCENES if s in set(df["scene"])]
    train = base[base["scene"] == "training scenes"]
    rows = []
    for scene in order:
        for pol in sorted(set(df["policy"])):
            a = base[(base["scene"] == scene) & (base["policy"] == pol)]
            b = v[(v["scene"] == scene) & (v["policy"] == pol)]
            if a.empty or b.empty:
                continue
            ra, ra_lo, ra_hi = stratified_bootstrap_mean(a, reps=reps, seed=seed)
            rb, rb_lo, rb_hi = stratified_bootstrap_mean(b, reps=reps, seed=seed)
            d, lo, hi = paired_difference(a, b, reps=reps, seed=seed)
            t = train[(train["policy"] == pol) & train["task"].isin(set(a["task"]))]
            ref = t.groupby("task")["success"].mean().mean() if len(t) else float("nan")
            kept = ra / ref if ref > 0 else float("nan")
            rows.append({"scene": scene, "policy": pol, "episodes": len(a),
                         "base": ra, "base lo": ra_lo, "base hi": ra_hi,
                         "V-GPS": rb, "V-GPS lo": rb_lo, "V-GPS hi": rb_hi,
                         "improvement": d, "improvement lo": lo, "improvement hi": hi,
                         "base kept": kept})
    return pd.DataFrame(rows)
