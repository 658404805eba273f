"""Training faults (issue 15, item 4): resuming with another config, non-finite parameters in a
checkpoint, non-atomic / cut metrics logs, a damaged newest checkpoint, a fresh run in a directory
of an earlier run; item 8: the normalizer comes from the data, diagnostics label as training does."""
import builtins
import dataclasses
import importlib
import io
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from vgps.agents import NonFiniteLossError, StepSampler, train
from vgps.agents.checkpoint import CheckpointError, list_checkpoints
from vgps.agents.synthetic import random_transitions
from vgps.config import CriticConfig
from vgps.data.normalize import ActionNormalizer

train_mod = importlib.import_module("vgps.agents.train")   # the module (vgps.agents.train is the function)

# behaviour steps 1-4, critic steps 5-16; rows at 4, 8, 12, 16; checkpoints at 4 and every 5
TINY = CriticConfig(hidden_dims=(32, 32), encoder_dims=(32,), behavior_hidden_dims=(32,),
                    batch_size=16, num_steps=12, behavior_steps=4, log_every=4,
                    checkpoint_every=5, cql_n_actions=2)
DATA = random_transitions(400, state_dim=6, language_dim=512)


def _sampler():
    return StepSampler(DATA, 16, seed=3)


def _leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def _assert_same_run(a, b):
    for x, y in zip(_leaves(a.state), _leaves(b.state), strict=True):
        np.testing.assert_array_equal(x, y)
    assert [r["step"] for r in a.metrics] == [r["step"] for r in b.metrics] == [4, 8, 12, 16]


def _ckpt_names(run_dir):
    return [p.name for p in list_checkpoints(run_dir)]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    return train(TINY, _sampler(), tmp_path_factory.mktemp("full"), progress=False)


# ------------------------------------------------------------------ 1. resume with another config
def test_resume_with_other_config_is_refused_naming_fields_and_meta_untouched(full_run, tmp_path):
    train(TINY, _sampler(), tmp_path, stop_after=7, progress=False)
    meta_before = (tmp_path / "meta.json").read_bytes()
    other = dataclasses.replace(TINY, num_steps=20, lr=1e-3)
    with pytest.raises(ValueError) as ei:
        train(other, _sampler(), tmp_path, progress=False)
    msg = str(ei.value)
    assert "num_steps: 12 (on disk) vs 20 (requested)" in msg
    assert "lr: 0.0003 (on disk) vs 0.001 (requested)" in msg
    assert str(tmp_path) in msg and "batch_size" not in msg and "seed" not in msg
    assert (tmp_path / "meta.json").read_bytes() == meta_before
    assert _ckpt_names(tmp_path) == ["step_00000005.msgpack", "step_00000007.msgpack"]
    # the refused call changed nothing: resuming with the run's own config is still exact
    _assert_same_run(full_run, train(TINY, _sampler(), tmp_path, progress=False))


def test_resume_with_other_normalizer_is_refused(tmp_path):
    half = ActionNormalizer(np.zeros(7), np.full(7, 2.0), np.ones(7, bool))
    train(TINY, _sampler(), tmp_path, stop_after=4, progress=False)
    with pytest.raises(ValueError, match=r"normalizer: null \(on disk\) vs \{\"kind\": \"action\", "
                                         r"\"mask\": \[true, .*\"std\": \[2\.0, .*\(requested\)"):
        train(TINY, _sampler(), tmp_path, normalizer=half, progress=False)
    assert json.loads((tmp_path / "meta.json").read_text())["normalizer"] is None


# ------------------------------------------------------------------ 2. non-finite parameters
POISONED = "critic/params/params/heads/mlp/out/bias"


def _name(path):
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _poisoning_make_agent(at_step):
    """make_agent whose critic update sets POISONED to NaN in the state it returns at step
    ``at_step``; the loss it reports is computed before the update, so it stays finite."""
    real = train_mod.make_agent

    def make(cfg):
        agent = real(cfg)

        def wrap(update):
            def poisoned(state, batch):
                new, m = update(state, batch)
                bad = new["step"] == at_step
                new = jax.tree_util.tree_map_with_path(
                    lambda p, x: jnp.where(bad, jnp.nan, x) if _name(p) == POISONED
                    else x, new)
                return new, m
            return poisoned

        phases = tuple(dataclasses.replace(ph, update=wrap(ph.update)) if ph.name == "critic"
                       else ph for ph in agent.phases)
        return dataclasses.replace(agent, phases=phases)
    return make


def test_non_finite_parameters_are_never_checkpointed(tmp_path, monkeypatch):
    monkeypatch.setattr(train_mod, "make_agent", _poisoning_make_agent(5))
    with pytest.raises(NonFiniteLossError) as ei:
        train(TINY, _sampler(), tmp_path, progress=False)
    msg = str(ei.value)
    assert msg.startswith(f"non-finite parameters at step 5 (phase 'critic'): {POISONED};")
    assert "checkpoint step_00000005.msgpack not written" in msg
    assert msg.endswith(f"last finite checkpoint: {tmp_path / 'checkpoints' / 'step_00000004.msgpack'}")
    assert _ckpt_names(tmp_path) == ["step_00000004.msgpack"]
    for p in list_checkpoints(tmp_path):
        raw = serialization.msgpack_restore(p.read_bytes())
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(raw)
                   if np.issubdtype(np.asarray(x).dtype, np.inexact))
    assert not (tmp_path / "critic.msgpack").exists()


# ------------------------------------------------------------------ 3. metrics logs
class _Killed(BaseException):
    """A kill in the middle of a write."""


@pytest.mark.parametrize("target", ["metrics.jsonl", "metrics_behavior.csv"])
def test_kill_while_writing_metrics_leaves_previous_file_whole(full_run, tmp_path, monkeypatch,
                                                               target):
    """The second write of ``target`` (at step 8) is cut after half its bytes and the process
    "dies": the file on disk must still be the complete earlier version."""
    real_open, seen, before = builtins.open, [], {}

    class Cut:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.close()
            raise _Killed

    def fake_open(file, mode="r", *args, **kwargs):
        name = Path(file).name if isinstance(file, (str, Path)) else ""
        if set(mode) & set("wax+") and name in (target, target + ".tmp"):
            seen.append(name)
            if len(seen) == 2:
                before["bytes"] = (tmp_path / target).read_bytes()
                return Cut(real_open(file, mode, *args, **kwargs))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    with pytest.raises(_Killed):
        train(TINY, _sampler(), tmp_path, progress=False)
    monkeypatch.undo()
    assert (tmp_path / target).read_bytes() == before["bytes"]
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == ([4] if target == "metrics.jsonl" else [4, 8])
    _assert_same_run(full_run, train(TINY, _sampler(), tmp_path, progress=False))


def test_resume_drops_a_cut_last_metrics_line_with_warning(full_run, tmp_path):
    # a kill while the step-8 row was written by a non-atomic writer, before checkpoint 8
    train(TINY, _sampler(), tmp_path, stop_after=8, progress=False)
    (tmp_path / "checkpoints" / "step_00000008.msgpack").unlink()
    log = tmp_path / "metrics.jsonl"
    text = log.read_text()
    assert text.count("\n") == 2
    log.write_text(text[:text.index("\n") + 1 + 30])          # row 4 whole, row 8 cut
    with pytest.warns(RuntimeWarning, match=re.escape(f"{log}: dropping truncated last line 2")):
        resumed = train(TINY, _sampler(), tmp_path, progress=False)
    _assert_same_run(full_run, resumed)
    assert [json.loads(l)["step"] for l in log.read_text().splitlines()] == [4, 8, 12, 16]


def test_resume_refuses_a_bad_metrics_line_before_the_last(tmp_path):
    train(TINY, _sampler(), tmp_path, stop_after=8, progress=False)
    log = tmp_path / "metrics.jsonl"
    first, second = log.read_text().splitlines()
    log.write_text(first[:20] + "\n" + second + "\n")
    with pytest.raises(CheckpointError, match=re.escape(f"{log} line 1 is not valid JSON")):
        train(TINY, _sampler(), tmp_path, progress=False)


def test_read_metrics_drops_a_cut_last_line_with_warning(tmp_path):
    """An old metrics.jsonl (written before writes were atomic) whose last line was cut:
    read_metrics (runs.train_cached's reader) returns the whole rows and warns, not crashing."""
    from vgps.agents.train import read_metrics as load_metrics
    train(TINY, _sampler(), tmp_path, stop_after=8, progress=False)
    log = tmp_path / "metrics.jsonl"
    text = log.read_text()
    log.write_text(text[:text.index("\n") + 1 + 30])          # row 4 whole, row 8 cut
    with pytest.warns(RuntimeWarning, match=re.escape(f"{log}: dropping truncated last line 2")):
        rows = load_metrics(tmp_path)
    assert [r["step"] for r in rows] == [4]
    first, second = text.splitlines()
    log.write_text(first[:20] + "\n" + second + "\n")          # damage before the last line
    with pytest.raises(CheckpointError, match=re.escape(f"{log} line 1 is not valid JSON")):
        load_metrics(tmp_path)
    assert load_metrics(tmp_path / "nothing_here") == []


# ------------------------------------------------------------------ 3b. resume=False, stale files
def test_fresh_run_refuses_a_directory_with_an_earlier_longer_run(tmp_path):
    """resume=False in a run dir holding a longer earlier run: its higher-step checkpoints would
    outlive the new run's in the rotation (and a later resume would pick them up), its
    critic.msgpack would be loaded with the new meta.json. Refused, naming what to delete;
    nothing is touched."""
    longer = dataclasses.replace(TINY, num_steps=20)
    train(longer, _sampler(), tmp_path, progress=False)
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert _ckpt_names(tmp_path) == ["step_00000020.msgpack", "step_00000024.msgpack"]
    with pytest.raises(ValueError) as ei:
        train(TINY, _sampler(), tmp_path, resume=False, progress=False)
    msg = str(ei.value)
    assert msg.startswith(f"{tmp_path} holds files of an earlier run (checkpoints/step_00000020"
                          ".msgpack, checkpoints/step_00000024.msgpack, critic.msgpack, "
                          "metrics.jsonl, metrics_behavior.csv, metrics_critic.csv); "
                          "resume=False would mix them with the new run's")
    assert f"delete {tmp_path / 'checkpoints'}, {tmp_path / 'critic.msgpack'}" in msg
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before                                    # meta.json included
    # after deleting what the message names, a fresh run is the same as one in a new directory
    import shutil
    shutil.rmtree(tmp_path / "checkpoints")
    for p in [tmp_path / "critic.msgpack", *tmp_path.glob("metrics*")]:
        p.unlink()
    fresh = train(TINY, _sampler(), tmp_path, resume=False, progress=False)
    _assert_same_run(train(TINY, _sampler(), tmp_path / "new", progress=False), fresh)
    assert _ckpt_names(tmp_path) == ["step_00000015.msgpack", "step_00000016.msgpack"]


def test_fresh_run_in_an_empty_or_meta_only_directory_is_allowed(full_run, tmp_path):
    train(TINY, _sampler(), tmp_path / "empty", resume=False, progress=False)
    (tmp_path / "meta_only").mkdir()
    (tmp_path / "meta_only" / "meta.json").write_text((full_run.run_dir / "meta.json").read_text())
    _assert_same_run(full_run, train(TINY, _sampler(), tmp_path / "meta_only", resume=False,
                                     progress=False))


# ------------------------------------------------------------------ 4. damaged newest checkpoint
def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def test_truncated_newest_checkpoint_falls_back_to_newest_intact(full_run, tmp_path):
    train(TINY, _sampler(), tmp_path, stop_after=7, progress=False)
    d = tmp_path / "checkpoints"
    _truncate(d / "step_00000007.msgpack")
    with pytest.warns(RuntimeWarning) as rec:
        resumed = train(TINY, _sampler(), tmp_path, progress=False)
    msgs = [str(w.message) for w in rec if "damaged checkpoint" in str(w.message)]
    assert len(msgs) == 1
    assert msgs[0].startswith(f"damaged checkpoint {d / 'step_00000007.msgpack'} (corrupt")
    assert msgs[0].endswith(f"resuming from {d / 'step_00000005.msgpack'}")
    _assert_same_run(full_run, resumed)


def test_all_checkpoints_damaged_is_an_error_naming_each(tmp_path):
    train(TINY, _sampler(), tmp_path, stop_after=7, progress=False)
    d = tmp_path / "checkpoints"
    for p in list_checkpoints(tmp_path):
        _truncate(p)
    with pytest.raises(CheckpointError, match="no intact checkpoint to resume from") as ei:
        train(TINY, _sampler(), tmp_path, progress=False)
    assert str(d / "step_00000007.msgpack") in str(ei.value)
    assert str(d / "step_00000005.msgpack") in str(ei.value)


# ------------------------------------------------------------------ item 8: normalizer from data
TWO = dataclasses.replace(TINY, num_steps=1, behavior_steps=1, log_every=1, checkpoint_every=1)
HALF = ActionNormalizer(np.zeros(7), np.full(7, 2.0), np.ones(7, bool))


class _Data:
    """A data object like TrainingData: batches plus the normalizers they were made with."""
    def __init__(self, normalizer, state_normalizer=None):
        self._s = StepSampler(DATA, 16, seed=3)
        self.normalizer, self.state_normalizer = normalizer, state_normalizer

    def sample(self, step):
        return self._s.sample(step)


def test_train_saves_the_datas_normalizer_without_being_told(tmp_path):
    """Omitting normalizer= used to save none, so scoring used raw actions silently."""
    from vgps.agents import load_critic
    from vgps.data.normalize import StateNormalizer
    snorm = StateNormalizer(np.ones(6), np.full(6, 3.0))
    train(TWO, _Data(HALF, snorm), tmp_path / "a", progress=False)
    c = load_critic(tmp_path / "a")
    assert c.normalizer == HALF and c.state_normalizer == snorm
    train(TWO, StepSampler(DATA, 16, normalizer=HALF), tmp_path / "b", progress=False)
    assert load_critic(tmp_path / "b").normalizer == HALF
    # an explicit normalizer equal to the data's is accepted (older callers pass it)
    train(TWO, _Data(HALF), tmp_path / "c", normalizer=ActionNormalizer(HALF.mean, HALF.std,
                                                                       HALF.mask), progress=False)
    assert load_critic(tmp_path / "c").normalizer == HALF


def test_train_refuses_a_normalizer_that_disagrees_with_the_data(tmp_path):
    other = ActionNormalizer(np.full(7, 0.5), np.ones(7))
    with pytest.raises(ValueError, match=r"normalizer= \(ActionNormalizer\(dim=7, normalized=6\), "
                                         r"mean \[0\.5, .*\) differs from data\.normalizer "
                                         r"\(ActionNormalizer\(dim=7, normalized=7\), mean \[0\.0, "):
        train(TWO, _Data(HALF), tmp_path, normalizer=other, progress=False)
    assert not (tmp_path / "meta.json").exists()


def test_train_needs_data_that_declare_their_normalizer(tmp_path):
    class Bare:
        def sample(self, step):
            return StepSampler(DATA, 16).sample(step)

    with pytest.raises(TypeError, match=r"Bare has no \.normalizer: give the data one \(None if "
                                        r"actions are used as given\) or pass normalizer= to train"):
        train(TWO, Bare(), tmp_path, progress=False)

    class Custom:
        def normalize(self, a):
            return a

        def to_dict(self):
            return {}
    with pytest.raises(TypeError, match="normalizer must be a vgps.data.normalize normalizer .*"
                                        "got Custom"):
        train(TWO, _Data(Custom()), tmp_path, progress=False)
    assert not (tmp_path / "meta.json").exists()


# ------------------------------------------------------------------ item 8: diagnostics labels
class _ConstCritic:
    """Q = -10 - t/100 at step t for every action: with γ = 0.98 a successful 12-step episode's
    G_t >= -8.4, so all its steps are "below the bound"; a failed one's are only if labelled
    like a success (G_t = -50 with the success flag)."""
    obs_modality, normalizer = "state", None

    def score(self, obs, lang, cands):
        q = -10.0 - np.arange(len(cands), dtype=np.float32)[:, None] / 100
        return np.broadcast_to(q, cands.shape[:2]).astype(np.float32)


def _episodes():
    rng = np.random.default_rng(0)
    return [{"observation": {"state": rng.normal(size=(12, 6)).astype(np.float32)},
             "action": rng.normal(size=(12, 7)).astype(np.float32), "instruction": f"task {i}",
             "success": ok, "metadata": {"failure_mode": None if ok else "drift"}}
            for i, ok in enumerate([True, False])]


class _Enc:
    def encode(self, texts):
        return np.zeros((len(texts), 512), np.float32)


@pytest.mark.parametrize("flag", [True, False])
def test_diagnostics_label_held_out_episodes_as_training_does(flag):
    """With use_success_flag (the default labels) a failed episode has no success steps and
    G_t = -1/(1-γ) = -50: it must not get "success" steps in bound_rate or the Q figures."""
    from vgps.agents.diagnostics import run_diagnostics
    from vgps.config import DataConfig, get_profile
    from vgps.data.labels import label_config, label_episode
    cfg = DataConfig(use_success_flag=flag)
    eps = _episodes()
    r = run_diagnostics(_ConstCritic(), eps, _Enc(), labels=cfg)
    failed = r["per_episode"][1]
    assert failed["success"] is False
    assert failed["success_step"].any() == (not flag)
    q = -10.0 - np.arange(12) / 100
    want = np.mean(np.concatenate([q < label_episode(e, cfg)["mc_returns"] for e in eps]))
    assert r["bound_rate"] == pytest.approx(want) == (0.5 if flag else 1.0)
    # a profile or TrainingData.labels dict gives the same numbers as its DataConfig
    for same in (label_config(cfg), dataclasses.replace(get_profile("smoke"), data=cfg)):
        assert run_diagnostics(_ConstCritic(), eps, _Enc(), labels=same)["bound_rate"] == \
            r["bound_rate"]
