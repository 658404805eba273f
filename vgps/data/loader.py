"""``load_training_data``: the one entry point the critic and BC trainers call.

It resolves the datasets, fits (or reads the cached, under ``artifacts/_cache/statistics/``)
per-dataset statistics, pools them into ONE action normalizer (and one state normalizer) for the
mixture, embeds every instruction once, and returns a :class:`TrainingData` whose ``sample(step)`` gives batches in the
docs/design.md format from either backend:

- ``"memory"``: :class:`vgps.data.memory.MixtureSampler` (random access: batch ``step`` depends
  only on ``(seed, step)``);
- ``"tfdata"``: :func:`vgps.data.pipeline.make_tf_dataset` (streaming; ``sample`` must be called
  with consecutive steps, a jump re-creates the stream and skips ahead, still deterministic).
``"auto"`` picks ``memory`` unless image frames would exceed ``memory_limit_gb``.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgps import artifacts
from vgps.data.labels import label_config
from vgps.data.normalize import ActionNormalizer, StateNormalizer, check_finite, pool, save_statistics
from vgps.data.rlds import describe, iter_episodes, iter_indexed_episodes


def statistics_cache_path(d: Path, split: str, fingerprint: str) -> Path:
    """``artifacts/_cache/statistics/<dataset>-<version>-<fingerprint>-<split>.json``: where
    :func:`dataset_statistics` caches a split's statistics. Never inside the dataset directory,
    which may be read-only or someone else's (the real Bridge episodes under ``../shared``)."""
    from vgps.paths import cache_dir
    d = Path(d)
    return cache_dir("statistics") / f"{d.parent.name}-{d.name}-{fingerprint}-{split}.json"


def dataset_statistics(path, split: str = "train", refit: bool = False) -> dict:
    """Per-dataset statistics, computed once (images not decoded) and cached under the artifacts
    directory (:func:`statistics_cache_path`); nothing is written into the dataset directory.

    The cache is keyed by the data's :func:`vgps.artifacts.fingerprint` (and records it), so
    statistics never outlive the data they were fitted on; an unreadable (e.g. truncated) cache
    file is rebuilt with a warning. Returns {action: ActionNormalizer, state: StateNormalizer|None,
    instructions: [str], num_transitions, num_episodes, layout}.
    """
    info = describe(path)
    d = info["dir"]
    fingerprint = artifacts.fingerprint(d)
    f = statistics_cache_path(d, split, fingerprint)
    if not refit:
        cached = _read_cached(f, split, fingerprint, info["layout"])
        if cached is not None:
            return cached
    acts, states, instr, n_ep = [], [], {}, 0
    for i, ep in iter_indexed_episodes(d, split=split, keys=("state",),
                                       skip_missing_instruction=True):
        where = f"{d} [{split}] episode {i}"     # one NaN would poison the pooled normalizer
        check_finite(ep["action"], "action", where)
        acts.append(ep["action"])
        if "state" in ep["observation"]:
            check_finite(ep["observation"]["state"], "state", where)
            states.append(ep["observation"]["state"])
        instr.setdefault(ep["instruction"], None)
        n_ep += 1
    if not acts:
        raise ValueError(f"{d}: split {split!r} has no episodes with an instruction")
    a, s = ActionNormalizer.fit(np.concatenate(acts)), None
    if states:
        s = StateNormalizer.fit(np.concatenate(states))
    extra = {"split": split, "instructions": sorted(instr), "num_episodes": n_ep,
             "num_transitions": int(sum(len(x) for x in acts))}
    try:       # atomic (temporary file, then rename): a kill never leaves half a cache file
        save_statistics(f, a, s, {**extra, "fingerprint": fingerprint})
    except OSError as e:
        warnings.warn(f"{f}: cannot cache the statistics of {d} ({e}); recomputed next time",
                      stacklevel=2)
    return {"action": a, "state": s, "layout": info["layout"], **extra}


def _read_cached(f: Path, split: str, fingerprint: str, layout: str) -> dict | None:
    """The statistics cached in ``f`` if they were fitted on this split of these data, else None
    (with a warning naming ``f`` when it cannot be parsed, e.g. a truncated write)."""
    if not f.exists():
        return None
    try:
        raw = json.loads(f.read_text())
        if not (raw.get("split") == split and "instructions" in raw
                and raw.get("fingerprint") == fingerprint):
            return None
        stats = _stats_from_json(raw, layout)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        warnings.warn(f"{f}: unreadable statistics cache ({type(e).__name__}: {e}); "
                      "recomputing the statistics", stacklevel=3)
        return None
    norms = [n for n in (stats["action"], stats["state"]) if n is not None]
    if not all(np.isfinite(n.mean).all() and np.isfinite(n.std).all() for n in norms):
        return None   # fitted on non-finite data before they were rejected; refit names them
    return stats


def _stats_from_json(raw: dict, layout: str) -> dict:
    return {"action": ActionNormalizer.from_dict(raw["action"]),
            "state": StateNormalizer.from_dict(raw["state"]) if "state" in raw else None,
            "layout": layout, **{k: raw[k] for k in ("split", "instructions", "num_episodes",
                                                      "num_transitions")}}


@dataclass
class TrainingData:
    """What trainers get. ``sample(step) -> batch``; iterate for consecutive batches."""
    backend: str
    normalizer: ActionNormalizer
    state_normalizer: StateNormalizer | None
    instructions: list[str]
    weights: np.ndarray
    num_transitions: list[int]
    dataset_dirs: list[Path]
    labels: dict = field(default_factory=dict)   # reward-labelling config (labels.label_config)
    _sampler: object = field(repr=False, default=None)
    _make_tf: object = field(repr=False, default=None)
    _it: object = field(repr=False, default=None)
    _next_step: int = 0

    def sample(self, step: int) -> dict:
        if self.backend == "memory":
            return self._sampler.sample(step)
        if self._it is None or step != self._next_step:
            self._it = self._make_tf().skip(step).as_numpy_iterator()
        self._next_step = step + 1
        return next(self._it)

    def __iter__(self):
        step = 0
        while True:
            yield self.sample(step)
            step += 1


def mix_weights(dirs, weights, cfg) -> np.ndarray:
    """``weights`` checked against ``dirs``, or by default ``cfg.mix_weights`` (a ``DataConfig``)
    by each dataset's detected layout (1.0 for an unlisted one)."""
    if weights is not None:
        w = np.asarray(weights, np.float64)
        if len(w) != len(dirs):
            raise ValueError(f"{len(w)} weights for {len(dirs)} datasets")
        return w
    by_layout = dict(cfg.mix_weights)
    return np.array([by_layout.get(describe(d)["layout"], 1.0) for d in dirs], np.float64)


def load_training_data(dataset_dirs, weights=None, profile=None, encoder=None, *,
                       obs_keys=("state",), batch_size: int | None = None, seed: int = 0,
                       split: str = "train", backend: str = "auto",
                       memory_limit_gb: float = 4.0) -> TrainingData:
    """Mixed, labelled, normalized training batches from RLDS directories.

    ``dataset_dirs``: list of dataset paths (``.../name`` or ``.../name/version``).
    ``weights``: mixing weights (default: ``DataConfig.mix_weights`` by detected layout), times
    each dataset's number of transitions when ``DataConfig.balance_weights`` (the released recipe).
    ``profile``: a :class:`vgps.config.Profile`, a profile name, or a ``DataConfig``.
    ``encoder``: a :class:`LanguageEncoder` (default: the shared one for
    ``DataConfig.language_encoder``). ``obs_keys``: observations in the batch (``("state",)``,
    ``("image",)`` or both). ``batch_size`` defaults to ``profile.critic.batch_size``.
    Images are loaded at ``DataConfig.image_size`` and augmented when ``DataConfig.augment``.
    """
    from vgps.config import DataConfig, get_profile
    from vgps.data.language import get_encoder
    prof = get_profile(profile) if profile is None or isinstance(profile, str) else profile
    cfg = prof if isinstance(prof, DataConfig) else prof.data
    if batch_size is None:
        if isinstance(prof, DataConfig):
            raise ValueError("batch_size is required when a DataConfig is passed")
        batch_size = prof.critic.batch_size
    if isinstance(dataset_dirs, (str, Path)):
        dataset_dirs = [dataset_dirs]
    dirs = [describe(d)["dir"] for d in dataset_dirs]
    w = mix_weights(dirs, weights, cfg)
    stats = [dataset_statistics(d, split) for d in dirs]
    if cfg.balance_weights:       # octo's balance_weights: weight x dataset size
        w = w * np.array([s["num_transitions"] for s in stats], np.float64)
    counts = w / w.sum()          # pool by the sampled mixture, not by raw dataset sizes
    norm = pool([s["action"] for s in stats], counts)
    snorm = (pool([s["state"] for s in stats], counts)
             if all(s["state"] is not None for s in stats)
             and len({s["state"].dim for s in stats}) == 1 else None)
    encoder = encoder or get_encoder(cfg.language_encoder)
    image_size = cfg.image_size if "image" in obs_keys else None
    if backend == "auto":
        frames = sum(s["num_transitions"] for s in stats)
        gb = frames * (image_size or 0) ** 2 * 3 / 1e9
        backend = "memory" if gb <= memory_limit_gb else "tfdata"
    common = dict(backend=backend, normalizer=norm, state_normalizer=snorm, weights=w,
                  num_transitions=[s["num_transitions"] for s in stats], dataset_dirs=dirs,
                  labels=label_config(cfg))
    augment = cfg if (cfg.augment and "image" in obs_keys) else None
    if backend == "memory":
        from vgps.data.memory import MixtureSampler, TransitionStore
        stores = [TransitionStore(iter_episodes(d, split=split, keys=tuple(obs_keys),
                                                image_size=image_size,
                                                skip_missing_instruction=True),
                                  cfg, keys=tuple(obs_keys), name=str(d)) for d in dirs]
        sampler = MixtureSampler(stores, w, batch_size=batch_size, seed=seed, normalizer=norm,
                                 encoder=encoder, augment=augment)
        instr = sorted({s for st in stores for s in st.instructions})
        return TrainingData(instructions=instr, _sampler=sampler, **common)
    if backend != "tfdata":
        raise ValueError(f"backend must be 'auto', 'memory' or 'tfdata', got {backend!r}")
    from vgps.data.pipeline import make_tf_dataset
    instr = sorted({s for st in stats for s in st["instructions"]})
    emb = encoder.encode(instr)
    vocab = {s: i for i, s in enumerate(instr)}

    def make():
        return make_tf_dataset(dirs, w, cfg, batch_size=batch_size, seed=seed, split=split,
                               normalizer=norm, embeddings=emb, vocab=vocab, keys=tuple(obs_keys),
                               image_size=image_size, augment=augment is not None)
    return TrainingData(instructions=instr, _make_tf=make, **common)
