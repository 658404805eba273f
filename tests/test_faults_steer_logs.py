"""Hostile inputs to steering and the trial logs (issue 15, item 7): every chunk action checked,
instructions as a bare str, bool K, numpy beta, U+2028 in JSONL logs, CSV formula injection."""
from __future__ import annotations

import csv
import io
import json

import jax
import numpy as np
import pytest

from tests._steer_fakes import GaussPolicy, HashEncoder, QuadraticCritic, keys
from tests.test_robot_logs import plain, steered
from tests.test_steer import B, _obs, _vgp
from vgps import robot_logs as rl
from vgps.policies.base import PolicyOutputError
from vgps.steer import ValueGuidedPolicy


# ----------------------------------------------------------------------------- 1. action chunks
class Chunky(GaussPolicy):
    """Chunks of 4 steps built from sample_actions; ``bad=(b, k, h, d, value)`` plants a value."""

    def __init__(self, bad=None, shape=None):
        super().__init__(name="chunky")
        self.bad, self.shape = bad, shape

    def sample_chunks(self, obs, instr, k, rng):
        a = self.sample_actions(obs, instr, k, rng)
        c = np.stack([a + 0.001 * h for h in range(4)], axis=2)
        if self.bad is not None:
            b, j, h, d, value = self.bad
            c[b, j, h, d] = value
        return c if self.shape is None else c[..., :self.shape]


def _chunked(policy):
    return ValueGuidedPolicy(policy, QuadraticCritic(), K=5, beta=0.0,
                             language_encoder=HashEncoder(), exec_horizon=4)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_inside_a_chunk_is_rejected(value):
    v = _chunked(Chunky(bad=(1, 2, 3, 4, value)))
    with pytest.raises(PolicyOutputError) as e:
        v.act(_obs(), ["x"] * B, keys(0, B))
    assert str(e.value) == ("chunky.sample_chunks returned 1 non-finite values (NaN/Inf), "
                            "first at batch 1, sample 2, step 3, dim 4")
    assert isinstance(e.value, ValueError)


def test_nan_in_a_later_step_never_reaches_act_output():
    # every row / sample poisoned at step 1, so whichever chunk is chosen the 2nd act would emit it
    class Poisoned(Chunky):
        def sample_chunks(self, obs, instr, k, rng):
            c = super().sample_chunks(obs, instr, k, rng)
            c[:, :, 1, 0] = np.nan
            return c
    v = _chunked(Poisoned())
    with pytest.raises(PolicyOutputError, match=r"returned 15 non-finite values .* batch 0, sample 0, "
                                                r"step 1, dim 0$"):
        v.act(_obs(), ["x"] * B, keys(0, B))


def test_chunk_shape_is_checked():
    v = _chunked(Chunky(shape=6))
    with pytest.raises(PolicyOutputError) as e:
        v.act(_obs(), ["x"] * B, keys(0, B))
    assert str(e.value) == ("chunky.sample_chunks returned shape (3, 5, 4, 6), expected "
                            "[B, K, H, 7] with B=3, K=5, H >= 1")


def test_finite_chunks_still_execute_open_loop():
    v = _chunked(Chunky())
    a0, i0 = v.act(_obs(), ["x"] * B, keys(0, B))
    a3, i3 = [v.act(_obs(), ["x"] * B, keys(t, B)) for t in (1, 2, 3)][-1]
    assert i0["replanned"] and not i3["replanned"]
    np.testing.assert_allclose(a3 - a0, 0.003, atol=1e-6)


# ----------------------------------------------------------------------------- 2. instructions
@pytest.mark.parametrize("mode", ["vgps", "policy", "random_select", "random_policy"])
def test_instructions_as_one_string_is_rejected(mode):
    v = _vgp(mode=mode, K=4)
    with pytest.raises(TypeError) as e:
        v.act(_obs(2), "xy", keys(0, 2))
    assert str(e.value) == ("instructions must be a list of strings, one per environment, got the "
                            "str 'xy'; for one environment pass ['xy']")


def test_score_and_embed_reject_a_string():
    v = _vgp(K=4)
    cand = GaussPolicy().sample_actions(_obs(), None, 4, keys(0, B))
    with pytest.raises(TypeError, match="got the str 'abc'"):
        v.score(_obs(), "abc", cand)
    with pytest.raises(TypeError, match="got the str 'abc'"):
        v.embed("abc")
    assert v.embed(["abc"]).shape == (1, 512)                   # a list of one is fine


# ----------------------------------------------------------------------------- 3. K
@pytest.mark.parametrize("k", [True, False, np.True_])
def test_bool_K_is_rejected(k):
    with pytest.raises(ValueError) as e:
        _vgp(K=k)
    assert str(e.value) == f"number of samples K must be an integer >= 1, got {k!r}"


@pytest.mark.parametrize("k", [2.0, "3", None])
def test_non_integer_K_is_rejected(k):
    with pytest.raises(ValueError) as e:
        _vgp(K=k)
    assert str(e.value) == f"number of samples K must be an integer >= 1, got {k!r}"


@pytest.mark.parametrize("k", [3, np.int64(3), np.uint8(3)])
def test_integer_K_accepted(k):
    v = _vgp(K=k)
    assert v.K == 3 and type(v.K) is int
    assert v.act(_obs(), ["x"] * B, keys(0, B))[1]["candidates"].shape == (B, 3, 7)


# ----------------------------------------------------------------------------- 4. beta
@pytest.mark.parametrize("beta, want", [
    (np.float64(1.0), 1.0), (np.array(1.0), 1.0), (np.float32(0.5), 0.5), (np.array(0), 0.0),
    (np.int64(2), 2.0), (2, 2.0), (0.25, 0.25), (jax.numpy.float32(0.5), 0.5),
])
def test_real_scalar_beta_accepted(beta, want):
    v = _vgp(beta=beta)
    assert v.beta == want and type(v.beta) is float
    v.act(_obs(), ["x"] * B, keys(0, B))


@pytest.mark.parametrize("beta", [-0.1, np.array(-1.0), np.float32(-2), float("nan"),
                                  np.array(np.nan), float("inf")])
def test_negative_or_non_finite_beta_rejected(beta):
    with pytest.raises(ValueError) as e:
        _vgp(beta=beta)
    assert str(e.value) == ("temperature beta must be a finite number >= 0 (0 = greedy), "
                            f"got {beta!r}")


@pytest.mark.parametrize("beta, type_name", [
    (True, "bool"), (np.True_, "bool"), (np.array(True), "ndarray"), ([1.0], "list"),
    (np.array([1.0]), "ndarray"), ("1.0", "str"), (None, "NoneType"), (1 + 0j, "complex"),
])
def test_non_real_or_non_scalar_beta_rejected(beta, type_name):
    with pytest.raises(ValueError) as e:
        _vgp(beta=beta)
    assert str(e.value) == ("temperature beta must be one real number (a python or numpy scalar "
                            f"or a 0-d array), got {beta!r} of type {type_name}")


# ----------------------------------------------------------------------------- 5. U+2028 in JSONL
def test_jsonl_line_separators_survive_append_and_read(tmp_path):
    p = tmp_path / "session.jsonl"
    note = "left\u2028right\u2029end\x85!"
    rl.append_trial(p, **plain(notes=note, instruction="put \u2028 it"))
    rl.append_trial(p, **steered(notes="second"))
    text = p.read_text(encoding="utf-8")
    assert text.count("\n") == 2 and text.endswith("\n")
    assert "\u2028" not in text and "\u2029" not in text and "\x85" not in text  # escaped
    assert len(text.splitlines()) == 2                  # even str.splitlines sees two records
    assert json.loads(text.split("\n")[0])["notes"] == note
    df = rl.read_trials(p)
    assert list(df["notes"]) == [note, "second"]
    assert df.loc[0, "instruction"] == "put \u2028 it" and list(df["success"]) == [0, 1]


def test_jsonl_with_raw_line_separator_is_still_readable(tmp_path):
    # a log written before the fix holds the raw character inside a JSON string
    p = tmp_path / "old.jsonl"
    row = rl._to_disk(rl.validate_row(plain(notes="a\u2028b")))
    p.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    assert "\u2028" in p.read_text(encoding="utf-8")
    rl.append_trial(p, **plain(notes="c"))
    assert list(rl.read_trials(p)["notes"]) == ["a\u2028b", "c"]


def test_csv_line_separator_roundtrip(tmp_path):
    p = tmp_path / "session.csv"
    rl.append_trial(p, **plain(notes="a\u2028b"))
    rl.append_trial(p, **plain(notes="c"))
    assert list(rl.read_trials(p)["notes"]) == ["a\u2028b", "c"]


# ----------------------------------------------------------------------------- 6. CSV injection
HOSTILE = dict(task="=HYPERLINK(\"http://x\",\"y\")", instruction="+1+1", pair_id="@SUM(A1)",
               notes="-2+3")


def _cells(p):
    return list(csv.DictReader(io.StringIO(p.read_text(encoding="utf-8"))))


def test_csv_formula_cells_are_neutralised_and_read_back_exact(tmp_path):
    p = tmp_path / "session.csv"
    rl.append_trial(p, **steered(beta=-0.0, **HOSTILE))
    rl.write_trials(tmp_path / "whole.csv", [steered(beta=-0.0, **HOSTILE)])
    for f in (p, tmp_path / "whole.csv"):
        (cells,) = _cells(f)
        assert {k: cells[k] for k in HOSTILE} == {k: "'" + v for k, v in HOSTILE.items()}
        assert (cells["K"], cells["beta"], cells["scene"]) == ("50", "-0", "A")  # numbers as is
        df = rl.read_trials(f)
        assert {k: df.loc[0, k] for k in HOSTILE} == HOSTILE
        assert df.loc[0, "beta"] == 0.0 and df.loc[0, "K"] == 50


def test_jsonl_keeps_formula_text_exact(tmp_path):
    p = tmp_path / "session.jsonl"
    rl.append_trial(p, **steered(**HOSTILE))
    row = json.loads(p.read_text(encoding="utf-8"))
    assert {k: row[k] for k in HOSTILE} == HOSTILE
    assert {k: rl.read_trials(p).loc[0, k] for k in HOSTILE} == HOSTILE


@pytest.mark.parametrize("notes, on_disk", [
    ("'=1", "''=1"),            # a leading quote before a formula survives the round trip
    ("''-1", "'''-1"),
    ("'plain", "'plain"),       # a leading quote before harmless text is left alone
    ("it's -1", "it's -1"),
    ("", ""),
])
def test_csv_escaping_is_lossless(tmp_path, notes, on_disk):
    p = tmp_path / "session.csv"
    rl.append_trial(p, **plain(notes=notes))
    assert _cells(p)[0]["notes"] == on_disk
    assert rl.read_trials(p).loc[0, "notes"] == notes


@pytest.mark.parametrize("cell", ["=x", "+x", "-x", "@x", "\tx", "\rx", "'=x"])
def test_csv_cell_rule_covers_the_owasp_characters(cell):
    assert rl.csv_cell(cell) == "'" + cell
    assert rl.csv_uncell("'" + cell) == cell


def test_tables_written_for_spreadsheets_neutralise_formula_text(tmp_path):
    """save_table: a hostile task name from a robot log cannot run in a spreadsheet opening the
    CSV; numbers (negative ones included) and the markdown table are written as before."""
    import pandas as pd
    from vgps.plotting import save_table
    df = pd.DataFrame({"Task": ["=HYPERLINK(\"http://x\")", "carrot", "-cmd|' /C calc'!A0"],
                       "Rate": [0.5, -0.25, 1.0], "+Improvement": ["+55.6%", "", "@SUM(A1)"]})
    csv, md = save_table(df, tmp_path, "t")
    assert csv.read_text().splitlines() == [
        "Task,Rate,'+Improvement", "\"'=HYPERLINK(\"\"http://x\"\")\",0.5,'+55.6%",
        "carrot,-0.25,", "'-cmd|' /C calc'!A0,1,'@SUM(A1)"]
    assert "| =HYPERLINK(\"http://x\") | 0.500 | +55.6% |" in md.read_text()
    back = pd.read_csv(csv, keep_default_na=False).map(
        lambda v: rl.csv_uncell(v) if isinstance(v, str) else v)
    assert back["Task"].tolist() == df["Task"].tolist()
