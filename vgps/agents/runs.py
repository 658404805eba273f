"""Notebook helpers: a named critic variant's profile, train a critic once per (config, dataset) and reuse
it, learning curves, held-out episodes."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from vgps import artifacts
from vgps.agents.critic import load_critic
from vgps.agents.train import read_metrics, train
from vgps.config import CRITIC_VARIANTS


def critic_variant(prof, name: str):
    """``prof`` with the critic and data configs of the named variant (the registry
    :data:`vgps.config.CRITIC_VARIANTS`):
    ``variant.critic`` (then the profile's ``critic_overrides[name]``) is what is trained,
    ``variant.data`` labels its training data."""
    if name not in CRITIC_VARIANTS:
        raise KeyError(f"unknown critic {name!r}; choose one of {sorted(CRITIC_VARIANTS)}")
    v = CRITIC_VARIANTS[name]
    critic = {**v.critic, **prof.critic_overrides.get(name, {})}
    return dataclasses.replace(prof, critic=dataclasses.replace(prof.critic, **critic),
                               data=dataclasses.replace(prof.data, **v.data))


ARCH_VERSION = 2   # bump when parameter layouts or losses change (invalidates cached critics)


def cache_key(cfg, dirs, weights, labels, **extra) -> str:
    """Key of a critic trained with ``cfg`` on the mixture of the datasets ``dirs`` with
    ``weights``, labelled by ``labels`` (``extra``: what else selects the data, e.g. a subset);
    from the datasets' :func:`vgps.artifacts.fingerprint`, no data loaded."""
    return artifacts.cache_key({"arch": ARCH_VERSION, "config": dataclasses.asdict(cfg),
                                "data": [artifacts.fingerprint(d) for d in dirs],
                                "weights": [float(w) for w in weights],
                                "labels": dict(labels or {}), **extra})


def saved_key(run_dir) -> str:
    """Cache key of the critic saved in ``run_dir`` (its ``meta.json``), ``""`` if none."""
    return artifacts.saved_key(Path(run_dir) / "meta.json")


def train_cached(cfg, data, run_dir, *, key: str | None = None, extra_meta: dict | None = None,
                 progress: bool = True):
    """Reuse ``run_dir`` if it holds a finished critic with the same cache key, resume it if
    unfinished with the same key, otherwise retrain from scratch (:func:`vgps.artifacts.
    train_or_load`). ``data``: the training data, or a function returning them (called only to
    train; then pass ``key``, which defaults to :func:`cache_key` of the data).
    Returns ``(critic, metrics_rows, trained_now: bool, seconds)``."""
    run_dir = Path(run_dir)
    key = key or cache_key(cfg, data.dataset_dirs, data.weights, data.labels)

    def fit():
        d = data() if callable(data) else data
        return train(cfg, d, run_dir, progress=progress,
                     extra_meta={"cache_key": key, "datasets": [str(x) for x in d.dataset_dirs],
                                 **(extra_meta or {})})
    res, fresh = artifacts.train_or_load(run_dir, key, fit, lambda: None, artefact="critic.msgpack",
                                         stale=("checkpoints", "metrics*"))
    if not fresh:
        return load_critic(run_dir), read_metrics(run_dir), False, 0.0
    return load_critic(run_dir), res.metrics, True, res.seconds


def seconds_per_step(rows) -> float:
    """Wall-clock seconds per critic step of a training run (its logged ``metrics`` rows of phase
    ``critic``: the first to the last logged step, so compilation before the first log is left
    out); NaN when fewer than two critic rows were logged."""
    crit = [r for r in rows if r.get("phase") == "critic"]
    if len(crit) < 2:
        return float("nan")
    return (crit[-1]["wall_s"] - crit[0]["wall_s"]) / max(crit[-1]["step"] - crit[0]["step"], 1)


def heldout_episodes(dataset_dirs, keys=("state",), split: str = "val", max_episodes=None):
    """Episodes of the held-out split of every dataset (list of episode dicts)."""
    from vgps.data.rlds import iter_episodes
    eps = []
    for d in dataset_dirs:
        eps += list(iter_episodes(d, split=split, keys=tuple(keys), max_episodes=max_episodes,
                                  skip_missing_instruction=True))
    return eps


# y-axis labels of the training metrics (what each logged key measures)
METRIC_LABELS = {
    "td_loss": "TD loss (mean squared Bellman error)",
    "cql_loss": "CQL term (before × α)",
    "q_data": "mean Q(s, a_data)",
    "q_data_min": "min Q(s, a_data) in the batch",
    "calql/bound_rate": "fraction with Q < MC return\n(Cal-QL bound active)",
    "alpha": "SAC entropy temperature\n(not Cal-QL's α)",
    "q_loss": "Q loss (expectile target)",
    "value_loss": "V loss (expectile τ)",
    "actor_loss": "AWR actor loss",
    "v": "mean V(s)",
    "awr_weight": "mean AWR weight exp(β·adv)",
}


def plot_learning_curves(runs: dict, keys=("td_loss", "cql_loss", "q_data", "calql/bound_rate"),
                         ncols: int = 3, labels: dict | None = None):
    """``runs: {name: metrics rows}`` -> a grid of panels (``ncols`` wide, page width), one per
    metric key of the critic phase, y-axis labelled from :data:`METRIC_LABELS`, one legend naming
    each run (``labels: {name: legend text}``, default the registry label, else the name)."""
    import matplotlib.pyplot as plt
    keys = [k for k in keys if any(k in r for rows in runs.values() for r in rows)]
    ncols = max(1, min(ncols, len(keys)))
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.6 * nrows + 0.4), squeeze=False,
                             layout="constrained")
    names = {n: (labels or {}).get(n) or (CRITIC_VARIANTS[n].label if n in CRITIC_VARIANTS else n)
             for n in runs}
    for ax, k in zip(axes.flat, keys):
        for name, rows in runs.items():
            pts = [(r["step"], r[k]) for r in rows if r.get("phase") == "critic" and k in r]
            if pts:
                ax.plot(*zip(*pts), label=names[name], lw=1.2)
        ax.set_ylabel(METRIC_LABELS.get(k, k), fontsize=8)
        ax.set_xlabel("gradient step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    handles, texts = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="outside lower center", ncol=min(len(texts), 4), fontsize=8,
               frameon=False)
    return fig
