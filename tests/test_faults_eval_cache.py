"""Per-episode evaluation cache under faults (issue 15, item 1): SIGKILL mid-run, two writer
processes on one file, invalid rows in the store, a legacy CSV (refused: other random numbers)."""
import json
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from tests.test_eval_harness import ToyEnv, _agent
from vgps.eval.harness import (KEY_COLUMNS, RESULT_COLUMNS, CacheProtocolError, CacheRowWarning,
                               Evaluator, RunConfig, episode_seed)

REPO = Path(__file__).resolve().parents[1]
CFG = RunConfig("gauss")

# a writer process: Evaluator.run on a ToyEnv whose steps sleep, started when `go` exists
WRITER = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.test_eval_harness import ToyEnv, _agent
from vgps.eval.harness import Evaluator, RunConfig
a = json.loads(sys.argv[1])

class SlowToyEnv(ToyEnv):
    def step(self, act):
        time.sleep(a["delay"])
        return super().step(act)

ev = Evaluator(lambda t: SlowToyEnv(), _agent, a["path"], num_envs=2, verbose=False)
Path(a["ready"]).touch()
while not Path(a["go"]).exists():
    time.sleep(0.01)
ev.run(RunConfig("gauss"), a["tasks"], a["seeds"], episodes=2)
"""


def _writer(tmp_path, name, path, tasks, seeds, delay):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO)))
    args = dict(path=str(path), tasks=tasks, seeds=seeds, delay=delay,
                ready=str(tmp_path / f"ready-{name}"), go=str(tmp_path / "go"))
    return subprocess.Popen([sys.executable, str(script), json.dumps(args)], cwd=REPO)


def _wait(cond, procs, timeout=120.0):
    t0 = time.time()
    while not cond():
        assert all(p.poll() is None for p in procs), "a writer exited early"
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.02)


def _rows(db: Path) -> pd.DataFrame:
    """Every row of the store, read directly (no validation)."""
    with sqlite3.connect(db) as con:
        return pd.read_sql(f"SELECT * FROM episodes ORDER BY {', '.join(KEY_COLUMNS)}", con)


def _load(db: Path) -> pd.DataFrame:
    """The valid rows, as an Evaluator on ``db`` sees them."""
    return Evaluator(lambda t: ToyEnv(), _agent, db, num_envs=2, verbose=False).df


def _expected(row) -> tuple:
    """ToyEnv: even env seeds succeed at step 3, odd ones truncate at step 5."""
    ok = row["env_seed"] % 2 == 0
    return bool(ok), 3 if ok else 5


def _check_toy_rows(df, tasks, seeds, episodes=2):
    got = {(r["task"], r["seed"], r["episode"]) for _, r in df.iterrows()}
    assert got == {(t, s, e) for t in tasks for s in seeds for e in range(episodes)}
    assert len(df) == len(got)
    for _, r in df.iterrows():
        assert r["env_seed"] == episode_seed(r["seed"], r["episode"])
        assert (bool(r["success"]), int(r["steps"])) == _expected(r)


def test_sigkill_mid_run_loses_no_committed_row(tmp_path):
    db = tmp_path / "r.sqlite"
    seeds = list(range(40))                                    # 80 episodes, 40 batches of 2
    p = _writer(tmp_path, "a", db, ["t1"], seeds, delay=0.05)
    try:
        (tmp_path / "go").touch()
        _wait(lambda: db.exists() and len(_load(db)) >= 6, [p])
        committed = _load(db)
        p.send_signal(signal.SIGKILL)
        assert p.wait(timeout=30) == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    after = _rows(db)
    assert 6 <= len(committed) <= len(after) < 80              # killed mid-way
    assert len(after) % 2 == 0                                 # a batch is all or nothing
    merged = committed.merge(after, on=KEY_COLUMNS, how="left", suffixes=("", "_after"))
    for c in set(RESULT_COLUMNS) - set(KEY_COLUMNS):            # every committed row kept, as it was
        assert list(merged[c]) == list(merged[f"{c}_after"]), c
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheRowWarning)
        ev = Evaluator(lambda t: ToyEnv(), _agent, db, num_envs=2, verbose=False)
    assert len(ev.df) == len(after)
    _check_toy_rows(ev.df, ["t1"], sorted(set(ev.df["seed"])))
    df = ev.run(CFG, ["t1"], seeds, episodes=2)               # resumes: only the rest is computed
    _check_toy_rows(df, ["t1"], seeds)
    assert len(_rows(db)) == 80


def test_two_writer_processes_keep_the_union_of_their_rows(tmp_path):
    db = tmp_path / "shared.sqlite"
    tasks = ["t1", "t2"]
    procs = [_writer(tmp_path, "a", db, tasks, list(range(0, 11)), delay=0.01),
             _writer(tmp_path, "b", db, tasks, list(range(10, 21)), delay=0.01)]  # seed 10 in both
    try:
        _wait(lambda: all((tmp_path / f"ready-{n}").exists() for n in "ab"), procs)
        (tmp_path / "go").touch()
        assert [p.wait(timeout=180) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    _check_toy_rows(_load(db), tasks, range(21))               # 2 tasks x 21 seeds x 2 = 84
    _check_toy_rows(_rows(db), tasks, range(21))


def test_invalid_row_in_the_store_is_recomputed_and_named(tmp_path):
    db = tmp_path / "r.sqlite"
    made = []
    agent = lambda c: made.append(c) or _agent(c)              # noqa: E731
    ev = Evaluator(lambda t: ToyEnv(), agent, db, num_envs=4, verbose=False, horizon=5)
    first = ev.run(CFG, ["t1"], [0, 1], episodes=3)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE episodes SET success = 'Fa' WHERE seed = 0 AND episode = 1")
        con.execute("UPDATE episodes SET steps = 6 WHERE seed = 1 AND episode = 2")   # > horizon
    with pytest.warns(CacheRowWarning) as rec:
        ev2 = Evaluator(lambda t: ToyEnv(), agent, db, num_envs=4, verbose=False, horizon=5)
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 2
    assert "seed=0 episode=1" in msgs[0] and "success='Fa'" in msgs[0]
    assert "seed=1 episode=2" in msgs[1] and "steps=6 outside [1, 5]" in msgs[1]
    assert len(ev2.df) == 4                                    # the two bad rows are not used
    n = len(made)
    again = ev2.run(CFG, ["t1"], [0, 1], episodes=3)
    assert len(made) == n + 1                                  # recomputed
    pd.testing.assert_frame_equal(again.reset_index(drop=True), first.reset_index(drop=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheRowWarning)
        ev3 = Evaluator(lambda t: ToyEnv(), agent, db, num_envs=4, verbose=False, horizon=5)
    assert len(ev3.df) == 6 and list(ev3.df["success"]) == list(first["success"])
    assert list(ev3.df["steps"]) == list(first["steps"])


@pytest.mark.parametrize("given", [".csv", ".sqlite"])
def test_legacy_csv_is_refused_not_imported(tmp_path, given):
    """A legacy CSV cache (written before the per-episode RNG, issue 15 item 2: protocol 1) beside
    the store is refused, naming it; it is not imported, not modified, and no store is made."""
    first = Evaluator(lambda t: ToyEnv(), _agent, tmp_path / "fresh.sqlite", num_envs=4,
                      verbose=False).run(CFG, ["t1"], [0, 1], episodes=3)
    legacy = tmp_path / "abl-0123456789.csv"                   # written as the old cache wrote it
    first.sort_values(KEY_COLUMNS, kind="stable").to_csv(legacy, index=False, lineterminator="\n")
    text = legacy.read_text()
    legacy.write_text(text[:len(text) - 9])                    # cut mid-line, as by a SIGKILL
    before = legacy.read_bytes()
    with pytest.raises(CacheProtocolError, match=rf"legacy CSV cache {legacy}.* protocol 1 "):
        Evaluator(lambda t: ToyEnv(), _agent, legacy.with_suffix(given), num_envs=4, verbose=False)
    assert legacy.read_bytes() == before and not legacy.with_suffix(".sqlite").exists()
