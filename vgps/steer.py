"""V-GPS test-time action re-ranking (paper §5.2, Algorithm 1, App. B.2 and J).

``ValueGuidedPolicy`` wraps any black-box :class:`~vgps.policies.base.Policy` and a critic with the
API of docs/design.md. Per step and per environment: sample K raw actions, normalize them with the
critic's OWN normalizer object (``critic.normalizer``, never re-derived), encode the observation
once (``critic.encode``), score all K with ``critic.q_from_embedding`` (min over the ensemble), then
pick ``argmax`` (β = 0) or draw from ``softmax(Q / β)``. Everything is batched over B environments,
with one PRNG key per environment (row): row ``i``'s proposals and its softmax draw come from key
``i`` alone, so an environment's actions do not depend on the others in the batch.

Modes (first-class baselines): ``"vgps"``; ``"policy"`` (the policy alone, one sample);
``"random_select"`` (K samples, uniform pick; App. J); ``"random_policy"`` (uniform random
proposals scored by the critic; App. J).
"""
from __future__ import annotations

import numbers
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from vgps.policies.base import (ACTION_DIM, PolicyOutputError, RandomPolicy, batch_size_of,
                                check_sampling_args, row_keys, split_rows, validate_actions)

MODES = ("vgps", "policy", "random_select", "random_policy")


@jax.jit
def select_index(q: jax.Array, beta: jax.Array, rng: jax.Array) -> jax.Array:
    """``q [B, K]`` → chosen index ``[B]``: argmax when ``beta == 0``, else a softmax(q/β) draw,
    row ``i``'s with key ``rng[i]`` (``rng``: one key per row, see
    :func:`~vgps.policies.base.row_keys`)."""
    greedy = jnp.argmax(q, axis=-1)
    safe_beta = jnp.where(beta > 0, beta, 1.0)
    drawn = jax.vmap(lambda k, logits: jax.random.categorical(k, logits))(rng, q / safe_beta)
    return jnp.where(beta > 0, drawn, greedy)


@partial(jax.jit, static_argnums=1)
def _uniform_index(rng: jax.Array, k: int) -> jax.Array:
    """A uniform index in ``[0, k)`` per row, row ``i``'s from key ``rng[i]``."""
    return jax.vmap(lambda key: jax.random.randint(key, (), 0, k))(rng)


def _check_beta(beta) -> float:
    """``beta`` as a float: any real scalar (python, numpy, 0-d array) that is finite and >= 0."""
    try:
        a = np.asarray(beta)
    except ValueError:                       # ragged sequences
        a = None
    real = (a is not None and a.ndim == 0       # bools have dtype kind "b" and are refused
            and (a.dtype.kind in "iuf" or (a.dtype == object and isinstance(beta, numbers.Real))))
    if not real:
        raise ValueError(f"temperature beta must be one real number (a python or numpy scalar or a "
                         f"0-d array), got {beta!r} of type {type(beta).__name__}")
    b = float(a)
    if not np.isfinite(b) or b < 0:
        raise ValueError(f"temperature beta must be a finite number >= 0 (0 = greedy), got {beta!r}")
    return b


def _check_instructions(instructions) -> None:
    if isinstance(instructions, str):        # a str would be iterated as one instruction per char
        raise TypeError(f"instructions must be a list of strings, one per environment, got the str "
                        f"{instructions!r}; for one environment pass [{instructions!r}]")


@jax.jit
def _min_over_ensemble(q_ebk: jax.Array) -> jax.Array:
    return jnp.min(q_ebk, axis=0)


class ValueGuidedPolicy:
    """Steer ``policy`` with ``critic``.

    Args:
        policy: any object with ``sample_actions(obs, instructions, K, rng) -> [B, K, 7]``
            (``rng``: one PRNG key per row, docs/design.md).
        critic: ``normalizer``, ``encode(obs, lang[B,D]) -> [B,Z]``,
            ``q_from_embedding(z, actions_norm[B,K,7]) -> [E,B,K]`` (or only ``score``). Not needed
            for ``mode="policy"`` / ``"random_select"``.
        K: candidates per step (>= 1). beta: temperature (>= 0; 0 = greedy).
        language_encoder: ``encode(list[str]) -> [N, D]``; each instruction embedded once and cached.
        exec_horizon: for chunked policies (``sample_chunks -> [B,K,H,7]``), execute the chosen
            chunk open loop for this many steps (the chunk is scored by its first action).
        reencode: score by re-running the critic's encoder K times (the paper's released code;
            only for the overhead benchmark).
    """

    def __init__(self, policy, critic=None, K: int = 10, beta: float = 1.0, mode: str = "vgps",
                 language_encoder=None, exec_horizon: int = 1, reencode: bool = False,
                 random_low=None, random_high=None):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if isinstance(K, bool):              # an int subclass: K=True would silently mean K=1
            raise ValueError(f"number of samples K must be an integer >= 1, got {K!r}")
        check_sampling_args(K)
        beta = _check_beta(beta)
        if mode in ("vgps", "random_policy") and critic is None:
            raise ValueError(f"mode {mode!r} needs a critic")
        if exec_horizon < 1:
            raise ValueError(f"exec_horizon must be >= 1, got {exec_horizon}")
        if mode == "random_policy":
            policy = RandomPolicy(random_low, random_high)
        self.policy, self.critic, self.mode = policy, critic, mode
        self.K, self.beta = int(K), float(beta)
        self.language_encoder = language_encoder
        self.exec_horizon, self.reencode = int(exec_horizon), reencode
        self.name = f"{getattr(policy, 'name', 'policy')}+{mode}"
        self._lang_cache: dict[str, np.ndarray] = {}
        self._chunk = None
        self._chunk_step = 0

    @property
    def normalizer(self):
        """The critic's own normalizer object (identity, never a copy)."""
        return self.critic.normalizer

    def reset(self, batch_size: int) -> None:
        self.policy.reset(batch_size)
        self._chunk, self._chunk_step = None, 0

    # -- language -------------------------------------------------------------------------------
    def embed(self, instructions: list[str]) -> np.ndarray:
        """``[B, D]`` instruction embeddings, each unique string encoded once per policy lifetime."""
        _check_instructions(instructions)
        missing = sorted({s for s in instructions if s not in self._lang_cache})
        if missing:
            if self.language_encoder is None:
                raise ValueError("ValueGuidedPolicy needs language_encoder= to embed instructions")
            emb = np.asarray(self.language_encoder.encode(missing), np.float32)
            self._lang_cache.update(zip(missing, emb))
        return np.stack([self._lang_cache[s] for s in instructions])

    # -- scoring --------------------------------------------------------------------------------
    def _splits_encoder(self) -> bool:
        return hasattr(self.critic, "encode") and hasattr(self.critic, "q_from_embedding")

    def embedding(self, observations: dict, instructions: list[str]):
        """The critic's ``z [B, Z]`` for this step, or None when the critic has no separate
        encoder (or ``reencode``). Under JAX the call is dispatched asynchronously, so issuing it
        before the policy samples lets the encoder run while the policy computes."""
        if self.reencode or not self._splits_encoder():
            return None
        return self.critic.encode(observations, self.embed(instructions))

    def score(self, observations: dict, instructions: list[str], raw_actions: np.ndarray,
              z=None) -> np.ndarray:
        """Q of raw candidates ``[B, K, 7]`` → ``[B, K]`` (min over ensemble, critic's normalizer).
        ``z``: this step's :meth:`embedding`, if already computed."""
        lang = self.embed(instructions)
        c = self.critic
        if not self._splits_encoder():
            return np.asarray(c.score(observations, lang, raw_actions), np.float32)
        a_norm = np.asarray(c.normalizer.normalize(raw_actions), np.float32)
        b, k = a_norm.shape[:2]
        if self.reencode:        # the released code's cost model: encoder runs once per candidate
            tiled = {key: np.repeat(np.asarray(v), k, axis=0) for key, v in observations.items()}
            z = c.encode(tiled, np.repeat(lang, k, axis=0))
            q = c.q_from_embedding(z, a_norm.reshape(b * k, 1, ACTION_DIM))
            return np.asarray(_min_over_ensemble(q)).reshape(b, k)
        if z is None:
            z = c.encode(observations, lang)                   # once per observation
        return np.asarray(_min_over_ensemble(c.q_from_embedding(z, a_norm)))

    # -- acting ---------------------------------------------------------------------------------
    def _propose(self, observations, instructions, k, rng):
        b = batch_size_of(observations)
        name = getattr(self.policy, "name", type(self.policy).__name__)
        if self.exec_horizon > 1 and hasattr(self.policy, "sample_chunks"):
            chunks = np.asarray(self.policy.sample_chunks(observations, instructions, k, rng), np.float32)
            if (chunks.ndim != 4 or chunks.shape[:2] != (b, k) or chunks.shape[2] < 1
                    or chunks.shape[3] != ACTION_DIM):
                raise PolicyOutputError(f"{name}.sample_chunks returned shape {chunks.shape}, expected "
                                        f"[B, K, H, 7] with B={b}, K={k}, H >= 1")
            bad = ~np.isfinite(chunks)               # every step is executed, so check every step
            if bad.any():
                i, j, h, d = np.argwhere(bad)[0]
                raise PolicyOutputError(f"{name}.sample_chunks returned {int(bad.sum())} non-finite "
                                        f"values (NaN/Inf), first at batch {i}, sample {j}, step {h}, "
                                        f"dim {d}")
            return chunks
        acts = self.policy.sample_actions(observations, instructions, k, rng)
        return validate_actions(acts, b, k, name)[:, :, None]            # [B, K, 1, 7]

    def act(self, observations: dict, instructions: list[str], rng: jax.Array):
        """One control step for B environments → ``(actions float32[B, 7], info)``.

        ``rng``: one PRNG key per environment (``uint32[B, 2]``, e.g. ``jax.random.split(key, B)``,
        or a typed key array ``[B]``); environment ``i``'s proposals and draw use key ``i`` only.
        ``info``: ``candidates [B,K,7]``, ``q [B,K]`` (NaN when not scored), ``index [B]``,
        ``replanned`` (False while a chosen chunk is being executed open loop).
        """
        _check_instructions(instructions)
        keys = row_keys(rng, batch_size_of(observations), self.name)
        if self._chunk is not None and self._chunk_step < min(self.exec_horizon, self._chunk.shape[1]):
            a = self._chunk[:, self._chunk_step]
            self._chunk_step += 1
            return a, {"replanned": False}
        sub = split_rows(keys, 2)
        rng_pol, rng_sel = sub[:, 0], sub[:, 1]
        k = 1 if self.mode == "policy" else self.K
        scored = self.mode in ("vgps", "random_policy")
        z = self.embedding(observations, instructions) if scored else None  # overlaps the policy
        chunks = self._propose(observations, instructions, k, rng_pol)    # [B, K, H, 7]
        cand = chunks[:, :, 0]
        b = cand.shape[0]
        q = np.full((b, k), np.nan, np.float32)
        if self.mode == "policy":
            idx = np.zeros(b, np.int32)
        elif self.mode == "random_select":
            idx = np.asarray(_uniform_index(rng_sel, k), np.int32)
        else:
            q = self.score(observations, instructions, cand, z=z)
            if q.shape != (b, k) or not np.all(np.isfinite(q)):
                raise ValueError(f"critic returned Q of shape {q.shape} (expected {(b, k)}) "
                                 f"or non-finite values")
            idx = np.asarray(select_index(jnp.asarray(q), jnp.float32(self.beta), rng_sel), np.int32)
        chosen = chunks[np.arange(b), idx]                                 # [B, H, 7]
        self._chunk, self._chunk_step = chosen, 1
        action = chosen[:, 0].copy()
        select = getattr(self.policy, "select", None)     # a stateful policy takes the choice back
        executed = select(idx) if select is not None else None
        if executed is not None:                           # and may execute its own action for it
            action = validate_actions(np.asarray(executed)[:, None], b, 1,
                                      f"{getattr(self.policy, 'name', 'policy')}.select")[:, 0]
        return action, {"candidates": cand, "q": q, "index": idx, "replanned": True}

    def sample_actions(self, observations, instructions, num_samples, rng):
        """Protocol view: ``num_samples`` independent steered choices ``[B, num_samples, 7]``
        (``rng``: one key per row; choice ``j`` of row ``i`` uses the ``j``-th split of key ``i``)."""
        keys = split_rows(row_keys(rng, batch_size_of(observations), self.name), int(num_samples))
        saved = (self._chunk, self._chunk_step)
        out = []
        for j in range(int(num_samples)):
            self._chunk = None
            out.append(self.act(observations, instructions, keys[:, j])[0])
        self._chunk, self._chunk_step = saved
        return np.stack(out, axis=1)
