"""Helpers for notebook 06: the paper's appendix ablations (App. E–J) on the embedded suite.

- critics: :func:`critic_or_train` loads the critic an earlier notebook saved (02: ``calql``,
  ``calql_sac``; 03: ``iql``) or trains it with the same config and cache helper
  (:func:`vgps.agents.runs.train_cached`), so notebook 06 also runs alone;
- data fractions (Table 8): :func:`subset_indices` (nested, seeded episode subsets),
  :func:`fraction_plan`, :func:`fraction_training_data` and :func:`fraction_critic`;
- the gripper check of Table 11: :func:`gripper_agreement` (the actors themselves:
  :mod:`vgps.policies.actor`; fine-tuning, Table 7: :func:`vgps.policies.zoo.finetune_or_load`;
  overhead, Table 9: :mod:`vgps.eval.overhead`);
- evaluation: :func:`run_configs` over a :func:`vgps.eval.harness.make_evaluator`;
- tables and figures: :func:`rates`, :func:`paper_rates`, :func:`plot_ours_vs_paper`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from vgps.agents import runs
from vgps.config import get_profile
from vgps.data.labels import label_config
from vgps.data.loader import TrainingData, dataset_statistics, load_training_data, mix_weights
from vgps.data.rlds import describe, iter_episodes
from vgps.eval.stats import success_table
from vgps.paths import artifacts_dir

# our task id -> the paper's task name (Tables 7, 8, 10-12)
PAPER_TASK = {
    "widowx_spoon_on_towel": "Spoon on towel",
    "widowx_carrot_on_plate": "Carrot on Plate",
    "widowx_stack_blocks": "Stack blocks",
    "widowx_eggplant_in_basket": "Eggplant basket",
    "google_robot_pick_coke_can": "Pick Coke",
}


# ================================================================== critics (notebooks 02 / 03)
def dataset_dirs(profile: str, generate_missing: bool = True) -> list[Path]:
    """``[bridge_like, fractal_like]`` of ``profile`` (generated here if notebook 01 has not)."""
    root = artifacts_dir(profile, "datasets")
    if generate_missing and not (root / "generation_summary.json").exists():
        from vgps.envs.generate import generate
        generate(profile)
    return [root / "bridge_like", root / "fractal_like"]


def mixture_key(prof, dirs, **extra) -> str:
    """:func:`vgps.agents.runs.cache_key` of ``prof.critic`` on the profile's mixture of ``dirs``
    (default weights, the profile's labels; ``extra``: e.g. a subset), without loading data."""
    dirs = [describe(d)["dir"] for d in dirs]
    return runs.cache_key(prof.critic, dirs, mix_weights(dirs, None, prof.data),
                          label_config(prof.data), **extra)


def load_full_data(prof, cfg, dirs):
    """The training data of notebooks 02 / 03 (both embodiments mixed, state observations)."""
    return load_training_data(dirs, profile=prof, obs_keys=("state",), batch_size=cfg.batch_size,
                              seed=cfg.seed, backend="memory")


def critic_or_train(profile: str, name: str, *, prof=None, data_fn: Callable | None = None):
    """``(critic, status)``: the cached critic ``artifacts/<profile>/critics/<name>`` if its cache
    key matches the current config and datasets, else trained now by the same helper as notebooks
    02 / 03 (``data_fn()`` supplies the training data, loaded only when needed)."""
    prof = runs.critic_variant(prof or get_profile(profile), name)
    dirs = dataset_dirs(profile)

    def data():
        d = data_fn() if data_fn is not None else None     # None, or other labels than this variant's:
        ok = d is not None and getattr(d, "labels", None) == label_config(prof.data)
        return d if ok else load_full_data(prof, prof.critic, dirs)
    critic, _, fresh, secs = runs.train_cached(prof.critic, data,
                                               artifacts_dir(profile, "critics", name),
                                               key=mixture_key(prof, dirs), progress=False)
    return critic, (f"trained now ({secs:.0f} s)" if fresh else "reused")


# ================================================================== data fractions (Table 8)
def subset_indices(n: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of ``max(1, round(fraction * n))`` of ``n`` episodes. One seeded
    permutation per ``(n, seed)``, so smaller fractions are subsets of larger ones."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    k = max(1, int(round(fraction * n)))
    return np.sort(np.random.default_rng([int(seed), int(n)]).permutation(n)[:k])


def load_state_episodes(dirs, split: str = "train") -> list[list[dict]]:
    """Every training episode of each dataset (state observations only), one list per dataset."""
    return [list(iter_episodes(d, split=split, keys=("state",), skip_missing_instruction=True))
            for d in dirs]


def fraction_plan(prof, dirs, fraction: float, seed: int = 0) -> dict:
    """Which training episodes a ``fraction`` critic keeps (:func:`subset_indices` with
    ``seed + dataset index``), from the episode counts in the cached dataset statistics (no
    episode is read), and the cache key of that critic (notebook 02's key + fraction + subset)."""
    resolved = [describe(d)["dir"] for d in dirs]
    kept = {}
    for i, d in enumerate(resolved):
        name = Path(d).parent.name if Path(d).name[:1].isdigit() else Path(d).name
        kept[name] = subset_indices(dataset_statistics(d)["num_episodes"], fraction, seed + i).tolist()
    return {"fraction": float(fraction), "seed": int(seed), "dirs": resolved, "episodes": kept,
            "num_episodes": {k: len(v) for k, v in kept.items()},
            "cache_key": mixture_key(prof, dirs, subset={"fraction": float(fraction),
                                                         "episodes": kept})}


def fraction_training_data(prof, plan: dict, episodes: list[list[dict]], *, encoder=None,
                           batch_size: int | None = None):
    """The notebook-02 mixture restricted to ``plan``'s episodes (``episodes``: every training
    episode of each dataset, in file order). Action and state normalizers are refitted on the
    subset: the critic never sees the other episodes."""
    from vgps.data.language import get_encoder
    from vgps.data.memory import MixtureSampler, TransitionStore
    from vgps.data.normalize import ActionNormalizer, StateNormalizer, pool
    resolved = plan["dirs"]
    w = mix_weights(resolved, None, prof.data)
    stores, acts, states = [], [], []
    for d, eps, idx in zip(resolved, episodes, plan["episodes"].values()):
        if len(eps) <= max(idx):
            raise ValueError(f"{d}: {len(eps)} episodes, the plan expects at least {max(idx) + 1}")
        sub = [eps[j] for j in idx]
        stores.append(TransitionStore(sub, prof.data, keys=("state",), name=str(d)))
        acts.append(ActionNormalizer.fit(np.concatenate([e["action"] for e in sub])))
        states.append(StateNormalizer.fit(np.concatenate([e["observation"]["state"] for e in sub])))
    counts = w / w.sum()
    norm, snorm = pool(acts, counts), pool(states, counts)
    encoder = encoder or get_encoder(prof.data.language_encoder)
    sampler = MixtureSampler(stores, w, batch_size=batch_size or prof.critic.batch_size,
                             seed=prof.critic.seed, normalizer=norm, encoder=encoder)
    return TrainingData(backend="memory", normalizer=norm, state_normalizer=snorm,
                        instructions=sorted({s for st in stores for s in st.instructions}),
                        weights=w, num_transitions=[len(s) for s in stores],
                        dataset_dirs=resolved, labels=label_config(prof.data), _sampler=sampler)


def fraction_critic(profile: str, prof, fraction: float, *, seed: int = 0, encoder=None,
                    episodes_fn: Callable | None = None):
    """``(critic, plan, status)``: the Cal-QL critic (notebook 02's config and training loop)
    trained on ``fraction`` of the training episodes, cached in
    ``artifacts/<profile>/critics/calql_frac<percent>`` under :func:`fraction_plan`'s key.
    ``episodes_fn()`` returns the training episodes; it is called only when training."""
    plan = fraction_plan(prof, dataset_dirs(profile), fraction, seed)

    def data():
        episodes = episodes_fn() if episodes_fn is not None else load_state_episodes(plan["dirs"])
        return fraction_training_data(prof, plan, episodes, encoder=encoder)
    critic, _, fresh, secs = runs.train_cached(
        prof.critic, data, artifacts_dir(profile, "critics", f"calql_frac{round(100 * fraction)}"),
        key=plan["cache_key"], progress=False,
        extra_meta={"data_fraction": plan["fraction"], "subset": {
            k: plan[k] for k in ("seed", "num_episodes", "episodes")}})
    return critic, plan, (f"trained now ({secs:.0f} s)" if fresh else "reused")


# ================================================================== evaluation
def run_configs(evaluator, configs, tasks, seeds, episodes: int) -> pd.DataFrame:
    """Per-episode results of every ``RunConfig`` in ``configs`` on ``tasks`` x ``seeds``."""
    return pd.concat([evaluator.run(c, list(tasks), list(seeds), int(episodes)) for c in configs],
                     ignore_index=True)


# ================================================================== tables and figures
rates = success_table    # (df, by) -> per group n, successes, rate and its Wilson 95% lo, hi


def paper_rates(n: int, **filters) -> pd.DataFrame:
    """The paper's Table ``n`` filtered on column values (e.g. ``task="Eggplant basket"``)."""
    from vgps.paper import load_paper_table
    df = load_paper_table(n)
    for k, v in filters.items():
        df = df[df[k].isin(v if isinstance(v, (list, tuple)) else [v])]
    return df.reset_index(drop=True)


def beside_paper(ours: pd.DataFrame, paper: pd.DataFrame, methods, tasks) -> pd.DataFrame:
    """Our per-(task, method) :func:`rates` beside the paper's (its ``rate``; NaN where it has no
    such row), rows in ``tasks`` x ``methods`` order: task, method, n, ours, 95 % lo/hi, paper."""
    t = ours.merge(paper[["task", "method", "rate"]].rename(columns={"rate": "paper"}),
                   on=["task", "method"], how="left")
    t = t.assign(order=t["method"].map(list(methods).index),
                 t=t["task"].map(list(tasks).index)).sort_values(["t", "order"])
    return t[["task", "method", "n", "rate", "lo", "hi", "paper"]].rename(
        columns={"rate": "ours", "lo": "ours 95% lo", "hi": "ours 95% hi"})


def plot_ours_vs_paper(ours: pd.DataFrame, paper: pd.DataFrame | None, *, x: str,
                       hue: str | None = None, col: str | None = None, order=None, hue_order=None,
                       col_order=None, kind: str = "bar", xlabel: str | None = None, title: str = "",
                       baseline: dict | None = None, paper_baseline: dict | None = None,
                       height: float = 3.0, aspect: float = 1.3, col_wrap: int | None = None):
    """One panel per ``col`` value: our success rates (``kind="bar"`` bars or ``"line"`` lines, one
    colour per ``hue``, Wilson 95% error bars) and the paper's published numbers as white diamonds
    (one dashed series per panel, or per ``hue`` if ``paper`` has that column). ``ours`` needs
    ``rate``, ``lo``, ``hi``; ``paper`` needs ``rate``. ``baseline`` / ``paper_baseline``: ``{col
    value: rate}`` of the unsteered policy, drawn as dotted grey / black lines. ``col_wrap``: at most
    that many panels per row (a grid for a page width). Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    cols = list(col_order) if col_order is not None else (sorted(ours[col].unique()) if col else [None])
    order = list(order) if order is not None else sorted(ours[x].unique(), key=str)
    hues = list(hue_order) if hue_order is not None else (
        sorted(ours[hue].unique(), key=str) if hue else [None])
    palette = dict(zip(hues, sns.color_palette("colorblind", len(hues))))
    width = 0.8 / len(hues)
    ncols = min(len(cols), col_wrap or len(cols))
    nrows = -(-len(cols) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(height * aspect * ncols, height * nrows + 0.5),
                             squeeze=False, sharey=True, layout="constrained")

    def pos(v, j):
        i = order.index(v)
        return i + (j - (len(hues) - 1) / 2) * width if kind == "bar" else i

    for ax, c in zip(axes.flat, cols):
        d = ours if col is None else ours[ours[col] == c]
        for j, h in enumerate(hues):
            dh = (d if hue is None else d[d[hue] == h])
            dh = dh[dh[x].isin(order)]
            if not len(dh):
                continue
            dh = dh.iloc[np.argsort([order.index(v) for v in dh[x]], kind="stable")]
            xs = np.array([pos(v, j) for v in dh[x]])
            y = dh["rate"].to_numpy(float)
            yerr = np.clip(np.vstack([y - dh["lo"].to_numpy(float), dh["hi"].to_numpy(float) - y]), 0, None)
            lab = "ours" if h is None else f"ours, {h}"
            if kind == "bar":
                ax.bar(xs, y, width=width * 0.92, color=palette[h], label=lab)
                ax.errorbar(xs, y, yerr=yerr, fmt="none", ecolor="0.3", lw=1, capsize=2)
            else:
                ax.errorbar(xs, y, yerr=yerr, color=palette[h], marker="o", ms=4, lw=1.5,
                            capsize=2, label=lab)
        if paper is not None and len(paper):
            p = paper if col is None or col not in paper else paper[paper[col] == c]
            by_hue = hue is not None and hue in p.columns
            for j, h in enumerate(hues if by_hue else [None]):
                ph = p[p[hue] == h] if by_hue else p
                ph = ph[ph[x].isin(order)]
                if not len(ph):
                    continue
                ph = ph.iloc[np.argsort([order.index(v) for v in ph[x]], kind="stable")]
                xs = np.array([pos(v, j) if by_hue else order.index(v) for v in ph[x]])
                colour = palette[h] if by_hue else "black"
                ax.plot(xs, ph["rate"].to_numpy(float), ls="--" if kind == "line" else "none",
                        color=colour, lw=1, marker="D", ms=6, mfc="white", mec="black",
                        label="paper" if h is None else f"paper, {h}")
        for ref, colour, lab in ((baseline, "0.55", "octo-small alone, ours"),
                                 (paper_baseline, "black", "octo-small alone, paper")):
            if ref is not None and c in ref and ref[c] is not None and np.isfinite(ref[c]):
                ax.axhline(ref[c], color=colour, ls=":", lw=1.3, label=lab)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([str(v) for v in order], fontsize=8,
                           rotation=20 if kind == "bar" and len(order) > 3 else 0,
                           ha="right" if kind == "bar" and len(order) > 3 else "center")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(x if xlabel is None else xlabel, fontsize=9)
        ax.set_title("" if c is None else str(c), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("success rate")
    for ax in axes.flat[len(cols):]:
        ax.set_visible(False)
    handles, labels = [], []
    for ax in axes.flat:
        for hd, lb in zip(*ax.get_legend_handles_labels()):
            if lb not in labels:
                handles.append(hd)
                labels.append(lb)
    ncol = min(len(labels), 5) or 1
    if title:
        fig.suptitle(title, fontsize=10)
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncol=ncol, frameon=False)
    return fig


def gripper_agreement(policies: dict, episodes: list[dict], *, num_states: int = 4000,
                      seed: int = 0, rng=None, batch: int = 500) -> pd.DataFrame:
    """How each policy's gripper command (open when > 0.5) matches the demonstrations on
    ``num_states`` seeded states of ``episodes``: overall agreement, P(close | demo closes),
    P(open | demo opens) and the fraction of open commands (one sample per state, drawn with
    the key ``fold_in(rng, state index)``, so it does not depend on ``batch``)."""
    eps = list(episodes)
    S = np.concatenate([np.asarray(e["observation"]["state"][:len(e["action"])], np.float32) for e in eps])
    A = np.concatenate([np.asarray(e["action"], np.float32) for e in eps])
    L = np.array([e["instruction"] for e in eps for _ in range(len(e["action"]))], dtype=object)
    idx = np.sort(np.random.default_rng(seed).choice(len(S), min(num_states, len(S)), replace=False))
    demo_open = A[idx, -1] > 0.5
    rng = jax.random.PRNGKey(seed) if rng is None else rng
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, jnp.asarray(idx, jnp.uint32))
    rows = []
    for name, pol in policies.items():
        pol.reset(batch)
        out = np.concatenate([
            np.asarray(pol.sample_actions({"state": S[idx[i:i + batch]]}, list(L[idx[i:i + batch]]), 1,
                                          keys[i:i + batch]))[:, 0]
            for i in range(0, len(idx), batch)])
        cmd_open = out[:, -1] > 0.5
        rows.append({"policy": name, "states": len(idx),
                     "gripper agreement": float(np.mean(cmd_open == demo_open)),
                     "closes when demo closes": float(np.mean(~cmd_open[~demo_open])) if (~demo_open).any() else np.nan,
                     "opens when demo opens": float(np.mean(cmd_open[demo_open])) if demo_open.any() else np.nan,
                     "open commands": float(np.mean(cmd_open)), "open in demos": float(np.mean(demo_open))})
    return pd.DataFrame(rows)
