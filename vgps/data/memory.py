"""In-memory transition store and seeded weighted mixing (state-based and small image datasets).

A :class:`TransitionStore` keeps every step of a dataset once, in flat numpy arrays; the next
observation of row ``i`` is row ``next_index[i]``, so frames are not duplicated.
:class:`MixtureSampler` draws batches: batch ``step`` depends only on ``(seed, step)`` (a fresh
``np.random.Generator`` per step), so a resumed run sees exactly the batches it would have seen.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vgps.data.labels import label_episode


class TransitionStore:
    """All transitions of one dataset. Arrays have a leading ``N`` (number of steps)."""

    def __init__(self, episodes: Iterable[dict], cfg, *, keys=("state", "image"),
                 name: str = "dataset"):
        obs = {k: [] for k in keys}
        cols = {k: [] for k in ("actions", "rewards", "masks", "mc_returns", "next_index",
                                "lang_id", "episode")}
        self.instructions: list[str] = []
        lang_ids: dict[str, int] = {}
        offset = 0
        for e, ep in enumerate(episodes):
            T = len(ep["action"])
            lab = label_episode(ep, cfg)
            for k in keys:
                if k not in ep["observation"]:
                    raise KeyError(f"{name}, episode {e}: no observation[{k!r}] "
                                   f"(has {sorted(ep['observation'])})")
                obs[k].append(np.asarray(ep["observation"][k]))
            lid = lang_ids.setdefault(ep["instruction"], len(lang_ids))
            if lid == len(self.instructions):
                self.instructions.append(ep["instruction"])
            cols["actions"].append(np.asarray(ep["action"], np.float32))
            for k in ("rewards", "masks", "mc_returns"):
                cols[k].append(lab[k])
            cols["next_index"].append(lab["next_index"] + offset)
            cols["lang_id"].append(np.full(T, lid, np.int32))
            cols["episode"].append(np.full(T, e, np.int32))
            offset += T
        if offset == 0:
            raise ValueError(f"{name}: no transitions (empty dataset)")
        self.name = name
        self.obs = {k: np.concatenate(v) for k, v in obs.items()}
        for k, v in cols.items():
            setattr(self, k, np.concatenate(v))
        self.num_episodes = int(self.episode[-1]) + 1

    def __len__(self) -> int:
        return len(self.actions)

    def gather(self, idx: np.ndarray) -> dict:
        """Raw transitions at rows ``idx`` (actions unnormalized, ``lang_id`` instead of language)."""
        nxt = self.next_index[idx]
        return {"observations": {k: v[idx] for k, v in self.obs.items()},
                "next_observations": {k: v[nxt] for k, v in self.obs.items()},
                "actions": self.actions[idx], "rewards": self.rewards[idx],
                "masks": self.masks[idx], "mc_returns": self.mc_returns[idx],
                "lang_id": self.lang_id[idx]}


class MixtureSampler:
    """Weighted, seeded batches from several stores, in the batch format of docs/design.md.

    ``sample(step)``: each row picks a dataset with probability ∝ ``weights``, then a uniform
    transition in it; actions are normalized with ``normalizer``; ``language`` rows come from
    ``encoder`` (one embedding per unique instruction). With ``augment`` (a DataConfig), images
    get the seeded crop + colour jitter of :mod:`vgps.data.augment` (same size out).
    """

    def __init__(self, stores: list[TransitionStore], weights, *, batch_size: int, seed: int,
                 normalizer, encoder, augment=None):
        w = np.asarray(weights, np.float64)
        if len(stores) != len(w) or len(w) == 0 or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"need one non-negative weight per dataset, got {weights} for "
                             f"{len(stores)} datasets")
        self.stores, self.p = stores, w / w.sum()
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.normalizer, self.augment = normalizer, augment
        for k in ("state", "image"):
            shapes = {s.obs[k].shape[1:] for s in stores if k in s.obs}
            if len(shapes) > 1:
                raise ValueError(f"cannot mix datasets with different {k} shapes {sorted(shapes)}; "
                                 "load images at one image_size")
        self.embeddings = [encoder.encode(s.instructions) for s in stores]

    def indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(dataset id int[B], row int[B]) of batch ``step``."""
        rng = np.random.default_rng([self.seed, int(step)])
        which = rng.choice(len(self.stores), size=self.batch_size, p=self.p)
        u = rng.random(self.batch_size)
        sizes = np.array([len(s) for s in self.stores])
        return which, np.minimum((u * sizes[which]).astype(np.int64), sizes[which] - 1)

    def sample(self, step: int) -> dict:
        which, rows = self.indices(step)
        parts = []
        for d, store in enumerate(self.stores):
            sel = np.flatnonzero(which == d)
            if len(sel):
                part = store.gather(rows[sel])
                part["language"] = self.embeddings[d][part.pop("lang_id")]
                parts.append((sel, part))
        batch = _scatter(parts, self.batch_size)
        batch["actions"] = self.normalizer.normalize(batch["actions"])
        if "image" in batch["observations"] and self.augment is not None:
            from vgps.data.augment import augment_numpy
            o, n = augment_numpy([batch["observations"]["image"],
                                  batch["next_observations"]["image"]],
                                 (self.seed, int(step)), self.augment)
            batch["observations"]["image"], batch["next_observations"]["image"] = o, n
        return batch

    def __iter__(self):
        step = 0
        while True:
            yield self.sample(step)
            step += 1


def _scatter(parts: list, n: int) -> dict:
    """Merge per-dataset sub-batches back into batch order (rows ``sel`` of each part)."""
    sel0, first = parts[0]

    def alloc(x):
        return np.empty((n, *x.shape[1:]), x.dtype)

    def fill(dst, src_tree, sel):
        for k, v in src_tree.items():
            if isinstance(v, dict):
                fill(dst[k], v, sel)
            else:
                dst[k][sel] = v

    def build(t):
        return {k: build(v) if isinstance(v, dict) else alloc(v) for k, v in t.items()}
    out = build(first)
    for sel, part in parts:
        fill(out, part, sel)
    return out
