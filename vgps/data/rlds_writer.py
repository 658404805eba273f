"""Write episodes (docs/design.md format) as an RLDS tensorflow-datasets directory.

The result, ``out_dir/<name>/<version>/``, is readable offline with
``tfds.builder_from_directory`` and by :func:`vgps.data.rlds.load_episodes`. Episodes are
streamed: each one is encoded and appended to a TFRecord shard as it arrives, so memory stays
bounded by one episode. The byte content is deterministic (fixed episode order, PNG images,
no timestamps in the metadata).

Layouts
- ``bridge``: ``steps/observation/image_0``, ``steps/observation/state``, ``steps/action[7]``,
  ``steps/language_instruction`` (per step).
- ``fractal``: ``steps/observation/image``, ``steps/observation/state``,
  ``steps/observation/{base_pose_tool_reached[7], gripper_closed[1]}``,
  ``steps/observation/natural_language_instruction``, ``steps/action/{world_vector,
  rotation_delta, gripper_closedness_action (+1 close, -1 open), terminate_episode[3]}``.
Both carry ``is_first/is_last/is_terminal/reward/discount`` and ``episode_metadata``.
"""
from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Mapping
from itertools import chain
from pathlib import Path

import numpy as np

LAYOUTS = ("bridge", "fractal")
_FILE_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
_SHARD_BYTES = 256 << 20          # start a new shard after ~256 MB
# Known metadata fields and their types; others are typed from the first episode's values.
_META_TYPES = {"success": bool, "quality": str, "task_id": str, "embodiment": str,
               "seed": int, "failure_mode": str}
_META_DEFAULTS = {bool: False, str: "", int: -1, float: float("nan")}


def _tfds():
    import tensorflow_datasets as tfds  # heavy import, deferred
    return tfds


def _png(frame: np.ndarray) -> bytes:
    """uint8[H, W, 3] -> PNG bytes (PIL, zlib level 1: ~5x faster than TF's encoder, lossless)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _check_episode(ep: dict, i: int, name: str) -> int:
    """Validate one episode; return T."""
    where = f"dataset {name!r}, episode {i}"
    act = np.asarray(ep.get("action"))
    if act.ndim != 2 or act.shape[1] != 7:
        raise ValueError(f"{where}: action must be float32[T, 7], got shape {act.shape}")
    T = act.shape[0]
    if T == 0:
        raise ValueError(f"{where}: episode has no steps")
    instr = ep.get("instruction")
    if not isinstance(instr, str) or not instr.strip():
        raise ValueError(f"{where}: episode without an instruction (got {instr!r})")
    for key, arr in ep["observation"].items():
        if np.asarray(arr).shape[0] != T:
            raise ValueError(f"{where}: observation/{key} has {np.asarray(arr).shape[0]} steps, "
                             f"action has {T}")
    return T


def _episode_meta(ep: dict) -> dict:
    meta = dict(ep.get("metadata") or {})
    if ep.get("success") is not None:
        meta["success"] = bool(ep["success"])
    return {k: v for k, v in meta.items() if v is not None}


def _meta_types(meta: dict) -> dict[str, type]:
    types = {}
    for k, v in meta.items():
        if k in _META_TYPES:
            types[k] = _META_TYPES[k]
        elif isinstance(v, (bool, np.bool_)):
            types[k] = bool
        elif isinstance(v, (int, np.integer)):
            types[k] = int
        elif isinstance(v, (float, np.floating)):
            types[k] = float
        elif isinstance(v, str):
            types[k] = str
        # other types (lists, dicts) are not stored
    return dict(sorted(types.items()))


def _features(layout: str, first: dict, meta_types: dict):
    tfds = _tfds()
    F = tfds.features
    obs = first["observation"]
    obs_f = {}
    if "image" in obs:
        shape = tuple(np.asarray(obs["image"]).shape[1:])
        key = "image_0" if layout == "bridge" else "image"
        obs_f[key] = F.Image(shape=shape, dtype=np.uint8, encoding_format="png")
    if "state" in obs:
        obs_f["state"] = F.Tensor(shape=(np.asarray(obs["state"]).shape[1],), dtype=np.float32)
    scalar = lambda dt: F.Scalar(dtype=dt)  # noqa: E731
    step = {"is_first": scalar(np.bool_), "is_last": scalar(np.bool_),
            "is_terminal": scalar(np.bool_), "reward": scalar(np.float32),
            "discount": scalar(np.float32)}
    if layout == "bridge":
        step["action"] = F.Tensor(shape=(7,), dtype=np.float32)
        step["language_instruction"] = F.Text()
    else:
        obs_f["base_pose_tool_reached"] = F.Tensor(shape=(7,), dtype=np.float32)
        obs_f["gripper_closed"] = F.Tensor(shape=(1,), dtype=np.float32)
        obs_f["natural_language_instruction"] = F.Text()
        step["action"] = F.FeaturesDict({
            "world_vector": F.Tensor(shape=(3,), dtype=np.float32),
            "rotation_delta": F.Tensor(shape=(3,), dtype=np.float32),
            "gripper_closedness_action": F.Tensor(shape=(1,), dtype=np.float32),
            "terminate_episode": F.Tensor(shape=(3,), dtype=np.int32)})
    step["observation"] = F.FeaturesDict(obs_f)
    tf_type = {bool: lambda: scalar(np.bool_), int: lambda: scalar(np.int64),
               float: lambda: scalar(np.float32), str: F.Text}
    top = {"steps": F.Dataset(F.FeaturesDict(step))}
    if meta_types:
        top["episode_metadata"] = F.FeaturesDict({k: tf_type[t]() for k, t in meta_types.items()})
    return F.FeaturesDict(top)


def _to_example(ep: dict, layout: str, meta_types: dict) -> dict:
    """Episode dict -> nested dict of stacked per-step arrays matching :func:`_features`."""
    act = np.asarray(ep["action"], np.float32)
    T = act.shape[0]
    obs = ep["observation"]
    success = ep.get("success")
    last = np.arange(T) == T - 1
    terminal = last & (success is not False)
    steps = {"is_first": np.arange(T) == 0, "is_last": last, "is_terminal": terminal,
             "reward": terminal.astype(np.float32), "discount": np.ones(T, np.float32)}
    o = {}
    if "image" in obs:
        o["image_0" if layout == "bridge" else "image"] = [
            _png(x) for x in np.asarray(obs["image"], np.uint8)]
    if "state" in obs:
        o["state"] = np.asarray(obs["state"], np.float32)
    instr = [ep["instruction"]] * T
    if layout == "bridge":
        steps["action"] = act
        steps["language_instruction"] = instr
    else:
        state = np.asarray(obs.get("state", np.zeros((T, 0))), np.float32)
        pose = np.zeros((T, 7), np.float32)
        pose[:, :min(7, state.shape[1])] = state[:, :7]
        o["base_pose_tool_reached"] = pose
        o["gripper_closed"] = (1.0 - act[:, 6:7]).astype(np.float32)
        o["natural_language_instruction"] = instr
        term = np.zeros((T, 3), np.int32)
        term[:, 0] = ~last
        term[:, 1] = last
        steps["action"] = {"world_vector": act[:, 0:3], "rotation_delta": act[:, 3:6],
                           "gripper_closedness_action": (1.0 - 2.0 * act[:, 6:7]).astype(np.float32),
                           "terminate_episode": term}
    steps["observation"] = o
    example = {"steps": steps}
    if meta_types:
        meta = _episode_meta(ep)
        example["episode_metadata"] = {
            k: (t(meta[k]) if k in meta else _META_DEFAULTS[t]) for k, t in meta_types.items()}
    return example


def _read_existing_splits(ds_dir: Path, features) -> dict:
    """Split infos already in ``ds_dir`` (for writing several splits one call at a time)."""
    info_path, feat_path = ds_dir / "dataset_info.json", ds_dir / "features.json"
    if not info_path.exists():
        return {}
    tfds = _tfds()
    same = lambda f: json.dumps(f.to_json(), sort_keys=True)  # noqa: E731
    if feat_path.exists() and same(tfds.features.FeatureConnector.from_json(
            json.loads(feat_path.read_text()))) != same(features):
        raise ValueError(f"{ds_dir}: existing dataset has different features; write to a new "
                         "directory or delete it first")
    info = json.loads(info_path.read_text())
    return {s["name"]: ([int(n) for n in s.get("shardLengths", [])], int(s.get("numBytes", 0)))
            for s in info.get("splits", [])}


def _write_split(episodes: Iterable[dict], ds_dir: Path, name: str, split: str, layout: str,
                 features, meta_types: dict, total: int | None) -> tuple[list[int], int]:
    """Stream episodes into TFRecord shards; return (shard_lengths, num_bytes)."""
    import tensorflow as tf
    from tqdm import tqdm      # text bars: tqdm.auto warns without ipywidgets

    # Protobuf map order is not fixed across processes unless asked: serialize deterministically.
    serializer = _tfds().core.example_serializer.ExampleSerializer(features.get_serialized_info())
    for old in ds_dir.glob(f"{name}-{split}.tfrecord-*"):
        old.unlink()
    tmp_paths, lengths, sizes = [], [], []
    writer, shard_bytes = None, 0
    for i, ep in enumerate(tqdm(episodes, total=total, desc=f"write {name}/{split}",
                                unit="ep", leave=False, disable=None)):
        _check_episode(ep, i, name)
        encoded = features.encode_example(_to_example(ep, layout, meta_types))
        record = serializer.get_tf_example(encoded).SerializeToString(deterministic=True)
        if writer is None or shard_bytes >= _SHARD_BYTES:
            if writer is not None:
                writer.close()
            tmp_paths.append(ds_dir / f".tmp-{name}-{split}-{len(tmp_paths):05d}")
            writer = tf.io.TFRecordWriter(str(tmp_paths[-1]))
            lengths.append(0)
            sizes.append(0)
            shard_bytes = 0
        writer.write(record)
        lengths[-1] += 1
        sizes[-1] += len(record)
        shard_bytes += len(record)
    if writer is not None:
        writer.close()
    if not lengths:
        raise ValueError(f"dataset {name!r}, split {split!r}: no episodes to write")
    n = len(tmp_paths)
    for k, p in enumerate(tmp_paths):
        os.replace(p, ds_dir / f"{name}-{split}.tfrecord-{k:05d}-of-{n:05d}")
    return lengths, sum(sizes)


def write_rlds(episodes: Iterable[dict] | Mapping[str, Iterable[dict]], out_dir: str | Path, *,
               name: str, layout: str = "bridge", split: str = "train", version: str = "1.0.0",
               num_episodes_hint: int | None = None) -> Path:
    """Write ``episodes`` to ``out_dir/name/version/`` as an RLDS TFDS dataset; return that path.

    ``episodes``: an iterable of episode dicts (written to ``split``) or a mapping
    ``{split: iterable}``. Calling again with another split adds it to the same dataset (the
    features must match); rewriting a split replaces it. Image and state sizes, and which
    ``episode_metadata`` fields exist, are taken from the first episode.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    tfds = _tfds()
    splits = dict(episodes) if isinstance(episodes, Mapping) else {split: episodes}
    ds_dir = Path(out_dir) / name / version
    ds_dir.mkdir(parents=True, exist_ok=True)
    features, meta_types, infos = None, None, {}
    for split_name, eps in splits.items():
        it = iter(eps)
        first = next(it, None)
        if first is None:
            raise ValueError(f"dataset {name!r}, split {split_name!r}: no episodes to write")
        if features is None:
            meta_types = _meta_types(_episode_meta(first))
            features = _features(layout, first, meta_types)
            infos = _read_existing_splits(ds_dir, features)
        infos[split_name] = _write_split(chain([first], it), ds_dir, name, split_name, layout,
                                         features, meta_types, num_episodes_hint)
    template = tfds.core.ShardedFileTemplate(data_dir=ds_dir, template=_FILE_TEMPLATE,
                                             dataset_name=name)
    split_infos = [tfds.core.SplitInfo(name=s, shard_lengths=lengths, num_bytes=nbytes,
                                       filename_template=template)
                   for s, (lengths, nbytes) in sorted(infos.items())]
    tfds.folder_dataset.write_metadata(
        data_dir=ds_dir, features=features, split_infos=split_infos, version=version,
        filename_template=_FILE_TEMPLATE, check_data=False,
        description=f"vgps RLDS dataset {name!r} ({layout} layout).")
    for junk in ds_dir.glob(".tmp-*"):
        junk.unlink()
    return ds_dir
