"""Mean/std normalizers for actions and states, saved as ``dataset_statistics.json``.

One object per dataset (or per mixture) is fitted once, cached under the artifacts directory
(``vgps.data.loader.dataset_statistics``, never inside the dataset) and saved inside each critic
checkpoint, and used unchanged at training and at evaluation time. Dimensions where
``mask`` is False (the gripper, action dim 6) pass through untouched.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

STATS_FILE = "dataset_statistics.json"
_EPS = 1e-6


def first_nonfinite(x) -> int | None:
    """Index of the first row of ``x [T, ...]`` holding a NaN or inf, or None if all are finite."""
    fin = np.isfinite(np.asarray(x))
    bad = ~fin.all(axis=tuple(range(1, fin.ndim)))
    return int(np.argmax(bad)) if bad.any() else None


def check_finite(x, what: str, where: str, unit: str = "step") -> None:
    """Raise ``ValueError("<where> <unit> <t>: non-finite <what> [...]")`` at the first bad row."""
    t = first_nonfinite(x)
    if t is not None:
        raise ValueError(f"{where} {unit} {t}: non-finite {what} {np.asarray(x)[t].tolist()}; "
                         "normalization statistics need finite data (fix or drop the episode)")


class Normalizer:
    """``(x - mean) / std`` on the masked dims of ``[..., D]`` arrays; identity elsewhere."""

    kind = "generic"

    def __init__(self, mean, std, mask=None):
        self.mean = np.asarray(mean, np.float32)
        self.std = np.maximum(np.asarray(std, np.float32), _EPS)
        self.mask = (self.default_mask(self.mean.shape[-1]) if mask is None
                     else np.asarray(mask, bool))
        if not (self.mean.shape == self.std.shape == self.mask.shape) or self.mean.ndim != 1:
            raise ValueError(f"mean/std/mask must be 1-D of equal size, got {self.mean.shape}, "
                             f"{self.std.shape}, {self.mask.shape}")

    @classmethod
    def default_mask(cls, dim: int) -> np.ndarray:
        return np.ones(dim, bool)

    @classmethod
    def fit(cls, x, mask=None):
        """Fit on float[N, D] (float64 accumulation)."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"fit needs a non-empty [N, D] array, got shape {x.shape}")
        check_finite(x, "values", f"{cls.__name__}.fit input", unit="row")
        mask = cls.default_mask(x.shape[1]) if mask is None else mask
        return cls(x.mean(0), x.std(0), mask)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def _check(self, x):
        x = np.asarray(x, np.float32)
        if x.shape[-1] != self.dim:
            raise ValueError(f"{type(self).__name__}: expected [..., {self.dim}], got {x.shape}")
        return x

    def normalize(self, x) -> np.ndarray:
        x = self._check(x)
        return np.where(self.mask, (x - self.mean) / self.std, x).astype(np.float32)

    def unnormalize(self, x) -> np.ndarray:
        x = self._check(x)
        return np.where(self.mask, x * self.std + self.mean, x).astype(np.float32)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "mask": self.mask.tolist()}

    @classmethod
    def from_dict(cls, d: dict):
        return cls(d["mean"], d["std"], d["mask"])

    def __eq__(self, other) -> bool:
        return (type(self) is type(other) and np.array_equal(self.mean, other.mean)
                and np.array_equal(self.std, other.std) and np.array_equal(self.mask, other.mask))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, normalized={int(self.mask.sum())})"


class ActionNormalizer(Normalizer):
    """7-D Bridge actions: dims 0–5 standardised, gripper (dim 6, in {0, 1}) left as is."""

    kind = "action"

    @classmethod
    def default_mask(cls, dim: int) -> np.ndarray:
        m = np.ones(dim, bool)
        m[-1] = False
        return m


class StateNormalizer(Normalizer):
    kind = "state"


def save_statistics(path: str | Path, action: ActionNormalizer,
                    state: StateNormalizer | None = None, extra: dict | None = None) -> Path:
    """Write ``{"action": ..., "state": ..., **extra}`` as JSON. ``path`` may be a directory."""
    p = Path(path)
    if p.is_dir():
        p = p / STATS_FILE
    d = {"action": action.to_dict(), **({"state": state.to_dict()} if state else {}),
         **(extra or {})}
    tmp = p.with_name(f"{p.name}.{os.getpid()}.tmp")   # atomic: a kill never leaves half a file
    try:
        tmp.write_text(json.dumps(d, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p


def load_statistics(path: str | Path) -> tuple[ActionNormalizer, StateNormalizer | None]:
    """Read a ``dataset_statistics.json`` (or the directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / STATS_FILE
    if not p.exists():
        raise FileNotFoundError(f"no normalization statistics at {p}")
    d = json.loads(p.read_text())
    state = StateNormalizer.from_dict(d["state"]) if "state" in d else None
    return ActionNormalizer.from_dict(d["action"]), state


def fit_statistics(episodes, cache_dir: str | Path | None = None, refit: bool = False
                   ) -> tuple[ActionNormalizer, StateNormalizer | None]:
    """Fit on all steps of ``episodes`` (an iterable of episode dicts), or load the cached JSON.

    With ``cache_dir`` (a directory of the caller's, e.g. under ``artifacts/``; not a dataset
    directory) the result is saved there the first time and read back afterwards.
    """
    if cache_dir is not None and not refit and (Path(cache_dir) / STATS_FILE).exists():
        try:
            return load_statistics(cache_dir)
        except (ValueError, KeyError, TypeError) as e:    # e.g. truncated JSON
            warnings.warn(f"{Path(cache_dir) / STATS_FILE}: unreadable statistics cache "
                          f"({type(e).__name__}: {e}); recomputing", stacklevel=2)
    acts, states = [], []
    for i, ep in enumerate(episodes):
        acts.append(np.asarray(ep["action"], np.float32))
        check_finite(acts[-1], "action", f"episode {i}")
        if "state" in ep["observation"]:
            states.append(np.asarray(ep["observation"]["state"], np.float32))
            check_finite(states[-1], "state", f"episode {i}")
    if not acts:
        raise ValueError("cannot fit normalization statistics on an empty dataset")
    a = ActionNormalizer.fit(np.concatenate(acts))
    s = StateNormalizer.fit(np.concatenate(states)) if states else None
    if cache_dir is not None:
        try:
            save_statistics(Path(cache_dir) / STATS_FILE, a, s,
                            {"num_transitions": int(sum(len(x) for x in acts))})
        except OSError:      # read-only cache directory: recompute next time
            pass
    return a, s


def pool(normalizers: list, counts: list[int]):
    """One normalizer for a mixture: pooled mean/std of several fitted on ``counts`` samples each."""
    if not normalizers or len(normalizers) != len(counts):
        raise ValueError("pool needs one count per normalizer")
    n = np.asarray(counts, np.float64)
    means = np.stack([x.mean for x in normalizers]).astype(np.float64)
    var = np.stack([x.std for x in normalizers]).astype(np.float64) ** 2
    mean = (n[:, None] * means).sum(0) / n.sum()
    pooled_var = (n[:, None] * (var + (means - mean) ** 2)).sum(0) / n.sum()
    return type(normalizers[0])(mean, np.sqrt(pooled_var), normalizers[0].mask)
