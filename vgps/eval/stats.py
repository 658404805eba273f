"""Success-rate intervals: Wilson score (per cell) and stratified bootstrap over tasks (rliable-like)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``successes / n`` (scipy's ``binomtest(...).proportion_ci``,
    ``method="wilson"``, no continuity correction) → ``(low, high)``; ``(0, 1)`` when n = 0."""
    from scipy.stats import binomtest
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence,
                                                        method="wilson")
    return float(ci.low), float(ci.high)


def success_table(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group: ``n``, ``successes``, ``rate``, ``lo``, ``hi`` (Wilson 95%)."""
    g = df.groupby(by, sort=True)["success"].agg(["size", "sum"]).reset_index()
    g = g.rename(columns={"size": "n", "sum": "successes"})
    g["successes"] = g["successes"].astype(int)
    g["rate"] = g["successes"] / g["n"]
    ci = [wilson(s, n) for s, n in zip(g["successes"], g["n"])]
    g["lo"], g["hi"] = [c[0] for c in ci], [c[1] for c in ci]
    return g


def stratified_bootstrap_mean(df: pd.DataFrame, strata: str = "task", reps: int = 2000,
                              seed: int = 0) -> tuple[float, float, float]:
    """Mean over strata of per-stratum success rates, with a 95% percentile interval from
    resampling episodes within each stratum → ``(mean, low, high)``."""
    rng = np.random.default_rng(seed)
    groups = [g["success"].to_numpy(float) for _, g in df.groupby(strata, sort=True)]
    point = float(np.mean([g.mean() for g in groups]))
    boots = np.mean([rng.choice(g, (reps, len(g))).mean(1) for g in groups], axis=0)
    return point, float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def paired_difference(a: pd.DataFrame, b: pd.DataFrame, keys=("task", "env_seed"), reps: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean over tasks of (b − a) success on the same episodes (same task and env seed), with a
    stratified paired-bootstrap 95% interval → ``(diff, low, high)``."""
    m = a.merge(b, on=list(keys), suffixes=("_a", "_b"))
    if m.empty:
        raise ValueError("no paired episodes (same task and env_seed) to compare")
    m["d"] = m["success_b"].astype(float) - m["success_a"].astype(float)
    return stratified_bootstrap_mean(m.rename(columns={"d": "success"}), "task", reps, seed)
