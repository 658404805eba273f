"""Notebook helpers: the named critic variants, train a critic once per (config, dataset) and reuse
it, learning curves, held-out episodes."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from vgps.agents import checkpoint as ckpt
from vgps.agents.critic import load_critic
from vgps.agents.train import read_metrics, train


# name -> (what it is, CriticConfig changes, DataConfig changes) relative to the profile's own
CRITIC_VARIANTS = {
    "calql": ("Cal-QL, frozen behaviour-cloned π", {}, {}),
    "calql_sac": ("Cal-QL, SAC actor (the paper's released code)", {"calql_policy": "sac"}, {}),
    "calql_paper_labels": ("Cal-QL, frozen behaviour-cloned π, the paper's labels (no success flag)",
                           {}, {"use_success_flag": False}),
    "calql_sac_paper_labels": ("Cal-QL, SAC actor, the paper's labels (no success flag)",
                               {"calql_policy": "sac"}, {"use_success_flag": False}),
    "iql": ("IQL", {"algorithm": "iql"}, {}),
}


def critic_variant(prof, name: str):
    """``prof`` with the critic and data configs of the named variant (``CRITIC_VARIANTS``):
    ``variant.critic`` is what is trained, ``variant.data`` labels its training data."""
    if name not in CRITIC_VARIANTS:
        raise KeyError(f"unknown critic {name!r}; choose one of {sorted(CRITIC_VARIANTS)}")
    _, crit, data = CRITIC_VARIANTS[name]
    return dataclasses.replace(prof, critic=dataclasses.replace(prof.critic, **crit),
                               data=dataclasses.replace(prof.data, **data))


def dataset_fingerprint(dataset_dirs) -> str:
    """SHA-256 over each dataset's ``dataset_info.json`` and its files' names and sizes."""
    h = hashlib.sha256()
    for d in dataset_dirs:
        d = Path(d)
        info = d / "dataset_info.json"
        h.update(info.read_bytes() if info.exists() else str(d).encode())
        for f in sorted(d.glob("*.tfrecord*")):
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()


ARCH_VERSION = 2   # bump when parameter layouts or losses change (invalidates cached critics)


def cache_key(cfg, data) -> str:
    """Hash of the critic config, the datasets, the mix weights and the reward labelling."""
    payload = {"arch": ARCH_VERSION, "config": dataclasses.asdict(cfg),
               "data": dataset_fingerprint(getattr(data, "dataset_dirs", [])),
               "weights": [float(w) for w in getattr(data, "weights", [])],
               "labels": dict(getattr(data, "labels", None) or {})}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def saved_key(run_dir) -> str:
    """Cache key of the critic saved in ``run_dir`` (its ``meta.json``), ``""`` if none."""
    meta = Path(run_dir) / "meta.json"
    return json.loads(meta.read_text()).get("cache_key", "") if meta.exists() else ""


def load_metrics(run_dir) -> list[dict]:
    """Rows of ``run_dir/metrics.jsonl``; a cut last line is dropped with a warning
    (:func:`vgps.agents.train.read_metrics`)."""
    return read_metrics(run_dir)


def train_cached(cfg, data, run_dir, *, progress: bool = True):
    """Reuse ``run_dir`` if it holds a finished critic with the same cache key (hash of config +
    dataset fingerprint); resume it if unfinished with the same key; otherwise retrain from
    scratch. Returns ``(critic, metrics_rows, trained_now: bool, seconds)``."""
    run_dir = Path(run_dir)
    key = cache_key(cfg, data)
    meta_p = run_dir / "meta.json"
    old_key = json.loads(meta_p.read_text()).get("cache_key") if meta_p.exists() else None
    if old_key == key and (run_dir / "critic.msgpack").exists():
        return load_critic(run_dir), load_metrics(run_dir), False, 0.0
    if old_key != key and run_dir.exists():
        for p in [run_dir / "checkpoints", *run_dir.glob("metrics*"), run_dir / "critic.msgpack"]:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    res = train(cfg, data, run_dir, progress=progress,
                extra_meta={"cache_key": key,
                            "datasets": [str(d) for d in getattr(data, "dataset_dirs", [])]})
    return load_critic(run_dir), res.metrics, True, res.seconds


def heldout_episodes(dataset_dirs, keys=("state",), split: str = "val", max_episodes=None):
    """Episodes of the held-out split of every dataset (list of episode dicts)."""
    from vgps.data.rlds import iter_episodes
    eps = []
    for d in dataset_dirs:
        eps += list(iter_episodes(d, split=split, keys=tuple(keys), max_episodes=max_episodes,
                                  skip_missing_instruction=True))
    return eps


def plot_learning_curves(runs: dict, keys=("td_loss", "cql_loss", "q_data", "calql/bound_rate")):
    """``runs: {name: metrics rows}`` -> one panel per metric key (critic phase only)."""
    import matplotlib.pyplot as plt
    keys = [k for k in keys if any(k in r for rows in runs.values() for r in rows)]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.0), squeeze=False)
    for ax, k in zip(axes[0], keys):
        for name, rows in runs.items():
            pts = [(r["step"], r[k]) for r in rows if r.get("phase") == "critic" and k in r]
            if pts:
                ax.plot(*zip(*pts), label=name, lw=1.3)
        ax.set_title(k)
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig
