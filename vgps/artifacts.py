"""The one artefact cache: a dataset's identity, the cache key, train-or-load, atomic writes.

Trained artefacts (critics, stand-in and fine-tuned policies, ablation critics) live in a
directory whose JSON meta file records :func:`cache_key` of their config and the
:func:`fingerprint` of their data; dataset statistics and evaluation caches use the same two."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path

from vgps.data.normalize import STATS_FILE


def fingerprint(root) -> str:
    """The identity of a dataset: SHA-256 of its files' relative names, sizes and contents (not a
    ``dataset_statistics.json`` older versions wrote beside the data). It changes with any byte
    of the data, not when identical data are regenerated, copied or moved; hashed once per
    process while the files' sizes and mtimes stay the same."""
    root = Path(root)
    files = sorted((p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                   for p in root.rglob("*") if p.is_file() and p.name != STATS_FILE)
    return _digest(str(root.resolve()), tuple(files))


@functools.lru_cache(maxsize=256)
def _digest(root: str, files: tuple) -> str:
    h = hashlib.sha256()
    for rel, size, _ in files:
        with open(os.path.join(root, rel), "rb") as f:
            h.update(f"{rel}:{size}:".encode() + hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()[:16]


def cache_key(payload) -> str:
    """16 hex digits of SHA-256 over ``payload`` as JSON (sorted keys, other objects as ``str``)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def saved_key(meta) -> str:
    """The ``cache_key`` recorded in the JSON file ``meta``, ``""`` if there is none."""
    meta = Path(meta)
    return json.loads(meta.read_text()).get("cache_key", "") if meta.exists() else ""


def train_or_load(out_dir, key: str, train, load, *, artefact: str, meta: str = "meta.json",
                  stale=()):
    """``(load(), False)`` if ``out_dir/meta`` records ``key`` and ``out_dir/artefact`` exists,
    else ``(train(), True)``; ``train()`` writes the artefact and a ``meta`` with the key. When
    ``meta`` records another key (or none), the artefact and ``stale`` (glob patterns under
    ``out_dir``) are deleted first; with the same key, an unfinished run is left to resume."""
    out = Path(out_dir)
    old = saved_key(out / meta)
    if old == key and (out / artefact).exists():
        return load(), False
    if old != key:
        for p in [q for pattern in (artefact, *stale) for q in out.glob(pattern)]:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return train(), True


def write_atomic(path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, rename it onto ``path``: a kill
    never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
