"""Every result the README quotes is read from a committed artefact (issue 18, item 6).

A README block that quotes results is fenced by HTML comments naming its sources::

    <!-- numbers: figures/default/05_summary.md figures/default/05_labels.md -->
    ... prose or a table ...
    <!-- /numbers -->

Inside a block, every decimal number (``0.28``, ``+0.15``, ``−0.73``) and every number written
with ``×``, ``%``, ``s`` or ``min`` must be found in one of the sources at the README's precision
(an artefact value of 0.2833 backs "0.28"; a fraction 0.28 also backs "28 %"; seconds in the
manifest back minutes rounded from them). Settings written ``name=value`` (``K=10``, ``β=0.1``) and
thresholds after ``≥`` / ``≤`` are not results and are skipped. Sources may be ``.md``, ``.csv``
or ``.json`` files under ``figures/``.
"""
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
OPEN = re.compile(r"<!--\s*numbers:\s*(.*?)\s*-->")
CLOSE = "<!-- /numbers -->"
# a number with an optional sign (ASCII or Unicode minus, plus), thousands commas, decimals, and
# an optional unit: "×", "%", " %", "s", " min"
NUM = re.compile(r"(?<![\w.=≥≤<>/#`-])([+\-−]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?"
                 r"(\s?%|×|\s?min\b|\s?s\b)?")


def blocks(text: str):
    """``[(sources, body, line_number)]`` of the README's number blocks."""
    out, pos = [], 0
    while True:
        m = OPEN.search(text, pos)
        if not m:
            return out
        end = text.find(CLOSE, m.end())
        if end < 0:
            raise AssertionError(f"README line {text[:m.start()].count(chr(10)) + 1}: "
                                 f"'{m.group(0)}' has no closing '{CLOSE}'")
        out.append((m.group(1).split(), text[m.end():end], text[:m.start()].count("\n") + 1))
        pos = end + len(CLOSE)


def quoted(body: str):
    """``[(text, value, decimals, unit)]`` of the results quoted in ``body`` (module docstring)."""
    body = re.sub(r"`[^`]*`", " ", body)                 # code: paths, commands, identifiers
    body = re.sub(r"\[[^\]]*\]\([^)]*\)", " ", body)     # markdown links
    out = []
    for m in NUM.finditer(body):
        sign, whole, frac, unit = m.group(1), m.group(2), m.group(3) or "", (m.group(4) or "").strip()
        before = body[max(0, m.start() - 2):m.start()]
        if "=" in before or "≥" in before or "≤" in before:
            continue                                      # a setting or a target, not a result
        if not frac and not unit:
            continue                                      # plain integers: counts, sizes
        value = float(whole.replace(",", "") + frac) * (-1 if sign in "-−" and sign else 1)
        out.append((m.group(0).strip(), value, max(len(frac) - 1, 0), unit))
    return out


def source_numbers(paths) -> list[float]:
    vals = []
    for p in paths:
        f = REPO / p
        assert f.is_file(), f"README cites {p}, which is not a committed file"
        text = f.read_text()
        if f.suffix == ".json":
            text = json.dumps(json.loads(text))
        for m in re.finditer(r"[+\-−]?\d+(?:\.\d+)?(?:[eE][+\-]?\d+)?", text.replace(",", "")):
            vals.append(float(m.group(0).replace("−", "-")))
    return vals


def backed(value: float, decimals: int, unit: str, vals) -> bool:
    tol = 0.5 * 10 ** -decimals + 1e-9
    cands = list(vals)
    if unit == "%":
        cands += [100 * v for v in vals]
    if unit == "min":
        cands += [v / 60 for v in vals]
    return any(abs(c - value) <= tol for c in cands)


def test_the_number_block_parser():
    body = ("success 0.28 (+0.15 [+0.09, +0.21]), −0.73, 1.14× the policy, 28 %, K=10, β=0.1, "
            "≥ 0.80, 50 episodes, 81 min, `0.99` in code")
    got = [(t, v, d, u) for t, v, d, u in quoted(body)]
    assert [g[0] for g in got] == ["0.28", "+0.15", "+0.09", "+0.21", "−0.73", "1.14×", "28 %",
                                   "81 min"]
    assert got[4][1] == -0.73 and got[5][3] == "×" and got[6][3] == "%"
    vals = [0.2833, 0.151, 0.088, 0.2149, -0.7312, 1.1404, 0.28, 4861.0]
    assert all(backed(v, d, u, vals) for _, v, d, u in got)
    assert not backed(0.27, 2, "", vals) and not backed(0.73, 2, "", vals)   # sign matters


def test_every_quoted_result_is_in_the_artefact_it_cites():
    found = blocks(README.read_text())
    if not found:
        pytest.fail("README.md has no <!-- numbers: ... --> blocks: its results cite no artefact")
    bad = []
    for sources, body, line in found:
        vals = source_numbers(sources)
        for text, value, decimals, unit in quoted(body):
            if not backed(value, decimals, unit, vals):
                bad.append(f"README line {line}+: {text!r} not in {', '.join(sources)}")
    assert not bad, "\n".join(bad)
