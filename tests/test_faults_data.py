"""Hostile-input faults of issue 15 (items 5 and 6): non-finite data, truncated/zero-step RLDS
files, version directories, corrupt statistics caches, checkpoint metadata and shapes."""
import dataclasses
import json
import re

import numpy as np
import pytest

from tests.data_helpers import copy_tiny, make_test_datasets_module, write_raw_bridge
from vgps.data.normalize import STATS_FILE, ActionNormalizer, StateNormalizer, save_statistics

MK = make_test_datasets_module()


@pytest.fixture(autouse=True)
def _artifacts(tmp_path, monkeypatch):
    """Anything a loader caches goes under this test's own artifacts root."""
    monkeypatch.setenv("VGPS_ARTIFACTS", str(tmp_path / "artifacts"))


def _bridge(tmp_path, name, episodes):
    from vgps.data.rlds_writer import write_rlds
    return write_rlds(episodes, tmp_path / "data", name=name, layout="bridge")


# ----------------------------------------------------------------- 1. non-finite actions/states
def test_nan_action_is_rejected_naming_dataset_episode_and_step(tmp_path):
    from vgps.data.loader import dataset_statistics, load_training_data
    from tests.data_helpers import HashEncoder
    eps = [MK.make_episode(i, 4, seed=1) for i in range(3)]
    eps[2]["action"][1, 3] = np.nan
    d = _bridge(tmp_path, "nan_action", eps)
    with pytest.raises(ValueError) as e:
        dataset_statistics(d)
    row = [float(x) for x in eps[2]["action"][1]]
    assert str(e.value) == (f"{d} [train] episode 2 step 1: non-finite action {row}; "
                            "normalization statistics need finite data (fix or drop the episode)")
    assert not (d / STATS_FILE).exists()                 # nothing poisoned was cached
    assert not list((tmp_path / "artifacts").rglob("*.json"))
    with pytest.raises(ValueError, match=re.escape(f"{d} [train] episode 2 step 1: non-finite "
                                                   "action")):
        load_training_data([d], None, _data_cfg(), obs_keys=("state",), batch_size=4,
                           encoder=HashEncoder())


def test_inf_state_is_rejected_naming_dataset_episode_and_step(tmp_path):
    from vgps.data.loader import dataset_statistics
    eps = [MK.make_episode(i, 5, seed=1) for i in range(2)]
    eps[1]["observation"]["state"][3, 0] = np.inf
    d = _bridge(tmp_path, "inf_state", eps)
    with pytest.raises(ValueError, match=re.escape(f"{d} [train] episode 1 step 3: non-finite "
                                                   "state [inf, ")):
        dataset_statistics(d)


def test_poisoned_cache_from_before_the_check_is_not_served(tmp_path):
    """Statistics cached from NaN data (same fingerprint) are refitted, which names the step."""
    from vgps.artifacts import fingerprint as data_fingerprint
    from vgps.data.loader import dataset_statistics, statistics_cache_path
    eps = [MK.make_episode(i, 4, seed=1) for i in range(2)]
    eps[0]["action"][2, 0] = np.inf
    d = _bridge(tmp_path, "poisoned", eps)
    nan = np.full(7, np.nan)
    fp = data_fingerprint(d)
    save_statistics(statistics_cache_path(d, "train", fp), ActionNormalizer(nan, nan), None,
                    {"split": "train", "instructions": ["x"], "num_episodes": 2,
                     "num_transitions": 8, "fingerprint": fp})
    with pytest.raises(ValueError, match=re.escape(f"{d} [train] episode 0 step 2: non-finite "
                                                   "action [inf, ")):
        dataset_statistics(d)


def test_normalizer_fit_rejects_non_finite_rows():
    x = np.zeros((6, 7), np.float32)
    x[4, 2] = -np.inf
    with pytest.raises(ValueError, match=re.escape("ActionNormalizer.fit input row 4: non-finite "
                                                   "values [0.0, 0.0, -inf, 0.0")):
        ActionNormalizer.fit(x)


def test_fit_statistics_names_the_episode_and_step():
    from vgps.data.normalize import fit_statistics
    eps = [{"action": np.zeros((3, 7), np.float32), "observation": {}} for _ in range(2)]
    eps[1]["action"][2, 6] = np.nan
    with pytest.raises(ValueError, match=re.escape("episode 1 step 2: non-finite action")):
        fit_statistics(eps)


def _data_cfg():
    from vgps.config import DataConfig
    return DataConfig(image_size=32)


# ----------------------------------------------------------------- 2. truncated file, zero steps
def test_truncated_tfrecord_is_an_rlds_error_naming_the_file(tmp_path):
    from vgps.data.loader import dataset_statistics
    from vgps.data.rlds import RLDSError, load_episodes
    d = write_raw_bridge(tmp_path / "raw" / "1.0.0", [(3, "a"), (4, "b"), (2, "c")])
    shard = d / "raw-train.tfrecord-00000-of-00001"
    shard.write_bytes(shard.read_bytes()[:-30])
    want = (f"{shard}: cannot read {d} [train] episode 2 (DataLossError: truncated record at ")
    with pytest.raises(RLDSError) as e:
        load_episodes(d)
    assert str(e.value).startswith(want), str(e.value)
    assert str(e.value).endswith("; the file is truncated or corrupt")
    with pytest.raises(RLDSError, match=re.escape(want)):
        dataset_statistics(d)


def test_zero_step_episode_is_an_rlds_error_naming_the_episode(tmp_path):
    from vgps.data.rlds import RLDSError, load_episodes
    d = write_raw_bridge(tmp_path / "raw" / "1.0.0", [(3, "a"), (0, "b"), (2, "c")])
    shard = d / "raw-train.tfrecord-00000-of-00001"
    with pytest.raises(RLDSError) as e:
        load_episodes(d, skip_missing_instruction=True)
    assert str(e.value) == f"{d} [train] episode 1: episode has no steps (in {shard})"


# ----------------------------------------------------------------- 3. version directories
def _version_dirs(root, names):
    for n in names:
        (root / n).mkdir(parents=True)
        (root / n / "dataset_info.json").write_text("{}")


def test_highest_numeric_version_is_chosen(tmp_path):
    from vgps.data.rlds import resolve_dataset_dir
    root = tmp_path / "builder"
    _version_dirs(root, ["0.9.0", "1.0.0", "1.0.0-old", "1.2.0-rc1", "backup", "0.10.0"])
    (root / "2.0.0").mkdir()                              # no dataset_info.json: not a version
    assert resolve_dataset_dir(root) == root / "1.0.0"
    _version_dirs(root, ["1.10.0"])
    assert resolve_dataset_dir(root) == root / "1.10.0"   # numeric, not string, order


def test_only_non_version_directories_is_an_error(tmp_path):
    from vgps.data.rlds import resolve_dataset_dir
    root = tmp_path / "builder"
    _version_dirs(root, ["1.0.0-old", "latest"])
    with pytest.raises(FileNotFoundError) as e:
        resolve_dataset_dir(root)
    assert str(e.value) == (f"{root}: no dataset_info.json here or in a version subdirectory; "
                            "not a tensorflow-datasets directory (ignored, not a numeric version: "
                            "['1.0.0-old', 'latest'])")


# ----------------------------------------------------------------- 4. truncated statistics JSON
def test_truncated_statistics_json_is_rebuilt_with_a_warning(tmp_path, recwarn):
    from vgps.artifacts import fingerprint as data_fingerprint
    from vgps.data.loader import dataset_statistics, statistics_cache_path
    d = copy_tiny(tmp_path, "bridge_tiny")
    fresh = dataset_statistics(d, refit=True)
    f = statistics_cache_path(d, "train", data_fingerprint(d))
    assert f.exists() and not (d / STATS_FILE).exists()
    f.write_text('{"action": {"kind": "action", "mean": [0.0')     # a write cut short
    with pytest.warns(UserWarning) as w:
        got = dataset_statistics(d)
    msgs = [str(x.message) for x in w]
    assert any(m.startswith(f"{f}: unreadable statistics cache (JSONDecodeError: ")
               and m.endswith("; recomputing the statistics") for m in msgs), msgs
    assert got["action"] == fresh["action"] and got["state"] == fresh["state"]
    assert {k: got[k] for k in ("instructions", "num_episodes", "num_transitions")} == \
        {k: fresh[k] for k in ("instructions", "num_episodes", "num_transitions")}
    recwarn.clear()
    again = dataset_statistics(d)                         # rebuilt: later loads are quiet
    assert again["action"] == fresh["action"]
    assert not [x for x in recwarn if "statistics cache" in str(x.message)]
    assert json.loads(f.read_text())["fingerprint"] == data_fingerprint(d)   # rewritten whole


def test_statistics_are_cached_under_artifacts_not_in_the_dataset(tmp_path):
    """Item 5: the loader never writes into a dataset's directory (it may be read-only or
    someone else's, like the real Bridge episodes under ../shared); the cache lives under the
    artifacts root, keyed by the data fingerprint, so an identical copy elsewhere reuses it."""
    from unittest import mock

    from vgps.artifacts import fingerprint
    from vgps.data import loader
    d = copy_tiny(tmp_path, "bridge_tiny")
    listing = lambda: sorted((p.relative_to(d.parent).as_posix(), p.stat().st_mtime_ns)
                             for p in [d.parent, *d.parent.rglob("*")])
    before = listing()
    fresh = loader.dataset_statistics(d)
    assert listing() == before
    f = loader.statistics_cache_path(d, "train", fingerprint(d))
    assert f == (tmp_path / "artifacts" / "_cache" / "statistics" /
                 f"bridge_tiny-1.0.0-{fingerprint(d)}-train.json")
    assert f.exists() and [p.name for p in f.parent.iterdir()] == [f.name]
    twin = copy_tiny(tmp_path / "elsewhere", "bridge_tiny")    # same files, names, mtimes
    assert fingerprint(twin) == fingerprint(d)
    with mock.patch.object(loader, "iter_indexed_episodes",
                           side_effect=AssertionError("refitted instead of using the cache")):
        assert loader.dataset_statistics(twin)["action"] == fresh["action"]
    val = loader.dataset_statistics(d, split="val")            # another split: its own file
    assert val["split"] == "val" and f.exists() and len(list(f.parent.iterdir())) == 2
    assert listing() == before


def test_fit_statistics_rebuilds_a_truncated_cache(tmp_path):
    from vgps.data.normalize import fit_statistics
    eps = [{"action": np.arange(21, dtype=np.float32).reshape(3, 7), "observation": {}}]
    (tmp_path / STATS_FILE).write_text('{"act')
    with pytest.warns(UserWarning, match=re.escape(f"{tmp_path / STATS_FILE}: unreadable "
                                                   "statistics cache (JSONDecodeError")):
        a, s = fit_statistics(eps, cache_dir=tmp_path)
    assert a == ActionNormalizer.fit(eps[0]["action"]) and s is None


# ----------------------------------------------------------------- 6. checkpoint metadata/shapes
def _cfg():
    from vgps.config import CriticConfig
    return CriticConfig(hidden_dims=(8, 8), encoder_dims=(8,), embedding_dim=8,
                        behavior_hidden_dims=(8,), language_dim=16)


def _init_params(cfg, state_dim):
    import jax

    from vgps.nets.critic import CriticNet
    obs = {"state": np.zeros((1, state_dim), np.float32)}
    return jax.device_get(CriticNet(cfg).init(jax.random.PRNGKey(0), obs,
                                              np.zeros((1, cfg.language_dim), np.float32),
                                              np.zeros((1, cfg.action_dim), np.float32)))


def _run_dir(path, cfg, *, state_dim=6, params_state_dim=None, normalizer=None,
             full_checkpoint=False):
    """A critic run directory written by hand: meta.json plus critic.msgpack (or a full
    checkpoint holding the critic params)."""
    from vgps.agents import checkpoint as ckpt
    path.mkdir(parents=True)
    meta = {"algorithm": cfg.algorithm, "config": dataclasses.asdict(cfg),
            "obs_modality": "state", "language_dim": cfg.language_dim,
            "action_dim": cfg.action_dim, "num_qs": cfg.num_qs,
            "obs_spec": {"state": {"shape": [state_dim], "dtype": "float32"}},
            "normalizer": normalizer, "state_normalizer": None}
    ckpt.save_meta(path, meta)
    params = _init_params(cfg, params_state_dim or state_dim)
    if full_checkpoint:
        ckpt.save_state(path, 1, {"critic": {"params": params}})
    else:
        ckpt.save_params(path / "critic.msgpack", params)
    return path


def _norm():
    return ActionNormalizer(np.arange(7) / 10, np.full(7, 2.0))


def test_normalizers_are_stored_as_plain_arrays(tmp_path):
    from vgps.agents import load_critic
    d = _run_dir(tmp_path / "run", _cfg(), normalizer=_norm())
    raw = json.loads((d / "meta.json").read_text())
    assert raw["normalizer"] == {"kind": "action", "mean": _norm().mean.tolist(),
                                 "std": [2.0] * 7, "mask": [True] * 6 + [False]}
    assert "__class__" not in (d / "meta.json").read_text()
    c = load_critic(d)
    assert type(c.normalizer) is ActionNormalizer and c.normalizer == _norm()


def test_old_meta_with_known_class_names_still_loads(tmp_path):
    from vgps.agents import checkpoint as ckpt
    from vgps.agents import load_critic
    d = _run_dir(tmp_path / "run", _cfg(), normalizer=_norm())
    meta = json.loads((d / "meta.json").read_text())
    meta["normalizer"]["__class__"] = "vgps.data.normalize.ActionNormalizer"   # old format
    meta["state_normalizer"] = {"__class__": "vgps.data.normalize.StateNormalizer",
                                **StateNormalizer(np.zeros(6), np.ones(6)).to_dict()}
    (d / "meta.json").write_text(json.dumps(meta))
    c = load_critic(d)
    assert type(c.normalizer) is ActionNormalizer and c.normalizer == _norm()
    assert c.state_normalizer == StateNormalizer(np.zeros(6), np.ones(6))
    with pytest.raises(ckpt.CheckpointError) as e:
        ckpt.from_jsonable_normalizer({"kind": "reward", "mean": [0.0], "std": [1.0]},
                                      "x/meta.json: normalizer")
    assert str(e.value) == ("x/meta.json: normalizer: unknown normalizer kind 'reward'; expected "
                            "one of ['action', 'generic', 'state']")


@pytest.mark.parametrize("entry", ["normalizer", "state_normalizer"])
@pytest.mark.parametrize("cls_path", ["vgps_import_probe.Boom", "os.system",
                                      "vgps.data.normalize.pool", "ActionNormalizer"])
def test_unknown_class_in_meta_is_refused_without_importing(tmp_path, monkeypatch, entry,
                                                            cls_path):
    """Item 6: a module path in ``"__class__"`` used to be imported (any importable module ran);
    now only our own normalizer classes are accepted, by name, and nothing is imported."""
    from vgps.agents import checkpoint as ckpt
    from vgps.agents import load_critic
    probe = tmp_path / "imported"
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "vgps_import_probe.py").write_text(
        f"import pathlib\npathlib.Path({str(probe)!r}).write_text('ran')\nBoom = dict\n")
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    d = _run_dir(tmp_path / "run", _cfg(), normalizer=_norm())
    meta = json.loads((d / "meta.json").read_text())
    dim = 7 if entry == "normalizer" else 6
    meta[entry] = {"__class__": cls_path, **ActionNormalizer(np.zeros(dim), np.ones(dim)).to_dict()}
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ckpt.CheckpointError) as e:
        load_critic(d)
    assert str(e.value).startswith(f"{d / 'meta.json'}: {entry}: refusing \"__class__\": "
                                   f"{cls_path!r}; only these normalizer classes are accepted")
    assert "vgps.data.normalize.ActionNormalizer" in str(e.value)
    assert not probe.exists()                             # the named module never ran


def test_normalizer_record_without_a_type_tag_is_refused(tmp_path):
    from vgps.agents import checkpoint as ckpt
    from vgps.agents import load_critic
    d = _run_dir(tmp_path / "run", _cfg(), normalizer=_norm())
    meta = json.loads((d / "meta.json").read_text())
    meta["normalizer"] = {"mean": [0.0] * 7, "std": [1.0] * 7}
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ckpt.CheckpointError, match=re.escape(
            f"{d / 'meta.json'}: normalizer: normalizer record without a \"kind\" (keys "
            "['mean', 'std'])")):
        load_critic(d)


def test_only_our_normalizers_can_be_written_into_meta():
    from vgps.agents import checkpoint as ckpt

    class Custom:
        def to_dict(self):
            return {"scale": 2}
    with pytest.raises(TypeError, match="cannot serialise Custom into a checkpoint"):
        ckpt.to_jsonable({"normalizer": Custom()})
    assert "__class__" not in json.dumps(ckpt.to_jsonable({"n": _norm(), "c": _cfg()}))


def _mismatch(cfg, good_dim, bad_dim):
    """(parameter name, checkpoint shape, config shape) of the first differing parameter."""
    from flax import traverse_util
    good = traverse_util.flatten_dict(_init_params(cfg, good_dim), sep="/")
    bad = traverse_util.flatten_dict(_init_params(cfg, bad_dim), sep="/")
    k = next(k for k in good if good[k].shape != bad[k].shape)
    return k, tuple(bad[k].shape), tuple(good[k].shape)


@pytest.mark.parametrize("full_checkpoint", [False, True])
def test_parameter_shapes_are_checked_at_load_time(tmp_path, full_checkpoint):
    from vgps.agents import load_critic
    from vgps.agents.checkpoint import CheckpointError, list_checkpoints
    cfg = _cfg()
    d = _run_dir(tmp_path / "run", cfg, state_dim=6, params_state_dim=5,
                 full_checkpoint=full_checkpoint)
    name, got, want = _mismatch(cfg, 6, 5)
    assert (name, got, want) == ("params/encoder/dense_0/kernel", (5 + 16, 8), (6 + 16, 8))
    where = f"{list_checkpoints(d)[-1]} (critic params)" if full_checkpoint \
        else f"{d / 'critic.msgpack'}"
    with pytest.raises(CheckpointError) as e:
        load_critic(d)
    assert str(e.value) == (f"{where}: parameter {name!r} has shape {got} in the checkpoint but "
                            f"{want} in the network its config builds")


def test_normalizer_dimension_is_checked_at_load_time(tmp_path):
    from vgps.agents import load_critic
    from vgps.agents.checkpoint import CheckpointError
    d = _run_dir(tmp_path / "run", _cfg(), normalizer=ActionNormalizer(np.zeros(6), np.ones(6)))
    with pytest.raises(CheckpointError) as e:
        load_critic(d)
    assert str(e.value) == (f"{d / 'meta.json'}: normalizer has dimension 6 but the critic's "
                            "action_dim is 7")
