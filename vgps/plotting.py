"""Deterministic figure and table writing: no timestamps, versions or random ids in the bytes.

Every file is written atomically (to a hidden temporary name beside it, then renamed), so an
interrupted run leaves either the old file or the new one, never half of one; the manifest skips
dot-files, so a temporary left by a kill is never hashed.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:
    # scripts, tests, dataset workers: no display. In a notebook kernel keep its inline backend,
    # or plt.show() draws nothing and the committed notebooks carry no figures (saved bytes are
    # the same either way: savefig renders png/svg with its own canvas for the format)
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

matplotlib.rcParams["svg.hashsalt"] = "vgps"
matplotlib.rcParams["svg.fonttype"] = "path"
matplotlib.rcParams["path.simplify"] = True

_PNG_META = {"Software": None}
_SVG_META = {"Date": None, "Creator": None}


@contextmanager
def atomic_path(path: Path):
    """Yield a hidden temporary path beside ``path``; rename it onto ``path`` once written."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_figure(fig, out_dir: str | Path, name: str, close: bool = True) -> list[Path]:
    """Write ``name.png`` and ``name.svg`` into ``out_dir``; byte-identical on rerun."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=_PNG_META, bbox_inches="tight")
    with atomic_path(svg) as tmp:
        fig.savefig(tmp, format="svg", metadata=_SVG_META, bbox_inches="tight")
    if close:
        plt.close(fig)
    return [png, svg]


def save_table(df, out_dir: str | Path, name: str, floatfmt: str = ".3f") -> list[Path]:
    """Write a pandas DataFrame as ``name.csv`` and ``name.md`` (markdown, for the README). In the
    CSV a text cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first,
    e.g. a task name from a robot log) gets a leading ``'``
    (:func:`vgps.robot_logs.csv_cell`; numbers are untouched); the markdown shows the text as is."""
    from vgps.robot_logs import csv_cell
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, md = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    safe = df.map(lambda v: csv_cell(v) if isinstance(v, str) else v)
    safe.columns = [csv_cell(c) if isinstance(c, str) else c for c in df.columns]
    with atomic_path(csv) as tmp:
        safe.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")
    with atomic_path(md) as tmp:
        tmp.write_text(to_markdown(df, floatfmt) + "\n")
    return [csv, md]


def to_markdown(df, floatfmt: str = ".3f") -> str:
    """Markdown table without the optional ``tabulate`` dependency."""
    def fmt(v):
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines)


def from_markdown(text: str):
    """The first markdown table in ``text`` (as :func:`to_markdown` writes it) back as a DataFrame of
    str cells; ValueError when ``text`` holds no table (a ``|`` header row, then a ``|---|`` row)."""
    import pandas as pd
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    if len(lines) < 2 or not set(lines[1]) <= set("|-: "):
        raise ValueError("no markdown table (a | header row followed by a |---| row)")
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines if not set(ln) <= set("|-: ")]
    return pd.DataFrame(rows[1:], columns=rows[0])
