"""vgps.artifacts: the one dataset fingerprint, cache key and train-or-load."""
from __future__ import annotations

import json
import os

from tests.data_helpers import copy_tiny
from vgps import artifacts


def test_fingerprint_follows_the_bytes_not_mtimes_or_location(tmp_path):
    d = copy_tiny(tmp_path / "a", "bridge_tiny")
    fp = artifacts.fingerprint(d)
    shard = sorted(d.glob("*.tfrecord*"))[0]
    st = shard.stat()
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))     # "regenerated"
    assert artifacts.fingerprint(d) == fp
    assert artifacts.fingerprint(copy_tiny(tmp_path / "b", "bridge_tiny")) == fp
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 1                                               # same size, one bit
    shard.write_bytes(bytes(raw))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns + 9_000_000))
    assert artifacts.fingerprint(d) != fp


def test_cache_key_sorts_keys():
    assert artifacts.cache_key({"a": 1, "b": (2, 3)}) == artifacts.cache_key({"b": [2, 3], "a": 1})
    assert artifacts.cache_key({"a": 1}) != artifacts.cache_key({"a": 2})


def test_train_or_load_reuses_a_matching_key_and_clears_stale_outputs(tmp_path):
    calls = []

    def train(key):
        def run():
            calls.append(key)
            (tmp_path / "model.bin").write_bytes(key.encode())
            (tmp_path / "meta.json").write_text(json.dumps({"cache_key": key}))
            return "trained"
        return run
    load = lambda: "loaded"  # noqa: E731
    kw = dict(artefact="model.bin", stale=("checkpoints",))
    assert artifacts.train_or_load(tmp_path, "k1", train("k1"), load, **kw) == ("trained", True)
    assert artifacts.train_or_load(tmp_path, "k1", train("k1"), load, **kw) == ("loaded", False)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step_1").write_text("old run")
    seen = []
    other = lambda: seen.append(sorted(p.name for p in tmp_path.iterdir())) or "trained"  # noqa: E731
    assert artifacts.train_or_load(tmp_path, "k2", other, load, **kw) == ("trained", True)
    assert seen == [["meta.json"]]           # artefact and stale outputs gone before training
    assert calls == ["k1"]
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "meta.json").write_text(json.dumps({"cache_key": "k3"}))
    assert artifacts.train_or_load(tmp_path, "k3", lambda: "resumed", load, **kw) == ("resumed", True)
    assert (tmp_path / "checkpoints").exists()        # same key, unfinished: left to resume
