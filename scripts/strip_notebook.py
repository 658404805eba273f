#!/usr/bin/env python
"""Strip volatile metadata from notebooks so reruns and commits are byte-stable.

Removes papermill's per-cell metadata (start/end time, duration, status), nbclient's
``execution`` timestamps, and papermill's notebook-level timing, paths and version (its
``parameters`` are kept). ``--drop-injected`` also removes papermill's ``injected-parameters``
cell: committed notebooks must not carry one, or nbval (which reads ``$VGPS_PROFILE`` through the
parameters cell) would run the injected profile instead of ``smoke``. The checkout's absolute
path is removed from text outputs (``/home/me/vgps/figures/x.png`` → ``figures/x.png``), so the
same run in two clones gives the same notebook bytes. stderr outputs that hold only progress-bar
states (tqdm) are dropped: a committed notebook carries results, not bars.

    python scripts/strip_notebook.py [--drop-injected] [--check] notebooks/*.ipynb
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

INJECTED_TAG = "injected-parameters"
REPO_PREFIX = str(Path(__file__).resolve().parent.parent) + "/"
_NB_PAPERMILL_KEEP = ("parameters",)


def has_injected_cell(nb) -> bool:
    return any(INJECTED_TAG in c.get("metadata", {}).get("tags", []) for c in nb.cells)


def _relative(text, prefix: str):
    if isinstance(text, list):
        return [t.replace(prefix, "") for t in text]
    return text.replace(prefix, "") if isinstance(text, str) else text


# one tqdm bar state: "desc:  40%|####      | 2/5 [00:01<00:02,  1.2it/s, loss=3]"
_BAR = re.compile(r"^.*\d+%\|.*\| *[\d.?]+[kM]?/[\d.?]+[kM]? \[.*\]\s*$")


def _is_progress(o) -> bool:
    """A stderr stream output holding only progress-bar states (tqdm redraws with \\r): the
    bars show progress while a notebook runs, and are noise in a committed one."""
    if o.get("output_type") != "stream" or o.get("name") != "stderr":
        return False
    text = "".join(o.get("text", ""))
    parts = [p for p in re.split(r"[\r\n]", text) if p.strip()]
    return all(_BAR.match(p) for p in parts)          # whitespace only: a bar's last newline


def strip(nb, drop_injected: bool = False, repo_prefix: str = REPO_PREFIX):
    """Strip ``nb`` (a NotebookNode) in place and return it."""
    pm = nb.metadata.get("papermill")
    if pm is not None:
        kept = {k: pm[k] for k in _NB_PAPERMILL_KEEP if k in pm}
        if kept:
            nb.metadata["papermill"] = kept
        else:
            nb.metadata.pop("papermill")
    if drop_injected:
        nb.cells = [c for c in nb.cells
                    if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    for c in nb.cells:
        md = c.get("metadata", {})
        md.pop("papermill", None)
        md.pop("execution", None)
        if "outputs" in c:
            c["outputs"] = [o for o in c["outputs"] if not _is_progress(o)]
        for o in c.get("outputs", []):
            o.get("metadata", {}).pop("execution", None)
            if "text" in o:
                o["text"] = _relative(o["text"], repo_prefix)
            data = o.get("data", {})
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in data:
                    data[mime] = _relative(data[mime], repo_prefix)
    return nb


def strip_file(path: str | Path, drop_injected: bool = False, check: bool = False) -> bool:
    """Strip one file in place; return True if it changed (with ``check``, only report)."""
    path = Path(path)
    before = path.read_text(encoding="utf-8")
    nb = strip(nbformat.reads(before, as_version=4), drop_injected)
    after = nbformat.writes(nb)
    after = after if after.endswith("\n") else after + "\n"
    if after == before:
        return False
    if not check:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(after, encoding="utf-8")
        tmp.replace(path)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--drop-injected", action="store_true")
    ap.add_argument("--check", action="store_true", help="exit 1 if any notebook would change")
    a = ap.parse_args(argv)
    changed = [p for p in a.notebooks if strip_file(p, a.drop_injected, a.check)]
    for p in changed:
        print(("would strip " if a.check else "stripped ") + str(p))
    return 1 if (a.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
