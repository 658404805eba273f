"""Helpers for the data tests: copies of the committed tiny datasets and malformed datasets."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np

from vgps.paths import REPO, TEST_DATA


def make_test_datasets_module():
    spec = importlib.util.spec_from_file_location("make_test_datasets",
                                                  REPO / "scripts" / "make_test_datasets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def copy_tiny(tmp_path: Path, name: str) -> Path:
    """A private copy of a committed tiny dataset (tests may rewrite or truncate its files)."""
    dst = tmp_path / name
    shutil.copytree(TEST_DATA / name, dst)
    return dst / "1.0.0"


def write_raw_bridge(ds_dir: Path, episodes: list[tuple[int, str]], action_dim: int = 7) -> Path:
    """A bridge-like TFDS dir bypassing write_rlds' checks: episodes = [(T, instruction)]."""
    import tensorflow as tf
    import tensorflow_datasets as tfds
    F = tfds.features
    feats = F.FeaturesDict({"steps": F.Dataset(F.FeaturesDict({
        "action": F.Tensor(shape=(action_dim,), dtype=np.float32),
        "language_instruction": F.Text(),
        "observation": F.FeaturesDict({"state": F.Tensor(shape=(3,), dtype=np.float32)})}))})
    ds_dir.mkdir(parents=True, exist_ok=True)
    path = ds_dir / "raw-train.tfrecord-00000-of-00001"
    with tf.io.TFRecordWriter(str(path)) as w:
        for T, instr in episodes:
            w.write(feats.serialize_example({"steps": {
                "action": np.zeros((T, action_dim), np.float32),
                "language_instruction": [instr] * T,
                "observation": {"state": np.zeros((T, 3), np.float32)}}}))
    tmpl = tfds.core.ShardedFileTemplate(data_dir=ds_dir, template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                                         dataset_name="raw")
    tfds.folder_dataset.write_metadata(
        data_dir=ds_dir, features=feats, check_data=False, version="1.0.0",
        filename_template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
        split_infos=[tfds.core.SplitInfo(name="train", shard_lengths=[len(episodes)],
                                         num_bytes=path.stat().st_size, filename_template=tmpl)])
    return ds_dir


class HashEncoder:
    """Deterministic stand-in for LanguageEncoder (no model load) for sampler tests."""
    dim = 512

    def encode(self, texts):
        return np.stack([np.random.default_rng(list(s.encode()) or [0]).normal(size=512)
                         .astype(np.float32) for s in texts]) if texts else np.zeros((0, 512))
