"""Scene shifts, the analogue of the paper's real-world scenes A/B/C (App. D, Table 1): each policy
with and without V-GPS in the training scenes and in every held-out scene family.

A scene is a shift string of :mod:`vgps.envs.shifts`: ``None`` the unshifted scene (the only one
single-scene data show), ``"diverse"`` draws training scenes (what diverse-scene data are
generated in), the named shifts are variants no training scene shows.
:func:`evaluate_scenes` runs the same episodes (task, seed, episode) in every scene, one cached
evaluator per scene; :func:`shift_table` pairs V-GPS with the base policy on those episodes.
"""
from __future__ import annotations

import pandas as pd

from vgps.eval.harness import RunConfig, make_evaluator
from vgps.eval.protocols import summary

# name -> (shift, what it is, embodiments it applies to (None: all))
SCENES = {
    "unshifted scene": (None, "the one scene of single-scene data (BenchmarkConfig.scenes='single')", None),
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
        shift = SCENES[scene][0]
        ev = make_evaluator(cache_dir, f"{label}-{shift or 'unshifted'}", policies, critic=critic,
                            encoder=encoder, shift=shift, render=render, num_envs=num_envs,
                            key_parts=key_parts)
        for cfg in configs:
            df = ev.run(cfg, scene_tasks(scene, tasks), seeds, episodes)
            out.append(df.assign(scene=scene))
    return pd.concat(out, ignore_index=True)


def shift_table(df: pd.DataFrame, steered: RunConfig | None = None, reps: int = 2000,
                seed: int = 0, reference: str = "training scenes") -> pd.DataFrame:
    """One row per (scene, policy): :func:`vgps.eval.protocols.summary` of the scene (base and
    V-GPS success, mean over tasks with stratified-bootstrap 95 % intervals, the paired
    improvement on the same episodes with its interval) and how much of the base policy's success
    in the ``reference`` scene (the scenes it was trained in: ``"training scenes"``, or
    ``"unshifted scene"`` for single-scene data) it keeps in the scene (``base kept``, on the
    scene's tasks). ``steered`` picks the V-GPS rows (default: the only non-base configuration in
    ``df``)."""
    v = df[df["method"] != "policy"]
    if steered is not None:
        v = v[(v["method"] == steered.method) & (v["K"] == steered.K) & (v["beta"] == steered.beta)]
    settings = v[["method", "K", "beta"]].drop_duplicates()
    if len(settings) != 1:
        raise ValueError("several V-GPS settings in the results: pass steered=RunConfig(...)")
    method, k, b = settings.iloc[0]
    if reference not in SCENES:
        raise KeyError(f"unknown reference scene {reference!r}; choose from {list(SCENES)}")
    train = df[(df["method"] == "policy") & (df["scene"] == reference)]
    rows = []
    for scene in (s for s in SCENES if s in set(df["scene"])):
        d = df[df["scene"] == scene]
        pols = [p for p in sorted(set(d["policy"])) if ((d["policy"] == p) & (d["method"] == method)).any()
                and ((d["policy"] == p) & (d["method"] == "policy")).any()]
        s = summary(d, dict.fromkeys(pols, (k, b)), scene, method=method, reps=reps, seed=seed)
        for (_, r), pol in zip(s.iterrows(), pols):
            a = d[(d["policy"] == pol) & (d["method"] == "policy")]
            t = train[(train["policy"] == pol) & train["task"].isin(set(a["task"]))]
            ref = t.groupby("task")["success"].mean().mean() if len(t) else float("nan")
            rows.append({"scene": scene, "policy": pol, "episodes": len(a),
                         "base": r["base"], "base lo": r["base_lo"], "base hi": r["base_hi"],
                         "V-GPS": r["vgps"], "V-GPS lo": r["vgps_lo"], "V-GPS hi": r["vgps_hi"],
                         "improvement": r["improvement"], "improvement lo": r["impr_lo"],
                         "improvement hi": r["impr_hi"],
                         "base kept": r["base"] / ref if ref > 0 else float("nan")})
    return pd.DataFrame(rows)
