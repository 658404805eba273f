"""Read RLDS datasets (tensorflow-datasets directories) into the episode dicts of docs/design.md.

Layouts are detected from the dataset's ``features.json``:
- ``bridge`` (Bridge V2 / Open X-Embodiment, octo's debug set, ours): image ``image_0``, state
  ``state``, 7-D ``action`` (gripper 1 = open), per-step ``language_instruction``.
- ``fractal`` (``fractal20220817_data``, ours): image ``image``, state ``state`` if present else
  ``[base_pose_tool_reached(7), gripper_closed(1)]``, ``observation/natural_language_instruction``,
  dict action mapped to 7-D: ``[world_vector, rotation_delta, gripper]`` with
  ``gripper = (1 - closedness) / 2`` for ±1 commands; a 0 command (RT-1's relative "no change")
  keeps the previous gripper state (the first state is inferred as the opposite of the first
  command, open when there is none).
"""
from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

_LANG_KEYS = ("language_instruction", "observation/natural_language_instruction",
              "observation/language_instruction")
_VERSION_RE = re.compile(r"\d+(\.\d+)*")   # builder version directories: 1.0.0, 2.1, ...


class RLDSError(ValueError):
    """A dataset that cannot be read as episodes; the message names the file and episode."""


def resolve_dataset_dir(path: str | Path) -> Path:
    """``path`` may be ``.../name/version`` or ``.../name`` (the highest numeric version is taken;
    subdirectories not named like ``1.0.0``, e.g. ``1.0.0-old``, are ignored)."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"RLDS dataset directory not found: {p}")
    if (p / "dataset_info.json").exists():
        return p
    found = sorted(d for d in p.iterdir() if (d / "dataset_info.json").exists())
    versions = [d for d in found if _VERSION_RE.fullmatch(d.name)]
    if not versions:
        other = f" (ignored, not a numeric version: {[d.name for d in found]})" if found else ""
        raise FileNotFoundError(f"{p}: no dataset_info.json here or in a version subdirectory; "
                                f"not a tensorflow-datasets directory{other}")
    return max(versions, key=lambda d: tuple(int(x) for x in d.name.split(".")))


def _flat_features(features, prefix: str = "") -> dict:
    """FeaturesDict -> {'steps/observation/image_0': feature, ...} (steps' inner dict flattened)."""
    import tensorflow_datasets as tfds
    out = {}
    items = features.items() if hasattr(features, "items") else []
    for k, f in items:
        name = f"{prefix}{k}"
        if isinstance(f, tfds.features.Dataset):
            out.update(_flat_features(f.feature, name + "/"))
        elif isinstance(f, tfds.features.FeaturesDict):
            out[name] = f
            out.update(_flat_features(f, name + "/"))
        else:
            out[name] = f
    return out


def describe(path: str | Path) -> dict:
    """Layout and keys of a dataset: {dir, builder, layout, image_key, state_keys, lang_key, splits}."""
    import tensorflow_datasets as tfds
    d = resolve_dataset_dir(path)
    try:
        builder = tfds.builder_from_directory(os.fspath(d))
    except Exception as e:  # noqa: BLE001 - re-raise with the file named
        raise RLDSError(f"{d}: cannot open as a tensorflow-datasets directory ({e})") from e
    flat = _flat_features(builder.info.features)
    obs_images = sorted(k for k, f in flat.items() if k.startswith("steps/observation/")
                        and isinstance(f, tfds.features.Image))
    if "steps/action" not in flat:
        raise RLDSError(f"{d}/features.json: no steps/action feature")
    action_is_dict = isinstance(flat["steps/action"], tfds.features.FeaturesDict)
    if action_is_dict or "steps/observation/natural_language_instruction" in flat:
        layout, pref = "fractal", "steps/observation/image"
    else:
        layout, pref = "bridge", "steps/observation/image_0"
    image_key = pref if pref in flat else (obs_images[0] if obs_images else None)
    if "steps/observation/state" in flat:
        state_keys = ["steps/observation/state"]
    else:
        state_keys = [k for k in ("steps/observation/base_pose_tool_reached",
                                  "steps/observation/gripper_closed") if k in flat]
    lang_key = next((f"steps/{k}" for k in _LANG_KEYS if f"steps/{k}" in flat), None)
    if not action_is_dict:
        shape = tuple(flat["steps/action"].shape)
        if shape != (7,):
            raise RLDSError(f"{d}/features.json: steps/action has shape {shape}; expected (7,) "
                            "in the Bridge convention [dx,dy,dz,droll,dpitch,dyaw,gripper]")
    return {"dir": d, "builder": builder, "layout": layout, "image_key": image_key,
            "state_keys": state_keys, "lang_key": lang_key, "action_is_dict": action_is_dict,
            "other_images": [k for k in obs_images if k != image_key],
            "splits": {s: i.num_examples for s, i in builder.info.splits.items()}}


def fractal_gripper(closedness: np.ndarray) -> np.ndarray:
    """RT-1 ``gripper_closedness_action`` [T] (+1 close, -1 open, 0 no change) -> [T] 1=open, 0=closed."""
    c = np.asarray(closedness, np.float32).reshape(-1)
    nonzero = np.flatnonzero(np.abs(c) > 0.5)
    state = 1.0 if not len(nonzero) else float(c[nonzero[0]] > 0)  # opposite of the first command
    out = np.empty_like(c)
    for t, v in enumerate(c):
        if v > 0.5:
            state = 0.0
        elif v < -0.5:
            state = 1.0
        out[t] = state
    return out


def _as_str(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _py(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.generic):
        return v.item()
    return v


def _get(tree: dict, key: str):
    for part in key.split("/"):
        tree = tree[part]
    return tree


def _episode_tf_map(info: dict):
    """tf.data map: one RLDS episode -> dict of stacked step tensors (only the keys we use)."""
    keys = [info["image_key"], *info["state_keys"], info["lang_key"]]

    def fn(ep):
        steps = ep["steps"].batch(1 << 20).get_single_element()
        out = {"action": steps["action"]}
        for k in keys:
            if k is not None:
                out[k] = _get(steps, k.removeprefix("steps/"))
        if "episode_metadata" in ep:
            out["episode_metadata"] = ep["episode_metadata"]
        return out
    return fn


def describe_for(path, keys) -> dict:
    """:func:`describe` narrowed to the observations in ``keys``: an image not asked for is
    skipped undecoded, and ``"state" not in keys`` drops the state features."""
    info = describe(path)
    if "image" not in keys and info["image_key"] is not None:
        info["other_images"].append(info["image_key"])
        info["image_key"] = None
    if "state" not in keys:
        info["state_keys"] = []
    return info


def iter_episodes(path: str | Path, *, split: str = "train", image_size: int | None = None,
                  max_episodes: int | None = None, skip_missing_instruction: bool = False,
                  keys: tuple[str, ...] = ("image", "state")) -> Iterator[dict]:
    """Yield the episodes of one split in file order, as docs/design.md episode dicts.

    ``image_size``: resize frames to ``image_size``² (area-averaging down, bilinear up) if given.
    ``skip_missing_instruction``: drop episodes without language instead of raising (real Bridge
    has some; the paper trains only on language-annotated data).
    ``keys``: which observations to decode (``("state",)`` skips image decoding entirely).
    """
    for _, ep in iter_indexed_episodes(path, split=split, image_size=image_size,
                                       max_episodes=max_episodes, keys=keys,
                                       skip_missing_instruction=skip_missing_instruction):
        yield ep


def iter_indexed_episodes(path: str | Path, *, split: str = "train", image_size: int | None = None,
                          max_episodes: int | None = None, skip_missing_instruction: bool = False,
                          keys: tuple[str, ...] = ("image", "state")) -> Iterator[tuple[int, dict]]:
    """:func:`iter_episodes` yielding ``(index in the split's files, episode)``; the index counts
    skipped episodes too, so it is the one error messages name."""
    import tensorflow as tf
    import tensorflow_datasets as tfds
    info = describe_for(path, keys)
    d, builder = info["dir"], info["builder"]
    if split not in info["splits"]:
        raise RLDSError(f"{d}: no split {split!r}; available: {sorted(info['splits'])}")
    if info["splits"][split] == 0:
        raise RLDSError(f"{d}: split {split!r} is empty (0 episodes)")
    if info["lang_key"] is None:
        raise RLDSError(f"{d}/features.json: no language instruction feature "
                        f"(looked for steps/{{{', '.join(_LANG_KEYS)}}})")
    skip = {}
    for k in info["other_images"]:        # leave unused cameras as encoded bytes
        node = skip
        parts = k.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = tfds.decode.SkipDecoding()
    ds = builder.as_dataset(split=split, shuffle_files=False, decoders=skip or None)
    ds = ds.map(_episode_tf_map(info), num_parallel_calls=1, deterministic=True)
    n, it = 0, iter(tfds.as_numpy(ds))
    for i in itertools.count():
        if max_episodes is not None and n >= max_episodes:
            break
        try:
            raw = next(it)
        except StopIteration:
            break
        except tf.errors.OpError as e:      # truncated/corrupt file, zero-step episode
            raise _read_error(e, info, split, i) from e
        ep = _to_episode(raw, info, i, split, image_size, skip_missing_instruction)
        if ep is not None:
            n += 1
            yield i, ep
    if n == 0:
        raise RLDSError(f"{d}: split {split!r} yielded no usable episodes")


def _shard_of(info: dict, split: str, i: int) -> str:
    """The file holding episode ``i`` of ``split`` (files are read in order)."""
    si = info["builder"].info.splits[split]
    paths, ends = list(si.filepaths), np.cumsum(si.shard_lengths)
    k = int(np.searchsorted(ends, i, side="right"))
    return os.fspath(paths[min(k, len(paths) - 1)])


def _read_error(e: Exception, info: dict, split: str, i: int) -> Exception:
    """A TensorFlow error met while reading episode ``i`` -> :class:`RLDSError` naming the file."""
    import tensorflow as tf
    msg = re.sub(r"\{\{.*?\}\}\s*|\s*\[\[.*?\]\]|\s*\[Op:.*$", "", e.message, flags=re.S).strip()
    where = f"{info['dir']} [{split}] episode {i}"
    if isinstance(e, tf.errors.InvalidArgumentError) and "Dataset was empty" in e.message:
        return RLDSError(f"{where}: episode has no steps (in {_shard_of(info, split, i)})")
    return RLDSError(f"{_shard_of(info, split, i)}: cannot read {where} ({type(e).__name__}: "
                     f"{msg}); the file is truncated or corrupt")


def _to_episode(raw: dict, info: dict, i: int, split: str, image_size: int | None,
                skip_missing: bool) -> dict | None:
    where = f"{info['dir']} [{split}] episode {i}"
    act = raw["action"]
    if info["action_is_dict"]:
        grip = fractal_gripper(act["gripper_closedness_action"])
        act = np.concatenate([act["world_vector"], act["rotation_delta"], grip[:, None]], axis=1)
    act = np.asarray(act, np.float32)
    if act.ndim != 2 or act.shape[1] != 7:
        raise RLDSError(f"{where}: action has shape {act.shape}; expected [T, 7]")
    T = act.shape[0]
    if T == 0:
        raise RLDSError(f"{where}: episode has no steps")
    instr = next((s for s in (_as_str(x).strip() for x in raw[info["lang_key"]]) if s), "")
    if not instr:
        if skip_missing:
            return None
        raise RLDSError(f"{where}: episode without a language instruction "
                        f"({info['lang_key']} is empty); pass skip_missing_instruction=True to drop it")
    obs = {}
    if info["image_key"] is not None:
        img = np.asarray(raw[info["image_key"]], np.uint8)
        if image_size is not None and img.shape[1:3] != (image_size, image_size):
            img = resize_images(img, image_size)
        obs["image"] = img
    if info["state_keys"]:
        obs["state"] = np.concatenate([np.asarray(raw[k], np.float32).reshape(T, -1)
                                       for k in info["state_keys"]], axis=1)
    meta = {k: _py(v) for k, v in raw.get("episode_metadata", {}).items()}
    success = meta.pop("success", None)
    return {"observation": obs, "action": act, "instruction": instr,
            "success": None if success is None else bool(success), "metadata": meta}


def resize_images(img: np.ndarray, size: int) -> np.ndarray:
    """uint8[T, H, W, 3] -> uint8[T, size, size, 3] (area when shrinking, bilinear when growing)."""
    import tensorflow as tf
    method = "area" if img.shape[1] >= size else "bilinear"
    out = tf.image.resize(tf.convert_to_tensor(img, tf.float32), (size, size), method=method)
    return np.clip(np.round(out.numpy()), 0, 255).astype(np.uint8)


def load_episodes(path: str | Path, **kwargs) -> list[dict]:
    """All episodes of a split as a list (see :func:`iter_episodes` for the arguments)."""
    return list(iter_episodes(path, **kwargs))
