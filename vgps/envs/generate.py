"""Generate the ``bridge_like`` (WidowX, layout "bridge") and ``fractal_like`` (Google-Robot-like,
layout "fractal") RLDS datasets from mixed-quality scripted experts.

``python -m vgps.envs.generate --profile P [--out DIR] [--workers N]``

Deterministic by seed: every episode's seed and task are fixed by its (dataset, split, index),
so the bytes do not depend on the worker count. Resumable: finished chunks are cached as
``.npz`` under ``<out>/_cache/`` (keyed by a config fingerprint) and reused on rerun. Episodes
whose simulation blew up are dropped and replaced by a re-seeded episode.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np

DATASETS = (("bridge_like", "bridge", "widowx", "episodes_bridge_like"),
            ("fractal_like", "fractal", "google_robot", "episodes_fractal_like"))
SPLITS = ("train", "val")
SEED_BASE = 10_000_000          # far from evaluation seeds (0..) and tuning seeds (1000..)
MAX_RETRIES = 3
DATA_VERSION = 3              # bump when env or expert behaviour changes (invalidates caches)


def episode_plan(cfg, dataset: str, split: str) -> list[tuple[str, int]]:
    """``[(task_id, seed), ...]`` for one dataset split; depends only on ``cfg``."""
    from vgps.envs.tasks import TASKS
    di = [d[0] for d in DATASETS].index(dataset)
    si = SPLITS.index(split)
    emb = DATASETS[di][2]
    n_train = getattr(cfg, DATASETS[di][3])
    n = n_train if split == "train" else max(1, int(round(cfg.val_fraction * n_train)))
    tasks = [t for t in TASKS.values() if t.embodiment == emb]
    w = np.array([cfg.eval_task_weight if t.is_eval else 1.0 for t in tasks])
    rng = np.random.default_rng([cfg.seed, di, si])
    picks = rng.choice(len(tasks), size=n, p=w / w.sum())
    base = SEED_BASE + cfg.seed * 1_000_000 + di * 500_000 + si * 250_000
    return [(tasks[k].task_id, base + i) for i, k in enumerate(picks)]


def fingerprint(cfg) -> str:
    keys = ("image_size", "render_images", "seed", "expert_quality")
    # "scenes" enters only when not the default, so single-scene caches keep their fingerprint
    extra = {"scenes": cfg.scenes} if cfg.scenes != "single" else {}
    blob = json.dumps({k: getattr(cfg, k) for k in keys} | extra | {"v": DATA_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# --- worker side ---------------------------------------------------------------------------------
_ENVS: dict = {}


def _env(task_id: str, cfg):
    from vgps.envs import make
    key = (task_id, cfg.image_size, cfg.render_images, cfg.scenes)
    if key not in _ENVS:
        _ENVS[key] = make(task_id, image_size=cfg.image_size, render=cfg.render_images,
                          shift="diverse" if cfg.scenes == "diverse" else None)
    return _ENVS[key]


def run_episode(task_id: str, seed: int, cfg) -> dict:
    """One expert episode in the docs/design.md format (re-seeded if the simulation blew up)."""
    from vgps.envs.experts import ScriptedExpert, rollout
    env = _env(task_id, cfg)
    for retry in range(MAX_RETRIES + 1):
        s = seed + retry * 50_000
        r = rollout(env, ScriptedExpert(cfg.expert_quality, seed=cfg.seed), s)
        if not r["unstable"]:
            break
    else:
        raise RuntimeError(f"{task_id}: simulation unstable for {MAX_RETRIES + 1} seeds from {seed}")
    obs = r["observations"][:-1]            # T observations, one per action
    return {"observation": {"image": np.stack([o["image"] for o in obs]),
                            "state": np.stack([o["state"] for o in obs])},
            "action": np.stack(r["actions"]).astype(np.float32),
            "instruction": r["instruction"], "success": r["success"],
            "metadata": {"task_id": task_id, "embodiment": env.emb.name, "quality": r["quality"],
                         "failure_mode": r["failure_mode"], "success": r["success"], "seed": s,
                         **({"scene": "+".join(env.scene.families()) or "default"}
                            if cfg.scenes == "diverse" else {})}}


def _run_chunk(job) -> str:
    path, items, cfg = job
    eps = [run_episode(t, s, cfg) for t, s in items]
    save_chunk(eps, Path(path))
    return path


def save_chunk(eps: list[dict], path: Path) -> None:
    """Pack episodes into one ``.npz`` (no pickle), written atomically."""
    lens = np.array([len(e["action"]) for e in eps])
    meta = json.dumps([{"instruction": e["instruction"], "success": e["success"],
                        "metadata": e["metadata"]} for e in eps])
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, lengths=lens, meta=np.array(meta),
                        image=np.concatenate([e["observation"]["image"] for e in eps]),
                        state=np.concatenate([e["observation"]["state"] for e in eps]),
                        action=np.concatenate([e["action"] for e in eps]))
    os.replace(tmp, path)


def load_chunk(path: Path) -> list[dict]:
    with np.load(path, allow_pickle=False) as z:
        lens, meta = z["lengths"], json.loads(str(z["meta"]))
        img, st, act = z["image"], z["state"], z["action"]
    out, o = [], 0
    for n, m in zip(lens, meta):
        out.append({"observation": {"image": img[o:o + n], "state": st[o:o + n]},
                    "action": act[o:o + n], "instruction": m["instruction"],
                    "success": m["success"], "metadata": m["metadata"]})
        o += n
    return out


# --- driver --------------------------------------------------------------------------------------
def generate(profile: str = "default", out: str | Path | None = None, workers: int | None = None,
             cfg=None, quiet: bool = False) -> dict:
    """Generate both datasets (both splits); returns ``{name: path}`` plus a summary JSON."""
    from tqdm import tqdm      # text bars: tqdm.auto warns without ipywidgets

    from vgps.config import get_profile
    from vgps.data.rlds_writer import write_rlds
    from vgps.paths import artifacts_dir
    cfg = cfg or get_profile(profile).benchmark
    out = Path(out) if out else artifacts_dir(profile, "datasets")
    workers = workers or cfg.num_workers
    cache = out / "_cache" / fingerprint(cfg)
    jobs = []
    for name, *_ in DATASETS:
        for split in SPLITS:
            plan = episode_plan(cfg, name, split)
            d = cache / name / split
            d.mkdir(parents=True, exist_ok=True)
            for c in range(0, len(plan), cfg.chunk_size):
                p = d / f"chunk_{c // cfg.chunk_size:05d}_{len(plan[c:c + cfg.chunk_size])}.npz"
                jobs.append((str(p), plan[c:c + cfg.chunk_size], cfg))
    todo = [j for j in jobs if not Path(j[0]).exists()]
    n_eps = sum(len(j[1]) for j in todo)
    t0 = time.perf_counter()
    bar = tqdm(total=n_eps, desc="episodes", unit="ep", disable=quiet or None)
    # rendering always happens in spawned workers: this process writes RLDS through TensorFlow,
    # which cannot share a process with an OSMesa/EGL context here (segfault either way round)
    if todo and (workers > 1 or cfg.render_images):
        with mp.get_context("spawn").Pool(max(1, workers)) as pool:
            for path in pool.imap_unordered(_run_chunk, todo):
                bar.update(len(next(j[1] for j in todo if j[0] == path)))
    else:
        for j in todo:
            _run_chunk(j)
            bar.update(len(j[1]))
    bar.close()
    gen_s = time.perf_counter() - t0
    result, summary = {}, {"episodes_generated": n_eps, "generation_seconds": round(gen_s, 1),
                           "fingerprint": fingerprint(cfg), "config": dataclasses.asdict(cfg)}
    for name, layout, emb, _ in DATASETS:
        splits = {s: sorted((cache / name / s).glob("chunk_*.npz")) for s in SPLITS}
        stats = _summarize([m for s in SPLITS for p in splits[s] for m in _meta_of(p)])
        summary[name] = stats
        result[name] = write_rlds({s: (ep for p in splits[s] for ep in load_chunk(p)) for s in SPLITS},
                                  out, name=name, layout=layout)
    (out / "generation_summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return result


def _meta_of(p: Path) -> list[dict]:
    with np.load(p, allow_pickle=False) as z:
        return [m["metadata"] for m in json.loads(str(z["meta"]))]


def _summarize(metas: list[dict]) -> dict:
    by = {}
    for m in metas:
        by.setdefault(m["failure_mode"], []).append(m["success"])
    return {"episodes": len(metas), "success_rate": float(np.mean([m["success"] for m in metas])),
            "by_failure_mode": {k: {"n": len(v), "success": float(np.mean(v))} for k, v in sorted(by.items())}}


def content_digest(chunks: list[Path]) -> str:
    """SHA-256 of the episodes in ``chunks`` (every array's name and bytes, in order): the same
    episodes give the same digest whatever the zip container's metadata."""
    h = hashlib.sha256()
    for p in chunks:
        with np.load(p, allow_pickle=False) as z:
            for k in sorted(z.files):
                h.update(k.encode())
                h.update(np.ascontiguousarray(z[k]).tobytes())
    return h.hexdigest()


def summary_table(profile: str, out: str | Path | None = None):
    """One row per dataset and split: episodes, transitions, success rate and the content digest
    (the committed ``figures/<profile>/00_datasets`` table, which makes the data verifiable)."""
    import pandas as pd

    from vgps.config import get_profile
    from vgps.paths import artifacts_dir
    cfg = get_profile(profile).benchmark
    cache = (Path(out) if out else artifacts_dir(profile, "datasets")) / "_cache" / fingerprint(cfg)
    rows = []
    for name, *_ in DATASETS:
        for split in SPLITS:
            chunks = sorted((cache / name / split).glob("chunk_*.npz"))
            metas, steps = [], 0
            for p in chunks:
                with np.load(p, allow_pickle=False) as z:
                    steps += int(z["lengths"].sum())
                    metas += json.loads(str(z["meta"]))
            rows.append({"dataset": name, "split": split, "episodes": len(metas), "transitions": steps,
                         "success_rate": float(np.mean([m["success"] for m in metas])),
                         "sha256": content_digest(chunks)})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=os.environ.get("VGPS_PROFILE", "default"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    paths = generate(a.profile, a.out, a.workers)
    for k, v in paths.items():
        print(f"{k}: {v}")
    if a.out is None:                     # the profile's own datasets: their committed summary
        from vgps.paths import figures_dir
        from vgps.plotting import save_table
        save_table(summary_table(a.profile), figures_dir(a.profile), "00_datasets")
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
