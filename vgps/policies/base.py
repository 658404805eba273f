"""The black-box policy protocol (docs/design.md) and the checks steering applies to every policy.

A policy maps an observation batch and instructions to ``K`` sampled raw-scale actions per
observation, ``[B, K, 7]``, with one explicit jax PRNG key per row (:func:`row_keys`): row ``i``'s
samples depend on row ``i``'s observation, instruction and key only, never on the other rows, so
an episode's trajectory does not depend on the batch it is stepped in. Steering never touches the
policy's weights.
"""
from __future__ import annotations

from functools import partial
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

ACTION_DIM = 7


@runtime_checkable
class Policy(Protocol):
    """``sample_actions(observations, instructions, num_samples, rng) -> float32[B, K, 7]``;
    ``rng``: one PRNG key per row (raw ``uint32[B, 2]`` or a typed key array ``[B]``)."""
    name: str

    def reset(self, batch_size: int) -> None: ...

    def sample_actions(self, observations: dict, instructions: list[str], num_samples: int,
                       rng: jax.Array) -> np.ndarray: ...


class PolicyOutputError(ValueError):
    """A policy returned actions of the wrong shape or with non-finite values."""


def batch_size_of(observations: dict) -> int:
    """Leading dimension shared by every array in ``observations`` (``{"state": [B,S], ...}``)."""
    sizes = {k: np.shape(v)[0] for k, v in observations.items() if np.ndim(v) > 0}
    if not sizes:
        raise ValueError("observations must hold at least one batched array, e.g. {'state': [B, S]}")
    if len(set(sizes.values())) != 1:
        raise ValueError(f"observation arrays disagree on the batch size: {sizes}")
    return next(iter(sizes.values()))


def validate_actions(actions, batch_size: int, num_samples: int, name: str = "policy") -> np.ndarray:
    """Return ``actions`` as float32 ``[B, K, 7]`` or raise :class:`PolicyOutputError`."""
    a = np.asarray(actions, dtype=np.float32)
    want = (batch_size, num_samples, ACTION_DIM)
    if a.shape != want:
        hint = ""
        if a.ndim == 3 and a.shape[:2] == want[:2]:
            hint = f" (action size {a.shape[-1]}, expected {ACTION_DIM}: [dx,dy,dz,droll,dpitch,dyaw,gripper])"
        raise PolicyOutputError(f"{name}.sample_actions returned shape {a.shape}, expected "
                                f"[B, K, 7] = {want}{hint}")
    bad = ~np.isfinite(a)
    if bad.any():
        b, k, d = np.argwhere(bad)[0]
        raise PolicyOutputError(f"{name}.sample_actions returned {int(bad.sum())} non-finite values "
                                f"(NaN/Inf), first at batch {b}, sample {k}, dim {d}")
    return a


def row_keys(rng, batch_size: int, name: str = "policy") -> jax.Array:
    """``rng`` checked to hold one PRNG key per row: raw keys ``uint32[B, 2]`` (e.g.
    ``jax.random.split(key, B)``) or a typed key array ``[B]`` (``jax.random.key``); returned as a
    jax array. A single key is refused, not split: its split would depend on ``B``, and with it
    each row's samples on the batch. Sample row by row with ``jax.vmap`` over these keys."""
    try:
        keys = jnp.asarray(rng)
    except TypeError as e:
        raise ValueError(f"{name}: rng must be PRNG keys, got {type(rng).__name__}") from e
    typed = jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
    if not typed and keys.dtype != jnp.uint32:
        raise ValueError(f"{name}: rng must be PRNG keys (uint32[B, 2] or a typed key array), "
                         f"got dtype {keys.dtype}")
    row_ndim = 1 if typed else 2                    # a raw key is itself a [2] array
    n = keys.shape[0] if keys.ndim >= row_ndim else 1
    if keys.ndim != row_ndim or n != batch_size:
        raise ValueError(f"{name}: rng must hold one PRNG key per row ([B, 2] uint32, e.g. "
                         f"jax.random.split(key, B), or a [B] key array), got {n} key"
                         f"{'' if n == 1 else 's'} of shape {tuple(keys.shape)} for {batch_size} rows")
    return keys


def raw_keys(rng, batch_size: int, name: str = "policy") -> np.ndarray:
    """:func:`row_keys` as raw ``uint32[B, 2]`` numpy keys (typed key arrays unwrapped): the form
    keys take across processes and frameworks (:mod:`vgps_server`)."""
    keys = row_keys(rng, batch_size, name)
    if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        keys = jax.random.key_data(keys)
    return np.asarray(keys, np.uint32)


@partial(jax.jit, static_argnums=1)
def split_rows(keys: jax.Array, num: int) -> jax.Array:
    """``num`` sub-keys of each row's key: ``[B, num]`` keys (row ``i``'s from key ``i`` alone)."""
    return jax.vmap(lambda k: jax.random.split(k, num))(keys)


def check_sampling_args(num_samples: int) -> None:
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"number of samples K must be an integer >= 1, got {num_samples!r}")


def sampling_keys(name: str, observations: dict, instructions, num_samples: int, rng) -> jax.Array:
    """The checks of ``sample_actions`` (K, one instruction per row) and its per-row keys."""
    check_sampling_args(num_samples)
    b = batch_size_of(observations)
    if len(instructions) != b:
        raise ValueError(f"{name}: {len(instructions)} instructions for a batch of {b}")
    return row_keys(rng, b, name)


@partial(jax.jit, static_argnums=1)
def _uniform_rows(keys, k):
    return jax.vmap(lambda key: jax.random.uniform(key, (k, ACTION_DIM)))(keys)


class RandomPolicy:
    """Uniform actions in per-dimension bounds (paper App. J's "random policy"); gripper in {0, 1}."""

    def __init__(self, low=None, high=None, name: str = "random"):
        self.name = name
        self.low = np.asarray(low if low is not None else [-0.02] * 3 + [-0.1] * 3 + [0.0], np.float32)
        self.high = np.asarray(high if high is not None else [0.02] * 3 + [0.1] * 3 + [1.0], np.float32)

    def reset(self, batch_size: int) -> None:
        pass

    def sample_actions(self, observations, instructions, num_samples, rng):
        check_sampling_args(num_samples)
        keys = row_keys(rng, batch_size_of(observations), self.name)
        u = np.asarray(_uniform_rows(keys, int(num_samples)), np.float32)
        a = self.low + u * (self.high - self.low)
        a[..., -1] = (u[..., -1] > 0.5).astype(np.float32)
        return a
