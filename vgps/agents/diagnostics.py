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


def plot_q_along_episodes(results: dict, max_episodes: int = 4):
    """Q(s_t, a_t) along a few held-out episodes (success steps marked) for each critic."""
    import matplotlib.pyplot as plt
    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        eps = results[name]["per_episode"]
        chosen = [e for e in eps if e["success"]][: max_episodes // 2 + max_episodes % 2]
        chosen += [e for e in eps if not e["success"]][: max_episodes - len(chosen)]
        for i, e in enumerate(chosen):
            t = np.arange(len(e["q"]))
            label = ("success" if e["success"] else f"fail ({e['failure_mode']})")
            line, = ax.plot(t, e["q"], lw=1.5, label=f"{label}: {e['instruction'][:24]}")
            s = e["success_step"]
            ax.scatter(t[s], e["q"][s], color=line.get_color(), marker="*", s=60, zorder=3)
        ax.set_title(name)
        ax.set_xlabel("step t")
        ax.set_ylabel("Q(s_t, a_t)")
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig
