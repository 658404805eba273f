"""Critic-quality diagnostics on held-out episodes (beyond the paper; check before steering).

- ``ranking``: P(Q(s, a_demo) > Q(s, a_perturbed)) on successful episodes, per perturbation kind
  (xyz noise, rotation noise, gripper flipped while carrying, gripper flipped, uniform random,
  and the two §4 decision points: kept open at the demo's grasp — the step it first closes — and
  kept closed at its release — the step it first opens after carrying; ``DECISION_POINTS``,
  reported beside ``rank/mean``, which averages the first five);
- ``spearman``: Spearman ρ between Q(s_t, a_t) and steps-to-success (pooled over successful
  episodes; Q should rise as success nears, so ρ < 0), also the mean within-episode ρ;
- ``bound_rate``: fraction of held-out (s, a_demo) with Q below the Monte-Carlo return G_t (where
  Cal-QL's lower bound max(Q, G) would be active), with G_t from the labels training uses;
- ``q_min_demo`` / ``q_lower_ok``: with rewards {-1, 0} and γ the lowest reachable value is
  -1/(1-γ) (-50 at γ=0.98); ``q_lower_ok`` is ``q_min_demo >= -1/(1-γ)`` exactly, no tolerance. A
  critic whose dataset actions score below it has been pushed down by the CQL term. ``q_min_perturbed`` (off-data actions) may go lower: CQL pushes OOD
  actions down by design.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from vgps.data.labels import label_config, label_episode
from vgps.config import CRITIC_VARIANTS

PERTURBATIONS = ("xyz_noise", "rotation_noise", "gripper_flip_carrying", "gripper_flip",
                 "uniform_random")
DECISION_POINTS = ("gripper_flip_at_grasp", "gripper_flip_at_release")   # ranked, not in rank/mean
_GRIPPER_FLIPS = ("gripper_flip", "gripper_flip_carrying") + DECISION_POINTS


def perturb(actions, kind: str, scale, rng):
    """Perturbed copies of raw actions ``[T, 7]``; ``scale [6]`` per-dim std. Returns
    ``(perturbed [T, 7], valid bool[T])`` (``valid`` false where the kind does not apply)."""
    a = np.array(actions, np.float32, copy=True)
    valid = np.ones(len(a), bool)
    if kind == "xyz_noise":
        a[:, :3] += rng.normal(size=(len(a), 3)) * scale[:3]
    elif kind == "rotation_noise":
        a[:, 3:6] += rng.normal(size=(len(a), 3)) * scale[3:6]
    elif kind in _GRIPPER_FLIPS:
        a[:, 6] = 1.0 - a[:, 6]
        closed = actions[:, 6] < 0.5
        was_closed = np.concatenate([[False], closed[:-1]])
        was_held = was_closed & np.concatenate([[False, False], closed[:-2]])   # closed at t-1 and t-2
        if kind == "gripper_flip_carrying":    # closed now and at the previous two steps
            valid = closed & was_held
        elif kind == "gripper_flip_at_grasp":  # first closing step: flipped = grasp deferred
            valid = closed & ~was_closed
            valid[0] = False
        elif kind == "gripper_flip_at_release":   # first opening step after 2+ closed steps
            valid = ~closed & was_held
    elif kind == "uniform_random":
        lo, hi = actions[:, :6].min(0), actions[:, :6].max(0)
        a[:, :6] = rng.uniform(lo, hi, size=(len(a), 6))
        a[:, 6] = rng.integers(0, 2, len(a))
    else:
        raise ValueError(f"unknown perturbation {kind!r}; choose from {PERTURBATIONS + DECISION_POINTS}")
    return a, valid


def _obs_key(critic):
    return "state" if critic.obs_modality == "state" else "image"


def score_episode(critic, episode, lang_vec, candidates, chunk: int = 512):
    """Q of ``candidates [T, K, 7]`` (raw) at each step of ``episode`` -> ``[T, K]``. Chunks are
    padded (repeating the last step) to a power of two >= 16, so held-out episodes of many
    lengths compile a handful of shapes, not one per length (46 lengths in 240 episodes)."""
    key = _obs_key(critic)
    obs = np.asarray(episode["observation"][key])
    out = []
    for i in range(0, len(obs), chunk):
        o, c = obs[i:i + chunk], candidates[i:i + chunk]
        n = len(o)
        size = min(chunk, max(16, 1 << (n - 1).bit_length()))
        pad = lambda x: np.concatenate([x, np.repeat(x[-1:], size - n, axis=0)])  # noqa: E731
        lang = np.repeat(lang_vec[None], size, axis=0)
        out.append(np.asarray(critic.score({key: pad(o)}, lang, pad(c)))[:n])
    return np.concatenate(out)


def run_diagnostics(critic, episodes, encoder, *, labels, seed: int = 0) -> dict:
    """All diagnostics; ``episodes`` are episode dicts (docs/design.md), ``encoder`` a
    LanguageEncoder. ``labels``: how training labels episodes — the profile (or its
    ``DataConfig``, or a ``TrainingData.labels`` dict); held-out episodes are labelled exactly so
    (:func:`vgps.data.labels.label_episode`: with ``use_success_flag`` a failed episode has no
    success steps and returns r_fail/(1-γ)). Returns a flat dict of numbers plus ``per_episode``
    Q traces."""
    if not isinstance(labels, dict):
        labels = label_config(getattr(labels, "data", labels))     # a Profile -> its DataConfig
    gamma = labels["gamma"]
    rng = np.random.default_rng(seed)
    scale = np.asarray(getattr(critic.normalizer, "std", np.ones(7)), np.float32)[:6]
    kinds = PERTURBATIONS + DECISION_POINTS
    wins = {k: [] for k in kinds}
    q_all, sts_all, rhos, below, traces = [], [], [], [], []
    q_min, q_min_pert = np.inf, np.inf
    for ep in episodes:
        T = len(ep["action"])
        succ = ep.get("success")
        succ = True if succ is None else bool(succ)
        lab = label_episode(ep, labels)
        acts = np.asarray(ep["action"], np.float32)
        cands, valids = [acts], []
        for k in kinds:
            p, v = perturb(acts, k, scale, rng)
            cands.append(p)
            valids.append(v)
        q = score_episode(critic, ep, encoder.encode([ep["instruction"]])[0], np.stack(cands, 1))
        q_demo = q[:, 0]
        q_min, q_min_pert = min(q_min, float(q_demo.min())), min(q_min_pert, float(q[:, 1:].min()))
        below.append(q_demo < lab["mc_returns"])
        traces.append({"instruction": ep["instruction"], "success": succ, "q": q_demo,
                       "success_step": lab["success_step"],
                       "failure_mode": ep.get("metadata", {}).get("failure_mode")})
        if not succ:
            continue
        for j, k in enumerate(kinds):
            wins[k].append((q_demo > q[:, j + 1])[valids[j]])
        first = int(np.argmax(lab["success_step"]))
        sts = np.maximum(first - np.arange(T), 0)
        q_all.append(q_demo)
        sts_all.append(sts)
        if np.ptp(sts) > 0 and np.ptp(q_demo) > 0:
            rhos.append(spearmanr(q_demo, sts).statistic)
    res = {f"rank/{k}": float(np.mean(np.concatenate(v))) if v and sum(map(len, v)) else np.nan
           for k, v in wins.items()}
    res["rank/mean"] = float(np.nanmean([res[f"rank/{k}"] for k in PERTURBATIONS]))
    if q_all:
        res["spearman"] = float(spearmanr(np.concatenate(q_all), np.concatenate(sts_all)).statistic)
    else:
        res["spearman"] = np.nan
    res["spearman_within_episode"] = float(np.mean(rhos)) if rhos else np.nan
    res["bound_rate"] = float(np.mean(np.concatenate(below))) if below else np.nan
    res["q_min_demo"] = q_min
    res["q_min_perturbed"] = q_min_pert
    res["q_lower_ok"] = bool(q_min >= -1.0 / (1.0 - gamma))
    res["num_episodes"] = len(episodes)
    res["per_episode"] = traces
    return res


def summary_table(results: dict):
    """``{name: run_diagnostics(...)}`` -> a pandas DataFrame (one row per critic)."""
    import pandas as pd
    rows = []
    for name, r in results.items():
        rows.append({"critic": name, **{k: (round(v, 3) if isinstance(v, float) else v)
                                        for k, v in r.items() if k != "per_episode"}})
    return pd.DataFrame(rows)


def plot_q_along_episodes(results: dict, max_episodes: int = 4, ncols: int = 2):
    """Q(s_t, a_t) of the demo actions along a few held-out episodes, one panel per critic (a grid
    ``ncols`` wide), the same episodes in every panel (half successes, half failures, in the order
    of the first critic's results). Stars mark the steps the labels call success (the last H
    steps of a successful demo); one legend below names each episode by outcome and instruction."""
    import textwrap

    import matplotlib.pyplot as plt
    names = list(results)
    ncols = max(1, min(ncols, len(names)))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.0 * nrows + 0.8), squeeze=False,
                             layout="constrained")
    first = results[names[0]]["per_episode"]
    idx = [i for i, e in enumerate(first) if e["success"]][: max_episodes // 2 + max_episodes % 2]
    idx += [i for i, e in enumerate(first) if not e["success"]][: max_episodes - len(idx)]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes.flat, names):
        eps = results[name]["per_episode"]
        for c, i in enumerate(idx):
            e = eps[i]
            t = np.arange(len(e["q"]))
            outcome = "success" if e["success"] else f"failure ({e['failure_mode']})"
            ax.plot(t, e["q"], lw=1.4, color=colours[c % len(colours)],
                    label=textwrap.shorten(f"{outcome}: {e['instruction']}", 70))
            s = np.asarray(e["success_step"], bool)
            if s.any():
                ax.scatter(t[s], e["q"][s], color=colours[c % len(colours)], marker="*", s=60,
                           zorder=3)
        ax.set_title(CRITIC_VARIANTS[name].label if name in CRITIC_VARIANTS else name, fontsize=9)
        ax.set_xlabel("step t", fontsize=8)
        ax.set_ylabel("Q(s_t, a_t), demo action", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    handles, texts = axes.flat[0].get_legend_handles_labels()
    star = plt.Line2D([], [], color="0.3", marker="*", ls="", markersize=8,
                      label="labelled success step (last H steps of a successful demo)")
    fig.legend([*handles, star], [*texts, star.get_label()], loc="outside lower center", ncol=2,
               fontsize=8, frameon=False)
    return fig
