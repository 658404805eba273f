"""Real-robot trial logs: schema, validation, safe appends, and the paper's Table 1 from logs.

One row per trial. CSV (``.csv``) or JSON lines (``.jsonl``), chosen by the file suffix. The
fields (all strings on disk; :func:`validate_row` types them):

===========  ========  ===================================================================
field        required  meaning
===========  ========  ===================================================================
date         no        ISO date ``YYYY-MM-DD`` of the trial (blank = unknown)
scene        yes       scene label, e.g. ``A``
task         yes       short task name, e.g. ``Green pepper in pot``
instruction  yes       the language instruction given to the policy
policy       yes       the generalist policy, e.g. ``octo-small-1.5``
critic       yes       critic id used for steering, or ``none`` for the policy alone
K            steered   number of sampled candidate actions (integer >= 1); blank if ``none``
beta         steered   softmax temperature (>= 0; 0 = greedy argmax); blank if ``none``
success      yes       ``1`` success / ``0`` failure (``true``/``false`` accepted)
trial        no        trial index within (task, arm), integer >= 1
pair_id      no        id of a matched initial configuration run once per arm (paired design)
notes        no        free text
===========  ========  ===================================================================

On disk, a JSONL log is one JSON object per ``\n``-terminated line: U+2028, U+2029 and U+0085,
which some readers take for line breaks, are written as JSON escapes, and reading splits on ``\n``
only. In a CSV log, a text field starting with ``= + - @``, tab or carriage return (a spreadsheet
formula; OWASP "CSV injection") is written with a leading ``'``, which reading removes again; a
text field already starting with ``'`` before such a character gets one more ``'``, so every value
round-trips exactly. Numbers and JSONL logs are stored as they are.

An *arm* is one (policy, critic, K, beta) setting; Table 1 compares the unsteered arm
(``critic = none``) with the steered arm per task.

Statistics (none of which the paper reports; it gives only success rates):

- 95 % **Wilson** score intervals per task and arm (good coverage at n = 20, never outside
  [0, 1], unlike the Wald interval). Scene and total rows use the pooled count, which equals the
  paper's mean of per-task rates because every task has the same number of trials.
- Per task, a two-sided **Boschloo exact test** (unconditional; uniformly more powerful than
  Fisher's exact test, which is also reported) for two independent binomial samples. The paper
  runs 20 trials per task and arm with randomised object placements and does not pair trials,
  so an unpaired test is the right one. If *every* trial of the two arms carries a ``pair_id``
  and each id occurs exactly once per arm, the exact **McNemar** test (a binomial test on the
  discordant pairs) is used instead, since it removes the between-configuration variance.
- Scene and total rows: a two-sided exact **stratified** test (tasks as strata; the sum of
  steered successes conditional on every task's margins, i.e. the exact Cochran–Mantel–Haenszel
  test), which asks whether steering helps overall without pooling different tasks' base rates.

Relative improvement = (steered average / base average - 1), computed from the *unrounded* scene
averages: that is what gives the paper's +55.6 %, +92.3 %, +100 % and +82.8 %. (From the rounded
averages the paper prints — 0.23, 0.33, 0.18, 0.24 — one would get +52.2 %, +90.9 %, +94.4 % and
+83.3 %.) The printed averages are the exact means rounded half-up to two decimals (0.225 → 0.23,
0.175 → 0.18, 0.625 → 0.63; Python's ``round`` would give 0.17 and 0.62).
"""
from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

FIELDS: tuple[str, ...] = ("date", "scene", "task", "instruction", "policy", "critic", "K", "beta",
                           "success", "trial", "pair_id", "notes")
REQUIRED: tuple[str, ...] = ("scene", "task", "instruction", "policy", "critic", "success")
NO_CRITIC = "none"

SCHEMA = pd.DataFrame(
    [
        ("date", "str (YYYY-MM-DD)", "no", "date of the trial; blank = unknown"),
        ("scene", "str", "yes", "scene label, e.g. A"),
        ("task", "str", "yes", "short task name"),
        ("instruction", "str", "yes", "language instruction given to the policy"),
        ("policy", "str", "yes", "generalist policy id"),
        ("critic", "str", "yes", "critic id used for steering, or 'none'"),
        ("K", "int >= 1", "if steered", "candidate actions sampled per step"),
        ("beta", "float >= 0", "if steered", "softmax temperature; 0 = greedy argmax"),
        ("success", "0 | 1", "yes", "trial outcome"),
        ("trial", "int >= 1", "no", "trial index within (task, arm)"),
        ("pair_id", "str", "no", "matched initial configuration (paired designs)"),
        ("notes", "str", "no", "free text"),
    ],
    columns=["field", "type", "required", "meaning"],
)


class TrialLogError(ValueError):
    """A trial row or log file does not match the schema. ``errors`` lists every problem."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


# ----------------------------------------------------------------------------- validation
def _where(row_number: int | None, field: str) -> str:
    return (f"row {row_number}, " if row_number is not None else "") + f"field '{field}'"


def validate_row(row: dict, row_number: int | None = None) -> dict:
    """Check one trial against the schema; return it typed (K int|None, beta float|None,
    success int, trial int|None, other fields str). Raises :class:`TrialLogError` naming the row
    (1-based data row, header excluded) and every offending field."""
    errs: list[str] = []
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        errs.append(f"{'row %d: ' % row_number if row_number is not None else ''}"
                    f"unknown field(s) {unknown}; allowed: {list(FIELDS)}")

    def s(name):
        v = row.get(name)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        return str(v).strip()

    out: dict = {f: s(f) for f in FIELDS}
    for f in REQUIRED:
        if out[f] == "":
            errs.append(f"{_where(row_number, f)}: required, got blank")
    for f in ("scene", "task", "instruction", "policy", "critic", "pair_id", "notes", "date"):
        if "\n" in out[f] or "\r" in out[f]:
            errs.append(f"{_where(row_number, f)}: must be a single line")

    if out["date"]:
        try:
            _dt.date.fromisoformat(out["date"])
            if len(out["date"]) != 10:
                raise ValueError
        except ValueError:
            errs.append(f"{_where(row_number, 'date')}: expected YYYY-MM-DD, got {out['date']!r}")

    succ = out["success"].lower()
    if succ in ("1", "true", "1.0"):
        out["success"] = 1
    elif succ in ("0", "false", "0.0"):
        out["success"] = 0
    elif succ != "":
        errs.append(f"{_where(row_number, 'success')}: expected 0 or 1, got {row.get('success')!r}")

    def as_int(name, lo):
        v = out[name]
        if v == "":
            return None
        try:
            x = float(v)
            if not x.is_integer():
                raise ValueError
            x = int(x)
        except ValueError:
            errs.append(f"{_where(row_number, name)}: expected an integer, got {v!r}")
            return None
        if x < lo:
            errs.append(f"{_where(row_number, name)}: must be >= {lo}, got {x}")
        return x

    out["K"] = as_int("K", 1)
    out["trial"] = as_int("trial", 1)
    beta = out["beta"]
    if beta == "":
        out["beta"] = None
    else:
        try:
            out["beta"] = float(beta)
            if not np.isfinite(out["beta"]) or out["beta"] < 0:
                errs.append(f"{_where(row_number, 'beta')}: must be a finite number >= 0, got {beta!r}")
        except ValueError:
            errs.append(f"{_where(row_number, 'beta')}: expected a number, got {beta!r}")
            out["beta"] = None

    if out["critic"].lower() == NO_CRITIC:
        out["critic"] = NO_CRITIC
        for f in ("K", "beta"):
            if s(f) != "":
                errs.append(f"{_where(row_number, f)}: must be blank when critic is 'none' "
                            f"(no steering), got {s(f)!r}")
    elif out["critic"]:
        for f in ("K", "beta"):
            if s(f) == "":
                errs.append(f"{_where(row_number, f)}: required when steering with critic "
                            f"{out['critic']!r}")
    if errs:
        raise TrialLogError(errs)
    return out


def _to_disk(row: dict) -> dict:
    """Typed row -> strings as written (``beta`` in shortest repr, blanks for None)."""
    d = {}
    for f in FIELDS:
        v = row[f]
        if v is None:
            d[f] = ""
        elif f == "beta":
            d[f] = repr(float(v)).removesuffix(".0") if float(v).is_integer() else repr(float(v))
        else:
            d[f] = str(v)
    return d


_TEXT_FIELDS = ("date", "scene", "task", "instruction", "policy", "critic", "pair_id", "notes")
_FORMULA = re.compile(r"'*[=+\-@\t\r]")        # what a spreadsheet runs, behind any ' already there
_ESCAPED = re.compile(r"'+[=+\-@\t\r]")
_JSON_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def csv_cell(value: str) -> str:
    """A text value as written to a CSV file (logs here, tables in :func:`vgps.plotting.save_table`):
    a leading ``'`` if a spreadsheet would run it (OWASP's CSV-injection advice)."""
    return "'" + value if _FORMULA.match(value) else value


def csv_uncell(cell: str) -> str:
    """Inverse of :func:`csv_cell`."""
    return cell[1:] if _ESCAPED.match(cell) else cell


def _json_line(d: dict) -> str:
    """One JSON object with no character any line splitter could break the line at."""
    text = json.dumps(d, ensure_ascii=False)
    for ch, esc in _JSON_LINE_BREAKS.items():
        text = text.replace(ch, esc)
    return text + "\n"


def _fmt(path: Path) -> str:
    suf = path.suffix.lower()
    if suf == ".csv":
        return "csv"
    if suf in (".jsonl", ".ndjson"):
        return "jsonl"
    raise TrialLogError([f"{path}: unknown log format {suf!r}; use .csv or .jsonl"])


def _serialise(rows: list[dict], fmt: str, header: bool) -> str:
    buf = io.StringIO()
    if fmt == "csv":
        w = csv.DictWriter(buf, fieldnames=list(FIELDS), lineterminator="\n")
        if header:
            w.writeheader()
        for r in rows:
            d = _to_disk(r)
            w.writerow({f: csv_cell(v) if f in _TEXT_FIELDS else v for f, v in d.items()})
    else:
        for r in rows:
            buf.write(_json_line(_to_disk(r)))
    return buf.getvalue()


def _raw_rows(path: Path) -> list[dict]:
    fmt = _fmt(path)
    text = path.read_text(encoding="utf-8")
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        if list(header) != list(FIELDS):
            missing = [f for f in FIELDS if f not in header]
            extra = [f for f in header if f not in FIELDS]
            raise TrialLogError([f"{path}: header does not match the schema"
                                 + (f"; missing {missing}" if missing else "")
                                 + (f"; unknown {extra}" if extra else "")
                                 + (f"; expected order {list(FIELDS)}" if not (missing or extra) else "")])
        return [{f: csv_uncell(v) if f in _TEXT_FIELDS and isinstance(v, str) else v
                 for f, v in r.items()} for r in reader]
    rows = []
    for i, line in enumerate(text.split("\n"), 1):   # not splitlines(): it also splits at U+2028
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise TrialLogError([f"{path}: line {i}: not valid JSON ({e.msg})"]) from None
        if not isinstance(r, dict):
            raise TrialLogError([f"{path}: line {i}: expected a JSON object"])
        rows.append(r)
    return rows


def read_trials(path: str | Path) -> pd.DataFrame:
    """Read and validate a whole log; every invalid row is reported (row numbers are 1-based data
    rows, so row N is on line N + 1 of a CSV)."""
    path = Path(path)
    rows, errs = [], []
    for i, r in enumerate(_raw_rows(path), 1):
        try:
            rows.append(validate_row(r, i))
        except TrialLogError as e:
            errs.extend(e.errors)
    if errs:
        raise TrialLogError([f"{path}: {len(errs)} problem(s)"] + errs)
    df = pd.DataFrame(rows, columns=list(FIELDS))
    df["K"] = df["K"].astype("Int64")
    df["trial"] = df["trial"].astype("Int64")
    df["beta"] = df["beta"].astype("Float64")
    df["success"] = df["success"].astype(int)
    return df


@contextlib.contextmanager
def _locked(path: Path):
    """Advisory lock beside the log, so two sessions appending at once do not race."""
    lock = path.with_name(path.name + ".lock")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def append_trial(path: str | Path, **fields) -> dict:
    """Validate one trial and append it to ``path`` (created with a header if missing).

    The existing bytes are copied verbatim into a temporary file beside the log, the new row is
    added, and the temporary file atomically replaces the log: a crash or an invalid row never
    loses or truncates existing rows. Returns the typed row."""
    path = Path(path)
    fmt = _fmt(path)
    row = validate_row(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        old = path.read_bytes() if path.exists() else b""
        if old.strip():
            _raw_rows(path)  # header / JSON check only; refuse to append to a foreign file
            if not old.endswith(b"\n"):
                old += b"\n"
            new = _serialise([row], fmt, header=False)
        else:
            old = b""
            new = _serialise([row], fmt, header=True)
        _atomic_write(path, old + new.encode("utf-8"))
    return row


def write_trials(path: str | Path, rows: list[dict]) -> Path:
    """Validate every row and write a whole log atomically (replacing ``path``)."""
    path = Path(path)
    typed, errs = [], []
    for i, r in enumerate(rows, 1):
        try:
            typed.append(validate_row(r, i))
        except TrialLogError as e:
            errs.extend(e.errors)
    if errs:
        raise TrialLogError(errs)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, _serialise(typed, _fmt(path), header=True).encode("utf-8"))
    return path


# ----------------------------------------------------------------------------- paper counts
def trials_from_counts(counts: pd.DataFrame, notes: str | None = None) -> list[dict]:
    """Expand per-task counts (columns scene, task, instruction, policy, critic, K, beta,
    successes, trials) into one row per trial. The order of successes within a block is NOT
    known from published counts; here successes come first. Dates are unknown (blank)."""
    rows = []
    for r in counts.itertuples(index=False):
        k, n = int(r.successes), int(r.trials)
        note = notes if notes is not None else (
            f"synthesised from the published count {k}/{n}; trial order unknown")
        steered = str(r.critic) != NO_CRITIC
        for t in range(1, n + 1):
            rows.append(dict(date="", scene=r.scene, task=r.task, instruction=r.instruction,
                             policy=r.policy, critic=r.critic,
                             K=int(r.K) if steered else None,
                             beta=float(r.beta) if steered else None,
                             success=int(t <= k), trial=t, pair_id="", notes=note))
    return rows


# ----------------------------------------------------------------------------- statistics
def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (:func:`vgps.eval.stats.wilson`);
    ``(nan, nan)`` when n = 0."""
    from vgps.eval.stats import wilson
    return wilson(k, n, confidence) if n else (float("nan"), float("nan"))


def unpaired_tests(k_base: int, n_base: int, k_steer: int, n_steer: int) -> dict:
    """Two-sided Boschloo and Fisher exact tests for two independent binomial samples."""
    from scipy.stats import boschloo_exact, fisher_exact
    table = [[k_steer, k_base], [n_steer - k_steer, n_base - k_base]]
    return {"p_boschloo": float(boschloo_exact(table, alternative="two-sided").pvalue),
            "p_fisher": float(fisher_exact(table, alternative="two-sided").pvalue)}


def mcnemar_exact(base: np.ndarray, steer: np.ndarray) -> dict:
    """Exact McNemar test on paired binary outcomes (binomial test on discordant pairs)."""
    from scipy.stats import binomtest
    base, steer = np.asarray(base, int), np.asarray(steer, int)
    b = int(((steer == 1) & (base == 0)).sum())
    c = int(((steer == 0) & (base == 1)).sum())
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {"p_mcnemar": p, "discordant_steer_only": b, "discordant_base_only": c}


def stratified_exact_test(strata: list[tuple[int, int, int, int]]) -> float:
    """Two-sided exact stratified test. ``strata`` = [(k_base, n_base, k_steer, n_steer), ...].

    Conditional on each stratum's margins, the steered successes are hypergeometric under the
    null of no effect; the statistic is their sum (exact Cochran–Mantel–Haenszel). The p-value
    sums the probabilities of all totals no more likely than the observed one."""
    from scipy.stats import hypergeom
    dist = np.array([1.0])
    lo_total, obs = 0, 0
    for kb, nb, ks, ns in strata:
        m = kb + ks                           # successes in the stratum
        lo, hi = max(0, m - nb), min(m, ns)
        pmf = hypergeom.pmf(np.arange(lo, hi + 1), nb + ns, m, ns)
        dist = np.convolve(dist, pmf)
        lo_total += lo
        obs += ks
    p_obs = dist[obs - lo_total]
    return float(min(1.0, dist[dist <= p_obs * (1 + 1e-7)].sum()))


# ----------------------------------------------------------------------------- Table 1
def arm_label(policy: str, critic: str, K=None, beta=None) -> str:
    if critic == NO_CRITIC:
        return str(policy)
    b = float(beta)
    return f"{policy} + V-GPS ({critic}, K={int(K)}, beta={b:g})"


def with_arms(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["arm"] = [arm_label(p, c, k, b) for p, c, k, b in
                 zip(df["policy"], df["critic"], df["K"], df["beta"])]
    df["steered"] = df["critic"] != NO_CRITIC
    return df


def round_half_up(x: Fraction | float, places: int = 2) -> Decimal:
    """Round as printed tables do (0.225 -> 0.23), on the exact value."""
    x = Fraction(x)
    d = Decimal(x.numerator) / Decimal(x.denominator)
    return d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def format_improvement(frac: Fraction) -> str:
    """``+55.6%`` / ``+100%`` (one decimal, a trailing ``.0`` dropped, as in the paper)."""
    s = f"{round_half_up(frac * 100, 1):+}"
    return (s[:-2] if s.endswith(".0") else s) + "%"


@dataclass
class Table1:
    """The analysis of a trial log. ``tasks``: one row per task; ``groups``: scene averages and
    the total. Rates are floats; the exact fractions are kept in ``*_exact`` columns."""
    baseline: str
    steered: str
    tasks: pd.DataFrame
    groups: pd.DataFrame
    test: str

    def paper_style(self) -> pd.DataFrame:
        """The paper's layout: rates rounded half-up to 2 decimals, improvements on averages."""
        rows = []
        for scene, g in self.tasks.groupby("scene", sort=False):
            for r in g.itertuples(index=False):
                rows.append((f"Scene {scene}", r.task, str(round_half_up(r.base_exact)),
                             str(round_half_up(r.steer_exact)), ""))
            s = self.groups[self.groups["group"] == f"Scene {scene}"].iloc[0]
            rows.append((f"Scene {scene}", "Average", str(round_half_up(s.base_exact)),
                         str(round_half_up(s.steer_exact)), s.improvement))
        t = self.groups[self.groups["group"] == "Total"].iloc[0]
        rows.append(("Total", "Average", str(round_half_up(t.base_exact)),
                     str(round_half_up(t.steer_exact)), t.improvement))
        return pd.DataFrame(rows, columns=["Scene", "Task", "Base", "V-GPS", "Improvement"])

    def with_intervals(self, digits: int = 3) -> pd.DataFrame:
        """Per task, scene and total: counts, rates, Wilson 95 % intervals and p-values."""
        def ci(lo, hi):
            return f"[{lo:.2f}, {hi:.2f}]"
        rows = []
        for r in self.tasks.itertuples(index=False):
            rows.append({"group": f"Scene {r.scene}", "task": r.task,
                         "base": f"{r.base_k}/{r.base_n}", "base 95% CI": ci(r.base_lo, r.base_hi),
                         "V-GPS": f"{r.steer_k}/{r.steer_n}",
                         "V-GPS 95% CI": ci(r.steer_lo, r.steer_hi),
                         "test": r.test, "p": round(r.p, digits)})
        for r in self.groups.itertuples(index=False):
            rows.append({"group": r.group, "task": "(all)",
                         "base": f"{r.base_k}/{r.base_n}", "base 95% CI": ci(r.base_lo, r.base_hi),
                         "V-GPS": f"{r.steer_k}/{r.steer_n}",
                         "V-GPS 95% CI": ci(r.steer_lo, r.steer_hi),
                         "test": "exact stratified (CMH)", "p": round(r.p, digits)})
        return pd.DataFrame(rows)


def _paired(base: pd.DataFrame, steer: pd.DataFrame) -> bool:
    if (base["pair_id"] == "").any() or (steer["pair_id"] == "").any():
        return False
    return (base["pair_id"].is_unique and steer["pair_id"].is_unique
            and set(base["pair_id"]) == set(steer["pair_id"]))


def table1(df: pd.DataFrame, baseline: str | None = None, steered: str | None = None) -> Table1:
    """Regenerate Table 1 from a validated trial log (:func:`read_trials`).

    ``baseline`` / ``steered`` are arm labels (:func:`arm_label`); by default the log must hold
    exactly one unsteered and one steered arm. Scenes and tasks keep their log order. Scene and
    total averages are the unweighted means of per-task rates, as in the paper."""
    df = with_arms(df)
    arms = list(dict.fromkeys(df["arm"]))
    if baseline is None:
        cands = list(dict.fromkeys(df.loc[~df["steered"], "arm"]))
        if len(cands) != 1:
            raise ValueError(f"choose baseline= among the unsteered arms {cands}")
        baseline = cands[0]
    if steered is None:
        cands = list(dict.fromkeys(df.loc[df["steered"], "arm"]))
        if len(cands) != 1:
            raise ValueError(f"choose steered= among the steered arms {cands}")
        steered = cands[0]
    for a in (baseline, steered):
        if a not in arms:
            raise ValueError(f"arm {a!r} not in the log; arms: {arms}")

    rows, tests = [], set()
    for (scene, task), g in df.groupby(["scene", "task"], sort=False):
        b, s = g[g["arm"] == baseline], g[g["arm"] == steered]
        if b.empty or s.empty:
            raise ValueError(f"scene {scene!r}, task {task!r}: no trials for "
                             f"{'the baseline' if b.empty else 'the steered'} arm")
        kb, nb, ks, ns = int(b["success"].sum()), len(b), int(s["success"].sum()), len(s)
        if _paired(b, s):
            bs = b.set_index("pair_id")["success"]
            ss = s.set_index("pair_id")["success"].reindex(bs.index)
            res = mcnemar_exact(bs.to_numpy(), ss.to_numpy())
            test, p = "McNemar exact (paired)", res["p_mcnemar"]
            p_fisher = float("nan")
        else:
            res = unpaired_tests(kb, nb, ks, ns)
            test, p, p_fisher = "Boschloo exact", res["p_boschloo"], res["p_fisher"]
        tests.add(test)
        blo, bhi = wilson_interval(kb, nb)
        slo, shi = wilson_interval(ks, ns)
        rows.append(dict(scene=scene, task=task, base_k=kb, base_n=nb, steer_k=ks, steer_n=ns,
                         base_exact=Fraction(kb, nb), steer_exact=Fraction(ks, ns),
                         base_rate=kb / nb, steer_rate=ks / ns, base_lo=blo, base_hi=bhi,
                         steer_lo=slo, steer_hi=shi, test=test, p=p, p_fisher=p_fisher))
    tasks = pd.DataFrame(rows)

    groups = []
    for name, g in [(f"Scene {s}", g) for s, g in tasks.groupby("scene", sort=False)] + [("Total", tasks)]:
        base = sum(g["base_exact"], Fraction(0)) / len(g)
        steer = sum(g["steer_exact"], Fraction(0)) / len(g)
        kb, nb, ks, ns = (int(g[c].sum()) for c in ("base_k", "base_n", "steer_k", "steer_n"))
        blo, bhi = wilson_interval(kb, nb)
        slo, shi = wilson_interval(ks, ns)
        imp = steer / base - 1 if base > 0 else None
        groups.append(dict(group=name, base_k=kb, base_n=nb, steer_k=ks, steer_n=ns,
                           base_exact=base, steer_exact=steer, base_rate=float(base),
                           steer_rate=float(steer), base_lo=blo, base_hi=bhi, steer_lo=slo,
                           steer_hi=shi,
                           improvement_exact=imp,
                           improvement=format_improvement(imp) if imp is not None else "n/a",
                           p=stratified_exact_test(list(zip(g["base_k"], g["base_n"],
                                                            g["steer_k"], g["steer_n"])))))
    return Table1(baseline=baseline, steered=steered, tasks=tasks, groups=pd.DataFrame(groups),
                  test=" / ".join(sorted(tests)))


def table1_from_log(path: str | Path, **kw) -> Table1:
    return table1(read_trials(path), **kw)
