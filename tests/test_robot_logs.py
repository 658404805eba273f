"""Trial-log schema, validation, safe appends, CLI, and exact reproduction of the paper's Table 1."""
from __future__ import annotations

import json
import os
from fractions import Fraction

import pandas as pd
import pytest

from vgps import robot_logs as rl
from vgps.cli import main as cli_main
from vgps.paper import load_paper_table
from vgps.paths import DATA

BASE = dict(date="2024-10-01", scene="A", task="Green pepper in pot",
            instruction="put the green pepper in the pot", policy="octo-small-1.5")


def steered(**kw):
    return {**BASE, "critic": "calql", "K": 50, "beta": 0, "success": 1, **kw}


def plain(**kw):
    return {**BASE, "critic": "none", "success": 0, **kw}


# ----------------------------------------------------------------------------- schema
def test_validate_row_types_values():
    r = rl.validate_row(steered(success="true", trial="3"))
    assert (r["K"], r["beta"], r["success"], r["trial"]) == (50, 0.0, 1, 3)
    r = rl.validate_row(plain(critic="None"))
    assert r["critic"] == "none" and r["K"] is None and r["beta"] is None


@pytest.mark.parametrize("fields, field, text", [
    (plain(success="yes"), "success", "expected 0 or 1"),
    (plain(scene=""), "scene", "required"),
    (plain(K=10), "K", "must be blank when critic is 'none'"),
    (steered(K=None), "K", "required when steering"),
    (steered(K=0), "K", "must be >= 1"),
    (steered(K="2.5"), "K", "expected an integer"),
    (steered(beta=-1), "beta", ">= 0"),
    (steered(date="01/10/2024"), "date", "YYYY-MM-DD"),
    (steered(notes="two\nlines"), "notes", "single line"),
])
def test_validation_names_row_and_field(fields, field, text):
    with pytest.raises(rl.TrialLogError) as e:
        rl.validate_row(fields, row_number=7)
    assert f"row 7, field '{field}'" in str(e.value) and text in str(e.value)


def test_unknown_field_rejected():
    with pytest.raises(rl.TrialLogError, match="unknown field"):
        rl.validate_row(plain(sucess=1))


def test_read_trials_reports_every_bad_row(tmp_path):
    p = tmp_path / "log.csv"
    rl.write_trials(p, [plain(), steered(), plain()])
    lines = p.read_text().splitlines()
    lines[1] = lines[1].replace(",none,,,0,", ",none,,,maybe,")
    lines[3] = lines[3].replace("octo-small-1.5,none,,,", "octo-small-1.5,none,5,,")
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(rl.TrialLogError) as e:
        rl.read_trials(p)
    msg = str(e.value)
    assert "2 problem(s)" in msg
    assert "row 1, field 'success'" in msg and "row 3, field 'K'" in msg


# ----------------------------------------------------------------------------- appending
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_append_roundtrip(tmp_path, suffix):
    p = tmp_path / f"session{suffix}"
    rl.append_trial(p, **plain(trial=1))
    rl.append_trial(p, **steered(trial=1, notes='comma, "quote"'))
    df = rl.read_trials(p)
    assert len(df) == 2 and list(df["success"]) == [0, 1]
    assert df.loc[1, "notes"] == 'comma, "quote"' and df.loc[1, "K"] == 50
    if suffix == ".csv":
        assert p.read_text().splitlines()[0] == ",".join(rl.FIELDS)
    else:
        assert json.loads(p.read_text().splitlines()[0])["critic"] == "none"


def test_bad_append_loses_nothing(tmp_path):
    p = tmp_path / "session.csv"
    for i in range(3):
        rl.append_trial(p, **plain(trial=i + 1))
    before = p.read_bytes()
    with pytest.raises(rl.TrialLogError):
        rl.append_trial(p, **steered(K=None))
    assert p.read_bytes() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["session.csv", "session.csv.lock"]


def test_crash_during_write_loses_nothing(tmp_path, monkeypatch):
    p = tmp_path / "session.csv"
    rl.append_trial(p, **plain())
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        rl.append_trial(p, **plain())
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert not [f for f in tmp_path.iterdir() if f.suffix == ".tmp"]


def test_append_keeps_existing_bytes_and_fixes_missing_newline(tmp_path):
    p = tmp_path / "session.csv"
    rl.append_trial(p, **plain())
    p.write_bytes(p.read_bytes().rstrip(b"\n"))
    old = p.read_bytes()
    rl.append_trial(p, **steered())
    assert p.read_bytes().startswith(old + b"\n")
    assert len(rl.read_trials(p)) == 2


def test_append_refuses_foreign_file(tmp_path):
    p = tmp_path / "other.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(rl.TrialLogError, match="header does not match"):
        rl.append_trial(p, **plain())
    assert p.read_text() == "a,b\n1,2\n"


def test_cli_log_trial(tmp_path, capsys):
    p = tmp_path / "s.csv"
    args = ["log-trial", "--log", str(p), "--scene", "B", "--task", "Mushroom in pot",
            "--instruction", "put the mushroom in the pot", "--policy", "octo-small-1.5"]
    assert cli_main(args + ["--success", "1", "--date", "2024-10-02"]) == 0
    assert cli_main(args + ["--critic", "calql", "--K", "50", "--beta", "0", "--success", "0"]) == 0
    before = p.read_bytes()
    assert cli_main(args + ["--critic", "calql", "--success", "1"]) == 2
    err = capsys.readouterr().err
    assert "field 'K'" in err and "field 'beta'" in err
    assert p.read_bytes() == before
    df = rl.read_trials(p)
    assert list(df["critic"]) == ["none", "calql"] and df.loc[1, "date"]  # default date = today
    assert cli_main(["check-log", str(p)]) == 0


# ----------------------------------------------------------------------------- statistics
def test_wilson_interval_known_values():
    lo, hi = rl.wilson_interval(10, 20)
    assert lo == pytest.approx(0.2993, abs=1e-4) and hi == pytest.approx(0.7007, abs=1e-4)
    lo, hi = rl.wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)


def test_stratified_test_with_one_stratum_is_fisher():
    from scipy.stats import fisher_exact
    p = rl.stratified_exact_test([(7, 20, 14, 20)])
    assert p == pytest.approx(fisher_exact([[14, 7], [6, 13]]).pvalue, rel=1e-9)


def test_mcnemar_used_for_paired_logs(tmp_path):
    rows = []
    for i, (b, s) in enumerate([(0, 1)] * 6 + [(1, 1)] * 4 + [(0, 0)] * 10):
        rows.append(plain(success=b, pair_id=f"cfg{i}"))
        rows.append(steered(success=s, pair_id=f"cfg{i}"))
    t = rl.table1(pd.DataFrame(rl.read_trials(rl.write_trials(tmp_path / "p.csv", rows))))
    r = t.tasks.iloc[0]
    assert r.test == "McNemar exact (paired)"
    assert r.p == pytest.approx(2 * 0.5 ** 6)  # 6 discordant pairs, all favouring steering


# ----------------------------------------------------------------------------- Table 1
def test_table1_reproduces_the_paper_exactly():
    t = rl.table1_from_log(DATA / "real_robot_trials_paper_table1.csv")
    table = t.paper_style()
    counts = load_paper_table(1)
    published = load_paper_table("1_summary")
    # per task
    per_task = table[table["Task"] != "Average"]
    base = counts[counts["critic"] == "none"]
    steer = counts[counts["critic"] != "none"]
    assert list(per_task["Base"]) == [f"{x:.2f}" for x in base["success_rate"]]
    assert list(per_task["V-GPS"]) == [f"{x:.2f}" for x in steer["success_rate"]]
    # averages and improvements, as printed
    avg = table[table["Task"] == "Average"]
    assert list(avg["Base"]) == ["0.23", "0.33", "0.18", "0.24"]
    assert list(avg["V-GPS"]) == ["0.35", "0.63", "0.35", "0.44"]
    assert list(avg["Improvement"]) == ["+55.6%", "+92.3%", "+100%", "+82.8%"]
    assert list(avg["Base"]) == [f"{x:.2f}" for x in published["base_rate"]]
    assert list(avg["Improvement"]) == list(published["improvement"])
    # the improvements come from the unrounded averages, not the printed ones
    g = t.groups.set_index("group")
    assert g.loc["Total", "improvement_exact"] == Fraction(53, 29) - 1
    from_rounded = [0.35 / 0.23 - 1, 0.63 / 0.33 - 1, 0.35 / 0.18 - 1, 0.44 / 0.24 - 1]
    assert [f"{100 * x:+.1f}%" for x in from_rounded] == ["+52.2%", "+90.9%", "+94.4%", "+83.3%"]


def test_shipped_trial_log_is_the_expansion_of_the_counts(tmp_path):
    rows = rl.trials_from_counts(load_paper_table(1))
    p = rl.write_trials(tmp_path / "t.csv", rows)
    assert p.read_bytes() == (DATA / "real_robot_trials_paper_table1.csv").read_bytes()
    df = rl.read_trials(p)
    assert len(df) == 240 and df["notes"].str.contains("synthesised").all()


def test_table1_requires_unambiguous_arms(tmp_path):
    rows = [plain(), steered(), steered(K=10)]
    df = rl.read_trials(rl.write_trials(tmp_path / "t.csv", rows))
    with pytest.raises(ValueError, match="choose steered="):
        rl.table1(df)
    t = rl.table1(df, steered=rl.arm_label("octo-small-1.5", "calql", 10, 0))
    assert t.tasks.iloc[0].steer_n == 1


def test_round_half_up():
    assert str(rl.round_half_up(Fraction(7, 40))) == "0.18"   # round(0.175, 2) == 0.17
    assert str(rl.round_half_up(Fraction(5, 8))) == "0.63"    # round(0.625, 2) == 0.62
    assert rl.format_improvement(Fraction(1)) == "+100%"


# ----------------------------------------------------------------------------- paper tables
@pytest.mark.parametrize("n", [1, 7, 8, 9, 10, 11, 12, 13])
def test_paper_tables_load_with_source(n):
    df = load_paper_table(n)
    assert len(df) > 0 and (df["source"] == f"V-GPS paper, Table {n}").all()


def test_paper_table_consistency():
    t7 = load_paper_table(7)
    means = t7[t7["task"] != "Average"].groupby("method")["success_rate"].mean()
    avg = t7[t7["task"] == "Average"].set_index("method")["success_rate"]
    assert ((means - avg).abs() <= 0.0126).all()   # the paper averages unrounded rates
    t9 = load_paper_table(9)
    assert ((t9["inference_time_s"] / t9["inference_time_s"].iloc[0]).round(2)
            == t9["overhead"]).all()
    t1 = load_paper_table(1)
    assert (t1["successes"] / t1["trials"] == t1["success_rate"]).all()
    with pytest.raises(FileNotFoundError, match="available"):
        load_paper_table(99)
