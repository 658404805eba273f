"""Wilson intervals against hand-computed values; bootstrap and paired differences."""
import numpy as np
import pandas as pd
import pytest

from vgps.eval.stats import paired_difference, stratified_bootstrap_mean, success_table, wilson


def test_wilson_hand_computed():
    # p = 0.5, n = 100, z = 1.96: centre 0.5, half = 1.96*sqrt(0.0025 + 0.0000960)/1.038416
    lo, hi = wilson(50, 100)
    z = 1.959963984540054
    half = z * np.sqrt(0.25 / 100 + z * z / 40000) / (1 + z * z / 100)
    assert lo == pytest.approx(0.5 - half) and hi == pytest.approx(0.5 + half)
    assert (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)
    lo, hi = wilson(0, 10)          # textbook: [0, 0.2775]
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.7225, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_success_table_and_bootstrap():
    df = pd.DataFrame({"task": ["a"] * 10 + ["b"] * 10, "success": [1] * 8 + [0] * 2 + [1] * 2 + [0] * 8})
    t = success_table(df, ["task"])
    assert list(t["rate"]) == [0.8, 0.2] and list(t["n"]) == [10, 10]
    m, lo, hi = stratified_bootstrap_mean(df)
    assert m == pytest.approx(0.5) and lo < 0.5 < hi


def test_paired_difference():
    a = pd.DataFrame({"task": ["t"] * 4, "env_seed": [0, 1, 2, 3], "success": [0, 0, 1, 1]})
    b = a.assign(success=[1, 0, 1, 1])
    d, lo, hi = paired_difference(a, b)
    assert d == pytest.approx(0.25) and 0 <= lo <= d <= hi
