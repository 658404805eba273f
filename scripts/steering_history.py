"""Write figures/history/05_steering_history.md: the fixed-protocol steering results of earlier
`default` runs, read from the 05_summary.md each of those commits held (git history), with the
evaluation seed, labels and CPU of that commit. The README's "how we got here" paragraph quotes
this file; nothing in it is typed by hand except which commits are listed.

    python scripts/steering_history.py            # (re)write the file
"""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from vgps.plotting import from_markdown

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "figures" / "history" / "05_steering_history.md"
# commits whose committed notebook-05 results the README's history refers to, oldest first
COMMITS = ("9d0c121", "2df541f", "76b39fd", "63990e1")


def show(commit: str, path: str) -> str | None:
    r = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def context(commit: str) -> dict:
    cfg = show(commit, "vgps/config.py") or ""
    seed = re.search(r"EvalConfig\(episodes_per_task=50, seeds=\(([^)]*)\)", cfg)
    flag = re.search(r"use_success_flag: bool = (True|False)", cfg)
    man = show(commit, "figures/default/MANIFEST.json")
    cpu = ""
    if man:
        p = json.loads(man).get("platform", {})
        if isinstance(p.get("isa"), str):     # pinned runs: the instruction set they were pinned to
            cpu = f"pinned {p['isa']} ({p.get('caches', '')})"
        elif p:
            cpu = f"{p.get('cpu', '')} ({', '.join(p.get('isa', [])[-2:])})"
    date = subprocess.run(["git", "log", "-1", "--format=%ad", "--date=short", commit], cwd=REPO,
                          capture_output=True, text=True).stdout.strip()
    return {"commit": commit, "date": date,
            "evaluation seed": seed.group(1).strip(", ") if seed else "?",
            "labels": {"True": "recorded outcome", "False": "the paper's"}.get(flag.group(1), "?") if flag else "?",
            "cpu": cpu or "not recorded"}


def main() -> int:
    rows = []
    for c in COMMITS:
        text = show(c, "figures/default/05_summary.md")
        if text is None:
            print(f"{c}: no figures/default/05_summary.md", file=sys.stderr)
            return 1
        t = from_markdown(text)
        t = t[t["protocol"].str.startswith("fixed")]
        ctx = context(c)
        for r in t.itertuples(index=False):
            rows.append({**ctx, "critic": getattr(r, "critic", "calql"), "policy": r.policy, "K": r.K,
                         "beta": r.beta, "base": r.base, "+V-GPS": r.vgps, "change": r.improvement,
                         "95% lo": r.impr_lo, "95% hi": r.impr_hi})
    df = pd.DataFrame(rows)
    buf = io.StringIO()
    buf.write("# Notebook 05, fixed protocol: results of earlier `default` runs\n\n"
              "Read by `scripts/steering_history.py` from the `figures/default/05_summary.md` each "
              "commit held; seed, labels and CPU from that commit's `vgps/config.py` and manifest. "
              "The current run is `figures/default/05_summary.md`.\n\n")
    buf.write("| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n")
    for r in df.itertuples(index=False):
        buf.write("| " + " | ".join(str(v) for v in r) + " |\n")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(buf.getvalue())
    tmp.replace(OUT)
    print(f"wrote {OUT.relative_to(REPO)} ({len(df)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
