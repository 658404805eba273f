"""The two reporting protocols of the Table 2 analogue.

(i) ``paper``: sweep K × β on the evaluation seeds and report, per policy, the best setting
    (App. B.2). Optimistic: the same episodes choose and score the setting.
(ii) ``fixed``: ONE setting for every policy — (K, β), or (critic, K, β) when several candidate
    critics are tuned — chosen on separate tuning seeds (``EvalConfig.tuning_seeds``) by the mean
    success over policies and tasks, then evaluated on the evaluation seeds, which never influence
    the choice.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from vgps.eval.harness import RunConfig
from vgps.eval.stats import paired_difference, stratified_bootstrap_mean, wilson


def sweep_configs(policy: str, eval_cfg) -> list[RunConfig]:
    """Base plus every V-GPS (K, β) of the sweep for one policy."""
    return [RunConfig(policy)] + [RunConfig(policy, "vgps", int(k), float(b))
                                  for k in eval_cfg.sweep_K for b in eval_cfg.sweep_beta]


def _mean_rate(df: pd.DataFrame) -> float:
    """Mean over tasks of per-task success (every task weighs the same)."""
    return float(df.groupby("task")["success"].mean().mean())


def best_per_policy(df: pd.DataFrame) -> pd.DataFrame:
    """The paper protocol (notebook 05's protocol 2): for each policy, the V-GPS (K, β) with the
    highest mean task success."""
    v = df[df["method"] == "vgps"]
    rows = []
    for (pol, k, b), g in v.groupby(["policy", "K", "beta"], sort=True):
        rows.append({"policy": pol, "K": int(k), "beta": float(b), "rate": _mean_rate(g)})
    s = pd.DataFrame(rows).sort_values(["policy", "rate", "K", "beta"], ascending=[True, False, True, False])
    return s.groupby("policy", sort=True).head(1).reset_index(drop=True)


def choose_fixed(tuning_df: pd.DataFrame, critic_order: tuple[str, ...] = ()) -> tuple[dict, pd.DataFrame]:
    """The fixed protocol (notebook 05's protocol 1): one setting maximizing the mean over policies
    of the mean task success on the tuning seeds. The setting is (K, β), or (critic, K, β) when ``tuning_df`` has a ``critic``
    column (one critic then steers every policy). Ties → earlier critic in ``critic_order``
    (else alphabetical), smaller K, larger β. Returns ``(choice, scores)``; ``choice`` has keys
    ``K``, ``beta`` (and ``critic``); ``scores`` has one row per setting, best first."""
    v = tuning_df[tuning_df["method"] == "vgps"]
    if v.empty:
        raise ValueError("no V-GPS rows (method == 'vgps') in the tuning results")
    by = (["critic"] if "critic" in v.columns else []) + ["K", "beta"]
    rows = []
    for key, g in v.groupby(by, sort=True):
        rates = [_mean_rate(gp) for _, gp in g.groupby("policy")]
        rows.append({**dict(zip(by, key)), "mean_rate": float(np.mean(rates))})
    scores = pd.DataFrame(rows)
    scores["K"], scores["beta"] = scores["K"].astype(int), scores["beta"].astype(float)
    if "critic" in by:        # tie rank: critic_order first, then the other critics alphabetically
        order = list(critic_order) + sorted(set(scores["critic"]) - set(critic_order))
        scores["_rank"] = scores["critic"].map(order.index)
    else:
        scores["_rank"] = 0
    scores = scores.sort_values(["mean_rate", "_rank", "K", "beta"], ascending=[False, True, True, False])
    scores = scores.drop(columns="_rank").reset_index(drop=True)
    top = scores.iloc[0]
    choice = {"K": int(top["K"]), "beta": float(top["beta"])}
    if "critic" in by:
        choice["critic"] = str(top["critic"])
    return choice, scores


def select(df: pd.DataFrame, policy: str, method: str, K=None, beta=None) -> pd.DataFrame:
    m = (df["policy"] == policy) & (df["method"] == method)
    if K is not None:
        m &= (df["K"] == K) & np.isclose(df["beta"].astype(float), beta)
    return df[m]


def summary(df: pd.DataFrame, choices: dict[str, tuple[int, float]], protocol: str, *,
            method: str = "vgps", reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per policy: base and V-GPS (``method``) mean success over tasks with stratified-bootstrap
    95% intervals, the paired improvement and its interval, and a verdict that says when V-GPS
    did not help."""
    rows = []
    for pol, (k, b) in choices.items():
        base, ours = select(df, pol, "policy"), select(df, pol, method, k, b)
        mb, lb, hb = stratified_bootstrap_mean(base, reps=reps, seed=seed)
        mo, lo, ho = stratified_bootstrap_mean(ours, reps=reps, seed=seed)
        d, dl, dh = paired_difference(base, ours, reps=reps, seed=seed)
        verdict = ("helps: interval excludes 0" if dl > 0 else "HURTS: interval excludes 0" if dh < 0
                   else f"does not help significantly (mean change {d:+.3f})")
        rows.append({"protocol": protocol, "policy": pol, "K": k, "beta": b,
                     "base": mb, "base_lo": lb, "base_hi": hb, "vgps": mo, "vgps_lo": lo, "vgps_hi": ho,
                     "improvement": d, "impr_lo": dl, "impr_hi": dh, "verdict": verdict})
    return pd.DataFrame(rows)


def per_task_table(df: pd.DataFrame, choices: dict[str, tuple[int, float]], embodiment_of: dict) -> pd.DataFrame:
    """Table-2 layout, in the paper's order: per embodiment (in ``embodiment_of``'s order) one row
    per task (in that order; tasks it does not list last, alphabetically) and then the
    embodiment's average; a total average last. Columns ``<policy>`` and ``<policy> +V-GPS`` with
    success rates, plus Wilson intervals as text (empty on the average rows)."""
    order = {t: i for i, t in enumerate(embodiment_of)}
    embs = list(dict.fromkeys([*embodiment_of.values(), ""]))    # "": tasks it does not list
    tasks = sorted(df["task"].unique(), key=lambda t: (embs.index(embodiment_of.get(t, "")),
                                                       order.get(t, len(order)), t))
    rows = []
    for t in tasks:
        row = {"embodiment": embodiment_of.get(t, ""), "task": t}
        for pol, (k, b) in choices.items():
            for label, part in (("", select(df, pol, "policy")), (" +V-GPS", select(df, pol, "vgps", k, b))):
                g = part[part["task"] == t]["success"]
                lo, hi = wilson(int(g.sum()), len(g))
                row[pol + label] = float(g.mean())
                row[pol + label + " CI"] = f"[{lo:.2f}, {hi:.2f}]"
        rows.append(row)
    tab = pd.DataFrame(rows)
    num = [c for c in tab.columns if c not in ("embodiment", "task") and not c.endswith(" CI")]
    blank = {c: "" for c in tab.columns if c.endswith(" CI")}
    out = []
    for e in [e for e in embs if (tab["embodiment"] == e).any()]:
        part = tab[tab["embodiment"] == e]
        out += part.to_dict("records")
        out.append({"embodiment": e, "task": "average", **part[num].mean().to_dict(), **blank})
    out.append({"embodiment": "total", "task": "average", **tab[num].mean().to_dict(), **blank})
    return pd.DataFrame(out, columns=tab.columns)
