"""The paper's published numbers, shipped as tidy CSVs in ``data/`` (one row per reported cell,
a ``source`` column naming the table). Transcribed from the paper; nothing here is measured.

=====================  ===============================================================
file                   content
=====================  ===============================================================
paper_table1.csv       real robot: per task and arm, successes out of 20 trials (rates 0.15 = 3/20 …)
paper_table1_summary   real robot: the published scene / total averages and relative improvements
paper_table7.csv       fine-tuning / training from scratch vs V-GPS (SIMPLER WidowX), with averages
paper_table8.csv       critic trained on 100 / 50 / 10 % of Bridge (eggplant task)
paper_table9.csv       inference time per step and overhead for K = 10 … 100
paper_table10.csv      ablation over K for IQL and Cal-QL critics (eggplant, pick coke)
paper_table11.csv      the Cal-QL and IQL actors alone
paper_table12.csv      random selection among K; random policy + critic
paper_table13.csv      parameter counts
=====================  ===============================================================

``real_robot_trials_paper_table1.csv`` expands Table 1 into one row per trial in the
:mod:`vgps.robot_logs` format. It is synthesised from the published counts: the order of the
trials, their dates and any pairing are not known.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from vgps.paths import DATA


def paper_table_path(n: int | str) -> Path:
    return DATA / f"paper_table{n}.csv"


def load_paper_table(n: int | str) -> pd.DataFrame:
    """The paper's Table ``n`` as a DataFrame (``n`` may be e.g. ``"1_summary"``).

    Empty numeric cells (e.g. ``K`` of an unsteered baseline) read as missing values."""
    path = paper_table_path(n)
    if not path.exists():
        have = sorted(p.stem.removeprefix("paper_table") for p in DATA.glob("paper_table*.csv"))
        raise FileNotFoundError(f"no shipped table {n!r} ({path}); available: {have}")
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    if "K" in df:
        df["K"] = df["K"].astype("Int64")
    return df
