"""Lock-step batched evaluation: N environments stepped together so that every policy and critic
call is batched; per-episode results cached in SQLite keyed by (config, task, seed, episode).

The cache (:class:`EpisodeCache`) is one table whose primary key is :data:`KEY_COLUMNS`; every
lock-step batch is committed in one transaction, concurrent writers wait on SQLite's lock (busy
timeout) instead of overwriting each other, and a kill between or during writes loses at most the
batch being written. Rows are validated on load; an invalid one is warned about (by key) and
recomputed, never used. A store records the :data:`EVAL_PROTOCOL` its episodes were run under;
a store of another protocol, or a legacy CSV cache beside it (written under protocol 1), is refused
with :class:`CacheProtocolError` and left as it is, never mixed with new results.

An *agent* has ``reset(batch_size)`` and ``act(observations, instructions, rng) -> (actions
[B, 7], info)`` — :class:`vgps.steer.ValueGuidedPolicy` in any mode — with ``rng`` one PRNG key
per environment. Every episode has its own key stream, :func:`episode_keys` of its episode seed
folded with the step, so its result is a function of (policy, critic, setting, task, episode
seed) only: any ``num_envs``, any batch layout and any number of processes filling one cache give
the same episodes (:data:`EVAL_PROTOCOL`).
"""
from __future__ import annotations

import math
import sqlite3
import time
import warnings
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from vgps.artifacts import cache_key
from vgps.eval.failures import CATEGORIES, classify

# ``outcome``: the episode's §4 category (vgps.eval.failures.CATEGORIES), from the grasp tracked at
# every step; "" for environments that cannot tell (no ``grasped(source)``, e.g. SIMPLER)
RESULT_COLUMNS = ["task", "embodiment", "policy", "method", "K", "beta", "seed", "episode",
                  "env_seed", "success", "steps", "unstable", "outcome"]
KEY_COLUMNS = ["policy", "method", "K", "beta", "task", "seed", "episode"]   # one episode's identity
_TEXT, _INT, _BOOL = ("task", "embodiment", "policy", "method", "outcome"), \
    ("K", "seed", "episode", "env_seed", "steps"), ("success", "unstable")
_SQL_TYPE = {**dict.fromkeys(_TEXT, "TEXT"), **dict.fromkeys(_INT + _BOOL, "INTEGER"), "beta": "REAL"}
BUSY_TIMEOUT_S = 120.0        # a writer waits this long for another process's transaction
# Which random numbers an episode sees; results of different protocols are never mixed (a store
# records its protocol, cache_path hashes it in). 1: one key per lock-step batch, from its first
# episode's seed (an episode's result depended on num_envs and on the batch it fell in);
# 2: one key stream per episode, episode_keys(env_seed) folded with the step; 3: the random numbers
# of 2, and each episode's §4 outcome stored with it (a protocol-2 store has no such column).
EVAL_PROTOCOL = 3
_PROTOCOLS = {1: "one RNG key per lock-step batch (results depended on num_envs)",
              2: "one RNG stream per episode, from its episode seed; no outcome column",
              3: "one RNG stream per episode, from its episode seed; each episode's outcome recorded"}


@dataclass(frozen=True)
class RunConfig:
    """One evaluated configuration: ``method`` is a ValueGuidedPolicy mode ("policy" = base)."""
    policy: str
    method: str = "policy"
    K: int = 1
    beta: float = 0.0

    @property
    def label(self) -> str:
        return "base" if self.method == "policy" else f"{self.method} K={self.K} β={self.beta:g}"


def episode_seed(seed: int, episode: int) -> int:
    """Environment reset seed of episode ``episode`` under evaluation seed ``seed`` (same for
    every policy and method, so comparisons are paired)."""
    return int(seed) * 100_003 + int(episode)


def pooled_envs(pool: dict, task: str, n: int, make_env: Callable) -> list:
    """The first ``n`` environments of ``task`` in ``pool`` (task -> [env, ...]), built on demand."""
    envs = pool.setdefault(task, [])
    while len(envs) < n:
        envs.append(make_env(task))
    return envs[:n]


@jax.jit
def _episode_keys(lo, hi):
    return jax.vmap(lambda a, b: jax.random.fold_in(jax.random.PRNGKey(a), b))(lo, hi)


def episode_keys(env_seeds) -> jax.Array:
    """``uint32[n, 2]``: the base PRNG key of each episode, from its environment seed alone (all
    64 bits of it: ``fold_in(PRNGKey(low 32 bits), high 32 bits)``). Step ``t`` of the episode
    uses ``fold_in(key, t)``."""
    s = np.asarray([int(x) for x in env_seeds], dtype=object)
    if len(s) and (s.min() < 0 or s.max() >= 2**64):
        raise ValueError(f"episode seeds must be in [0, 2**64), got {list(env_seeds)}")
    lo = np.asarray([x & 0xFFFFFFFF for x in s], np.uint32)
    hi = np.asarray([x >> 32 for x in s], np.uint32)
    return _episode_keys(lo, hi)


@jax.jit
def _step_keys(keys, t):
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t)


def lockstep_chunks(jobs: list[tuple], num_envs: int):
    """Split ``jobs`` (tuples ending in ``(seed, episode)``) into lock-step batches of at most
    ``min(num_envs, len(jobs))`` episodes; yields ``(chunk, env_seeds, keys)`` with ``keys`` the
    :func:`episode_keys` of the batch's episodes — the batching every evaluation of this harness
    uses (which batch an episode falls in does not change its result)."""
    b = min(int(num_envs), len(jobs))
    for start in range(0, len(jobs), b):
        chunk = jobs[start:start + b]
        env_seeds = [episode_seed(*j[-2:]) for j in chunk]
        yield chunk, env_seeds, episode_keys(env_seeds)


def _stack(obs_list):
    return {k: np.stack([o[k] for o in obs_list]) for k in obs_list[0]}


def run_lockstep(agent, envs: list, env_seeds: list[int], keys: jax.Array | None = None) -> list[dict]:
    """Run ``len(env_seeds) <= len(envs)`` episodes together; padding slots reuse env 0's first
    observation (and key) so the batch shape (and the jitted functions) never change. ``keys``:
    each episode's base PRNG key, ``[n, 2]`` (default :func:`episode_keys` ``(env_seeds)``, as the
    :class:`Evaluator` uses); at step ``t`` episode ``i`` acts with ``fold_in(keys[i], t)``.
    Each result has ``ever_grasped``, ``held_at_end`` and ``outcome``
    (:func:`vgps.eval.failures.classify`) when the environment reports its grasp
    (``env.unwrapped.grasped(env.unwrapped.source)``, checked after every step), else ``None``,
    ``None`` and ``""``. When the environments report ``info["embodiment"]`` at reset, the
    observation batch carries it as ``observations["embodiment"]`` (str ``[B]``)."""
    n, b = len(env_seeds), len(envs)
    if n > b:
        raise ValueError(f"{n} episodes for {b} environments")
    from vgps.policies.base import row_keys
    keys = episode_keys(env_seeds) if keys is None else row_keys(keys, n, "run_lockstep")
    keys = jnp.concatenate([keys, jnp.repeat(keys[:1], b - n, axis=0)]) if b > n else keys
    obs, instr, embs = [], [], []
    for env, s in zip(envs, env_seeds):
        o, info = env.reset(seed=int(s))
        obs.append(o)
        instr.append(info["instruction"])
        embs.append(info.get("embodiment"))
    obs += [obs[0]] * (b - n)
    instr += [instr[0]] * (b - n)
    embs += [embs[0]] * (b - n)
    # which robot each row is, for policies that un-normalise per robot (Octo, OpenVLA, RT-1-X)
    embodiment = np.asarray(embs) if all(isinstance(e, str) for e in embs) else None
    done = np.zeros(b, bool)
    done[n:] = True
    res = [{"env_seed": int(s), "success": False, "steps": 0, "unstable": False,
            "embodiment": ""} for s in env_seeds]
    grip = [_grasp_probe(env) for env in envs[:n]]
    ever, held = np.zeros(b, bool), np.zeros(b, bool)
    agent.reset(b)
    t = 0
    while not done.all():
        batch = _stack(obs)
        if embodiment is not None:
            batch["embodiment"] = embodiment
        actions, _ = agent.act(batch, instr, _step_keys(keys, t))
        for i in np.flatnonzero(~done):
            o, _, term, trunc, info = envs[i].step(np.asarray(actions[i], np.float32))
            obs[i] = o
            r = res[i]
            r["steps"] += 1
            r["embodiment"] = info.get("embodiment", "")
            r["success"] |= bool(info.get("success", False))
            r["unstable"] |= bool(info.get("unstable", False))
            done[i] = term or trunc
            if grip[i] is not None:
                held[i] = grip[i]()
                ever[i] |= held[i]
        t += 1
    for i, r in enumerate(res):
        known = grip[i] is not None
        r["ever_grasped"] = bool(ever[i]) if known else None
        r["held_at_end"] = bool(held[i]) if known else None
        r["outcome"] = classify(r["success"], ever[i], held[i]) if known else ""
    return res


def _grasp_probe(env) -> Callable[[], bool] | None:
    """``() -> is the task's source object held now``, or None if ``env`` cannot tell."""
    u = getattr(env, "unwrapped", env)
    if not (callable(getattr(u, "grasped", None)) and getattr(u, "source", None) is not None):
        return None
    return lambda: bool(u.grasped(u.source))


class CacheRowWarning(UserWarning):
    """A cached episode row failed validation; it is ignored and its episode recomputed."""


class CacheProtocolError(RuntimeError):
    """A cache holds episodes run under another :data:`EVAL_PROTOCOL` (other random numbers, or
    other recorded fields)."""


def _protocol_error(where, protocol: int) -> CacheProtocolError:
    return CacheProtocolError(
        f"{where} holds episodes of evaluation protocol {protocol} "
        f"({_PROTOCOLS.get(protocol, 'unknown')}); this code runs protocol {EVAL_PROTOCOL} "
        f"({_PROTOCOLS[EVAL_PROTOCOL]}) and does not mix their results. Evaluate into another "
        f"file (cache_path() names one per protocol) or move this one away; it was not modified")


def _key_text(row: dict) -> str:
    return " ".join(f"{k}={row.get(k)!r}" for k in KEY_COLUMNS)


def row_problem(row: dict, horizon: int | None = None) -> str | None:
    """Why ``row`` (one cached episode) cannot be used, or None: text fields are str (task, policy,
    method non-empty), K/seed/episode ints (K, episode >= 0), beta a finite float, success and
    unstable bools (or 0/1), steps an int in [1, horizon] (one step at least), env_seed the
    :func:`episode_seed` of (seed, episode), outcome "" or a category agreeing with success."""
    for c in RESULT_COLUMNS:
        if c not in row or row[c] is None:
            return f"{c} missing"
    for c in _TEXT:
        if not isinstance(row[c], str) or (c not in ("embodiment", "outcome") and not row[c]):
            return f"{c}={row[c]!r} is not a non-empty str"
    for c in _INT:
        if type(row[c]) is not int:
            return f"{c}={row[c]!r} is not an int"
    for c in _BOOL:
        if not (type(row[c]) is bool or (type(row[c]) is int and row[c] in (0, 1))):
            return f"{c}={row[c]!r} is not a bool"
    if type(row["beta"]) not in (float, int) or not math.isfinite(row["beta"]):
        return f"beta={row['beta']!r} is not a finite float"
    if row["K"] < 0 or row["episode"] < 0:
        return f"K={row['K']} or episode={row['episode']} is negative"
    if row["steps"] < 1 or (horizon is not None and row["steps"] > horizon):
        return f"steps={row['steps']} outside [1, {'∞' if horizon is None else horizon}]"
    if row["env_seed"] != episode_seed(row["seed"], row["episode"]):
        return f"env_seed={row['env_seed']} is not episode_seed({row['seed']}, {row['episode']})"
    if row["outcome"] not in ("", *CATEGORIES):
        return f"outcome={row['outcome']!r} is not one of {CATEGORIES} or ''"
    if row["outcome"] and (row["outcome"] == CATEGORIES[0]) != bool(row["success"]):
        return f"outcome={row['outcome']!r} contradicts success={row['success']!r}"
    return None


def _native(row: dict) -> tuple:
    """A result row as the Python types SQLite stores (numpy scalars are not bindable)."""
    conv = {**dict.fromkeys(_TEXT, str), **dict.fromkeys(_INT, int), "beta": float,
            **dict.fromkeys(_BOOL, lambda v: int(bool(v)))}
    return tuple(conv[c](row[c]) for c in RESULT_COLUMNS)


class EpisodeCache:
    """Per-episode results in SQLite: table ``episodes`` (the :data:`RESULT_COLUMNS`, primary key
    :data:`KEY_COLUMNS`) and ``meta`` (``protocol``: the :data:`EVAL_PROTOCOL` of its episodes).

    ``horizon``: an int, or ``task -> int | None``, bounding ``steps`` in validation (None: only
    ``steps >= 1``). Raises :class:`CacheProtocolError` if the store holds episodes of another
    protocol (a store with rows and no recorded protocol was written under protocol 1), or if
    ``legacy_csv`` (a cache file of the former CSV format, all protocol 1) exists; neither file is
    modified."""

    def __init__(self, path: str | Path, legacy_csv: str | Path | None = None,
                 horizon: int | Callable | None = None):
        self.path, self.horizon = Path(path), horizon
        if legacy_csv is not None and Path(legacy_csv).is_file():
            raise _protocol_error(f"legacy CSV cache {legacy_csv}", 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as con:
            cols = ", ".join(f"{c} {_SQL_TYPE[c]}" for c in RESULT_COLUMNS)
            con.execute(f"CREATE TABLE IF NOT EXISTS episodes ({cols}, PRIMARY KEY ({', '.join(KEY_COLUMNS)}))")
            con.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            row = con.execute("SELECT value FROM meta WHERE name = 'protocol'").fetchone()
            if row is None and con.execute("SELECT 1 FROM episodes LIMIT 1").fetchone():
                raise _protocol_error(f"evaluation cache {self.path}", 1)
            if row is None:
                con.execute("INSERT INTO meta VALUES ('protocol', ?)", (str(EVAL_PROTOCOL),))
            elif row[0] != str(EVAL_PROTOCOL):
                raise _protocol_error(f"evaluation cache {self.path}", int(row[0]))

    def _horizon(self, task) -> int | None:
        return self.horizon(task) if callable(self.horizon) else self.horizon

    @contextmanager
    def _transaction(self):
        """One write transaction (taken at BEGIN, so writers queue on the lock); committed on exit,
        rolled back on an exception."""
        with closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @staticmethod
    def _insert(how: str) -> str:
        return (f"INSERT {how} INTO episodes ({', '.join(RESULT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(RESULT_COLUMNS))})")

    @staticmethod
    def _warn(bad: list[tuple[str, dict, str]], shown: int = 20) -> None:
        for where, row, problem in bad[:shown]:
            warnings.warn(f"{where}: cached row {_key_text(row)} is invalid ({problem}); "
                          "it is not used and will be recomputed", CacheRowWarning, stacklevel=3)
        if len(bad) > shown:
            warnings.warn(f"{bad[0][0]}: {len(bad) - shown} more invalid cached rows not listed",
                          CacheRowWarning, stacklevel=3)

    def load(self) -> pd.DataFrame:
        """Every valid row, sorted by :data:`KEY_COLUMNS`; invalid rows are warned about."""
        with closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)) as con:
            cur = con.execute(f"SELECT {', '.join(RESULT_COLUMNS)} FROM episodes")
            rows = [dict(zip(RESULT_COLUMNS, r)) for r in cur]
        good, bad = [], []
        for r in rows:
            problem = row_problem(r, self._horizon(r["task"]))
            (bad.append((str(self.path), r, problem)) if problem else good.append(r))
        self._warn(bad)
        if not good:
            return pd.DataFrame(columns=RESULT_COLUMNS)
        df = pd.DataFrame(good, columns=RESULT_COLUMNS).astype(
            {**dict.fromkeys(_INT, "int64"), "beta": "float64", **dict.fromkeys(_BOOL, bool)})
        return df.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)

    def put(self, rows: list[dict]) -> None:
        """Write ``rows`` in one transaction (a recomputed episode replaces its old row)."""
        if rows:
            with self._transaction() as con:
                con.executemany(self._insert("OR REPLACE"), [_native(r) for r in rows])


class Evaluator:
    """Evaluate ``RunConfig`` s on tasks and seeds with a per-episode cache (:class:`EpisodeCache`).

    Args:
        make_env: ``task_id -> env`` (e.g. ``lambda t: vgps.envs.make(t, render=False)``).
        make_agent: ``RunConfig -> agent`` (a ValueGuidedPolicy).
        cache_csv: per-episode results; rows already there are not re-run. A ``.csv`` path names
            a legacy CSV cache: the store is the same path with suffix ``.sqlite``. Any other path
            is the SQLite store itself. A legacy CSV ``<path>.with_suffix(".csv")`` (results of
            protocol 1) is refused, see :class:`EpisodeCache`.
        env_pool: task -> [env, ...] shared with other evaluators (see :func:`pooled_envs`).
        num_envs: lock-step batch size (results do not depend on it: not part of the cache key).
        horizon: an int or ``task -> int | None``: cached rows with ``steps`` above it are invalid.
    """

    def __init__(self, make_env: Callable, make_agent: Callable, cache_csv: str | Path,
                 num_envs: int = 16, verbose: bool = True, env_pool: dict | None = None,
                 horizon: int | Callable | None = None):
        self.make_env, self.make_agent = make_env, make_agent
        self.cache_csv, self.num_envs, self.verbose = Path(cache_csv), int(num_envs), verbose
        self._envs: dict[str, list] = {} if env_pool is None else env_pool
        p = self.cache_csv
        self.cache = EpisodeCache(p.with_suffix(".sqlite") if p.suffix == ".csv" else p,
                                  legacy_csv=p.with_suffix(".csv"), horizon=horizon)
        self.df = self.cache.load()

    def _get_envs(self, task: str, n: int) -> list:
        return pooled_envs(self._envs, task, n, self.make_env)

    def _cached(self, cfg: RunConfig, task: str, seed: int, episodes: int) -> pd.DataFrame:
        d = self.df
        if d.empty:
            return d
        m = ((d["policy"] == cfg.policy) & (d["method"] == cfg.method) & (d["K"] == cfg.K)
             & np.isclose(d["beta"].astype(float), cfg.beta) & (d["task"] == task)
             & (d["seed"] == seed) & (d["episode"] < episodes))
        return d[m]

    def run(self, cfg: RunConfig, tasks, seeds, episodes: int) -> pd.DataFrame:
        """Per-episode results for ``cfg`` on every task × seed (``episodes`` each)."""
        return self.run_sets(cfg, tasks, [(seeds, episodes)])[0]

    def run_sets(self, cfg: RunConfig, tasks, sets) -> list[pd.DataFrame]:
        """Several ``(seeds, episodes)`` sets (e.g. tuning and evaluation seeds) at once: all
        missing episodes of a task share the lock-step batches. Returns one frame per set."""
        out = [[] for _ in sets]
        for task in tasks:
            jobs = []                                   # (set index, seed, episode) still to run
            for si, (seeds, episodes) in enumerate(sets):
                for seed in seeds:
                    have = self._cached(cfg, task, seed, episodes)
                    if len(have) >= episodes:
                        out[si].append(have)
                    else:
                        jobs += [(si, seed, e) for e in range(episodes)]
            if not jobs:
                continue
            t0 = time.time()
            agent = self.make_agent(cfg)
            envs = self._get_envs(task, min(self.num_envs, len(jobs)))
            rows = []
            for chunk, env_seeds, keys in lockstep_chunks(jobs, self.num_envs):
                res = run_lockstep(agent, envs, env_seeds, keys)
                batch = [(si, {**asdict(cfg), "task": task, "seed": sd, "episode": e, **r})
                         for (si, sd, e), r in zip(chunk, res)]
                self.cache.put([r for _, r in batch])       # one transaction per lock-step batch
                rows += batch
            new = pd.DataFrame([r for _, r in rows])[RESULT_COLUMNS]
            self._append(new)
            for si in range(len(sets)):
                part = new[[k == si for k, _ in rows]]
                if len(part):
                    out[si].append(part)
            if self.verbose:
                print(f"  {cfg.policy:15s} {cfg.label:28s} {task:32s}: {new['success'].mean():.2f} "
                      f"({len(new)} episodes, {time.time() - t0:.0f}s)", flush=True)
        return [pd.concat(o, ignore_index=True) if o else pd.DataFrame(columns=RESULT_COLUMNS) for o in out]

    def _append(self, new: pd.DataFrame) -> None:
        """Merge ``new`` (already in :attr:`cache`) into the in-memory :attr:`df`."""
        df = pd.concat([self.df, new], ignore_index=True) if not self.df.empty else new
        df = df.drop_duplicates(KEY_COLUMNS, keep="last").sort_values(KEY_COLUMNS, kind="stable")
        self.df = df.reset_index(drop=True)


def random_policy_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Uniform random proposals over the widest action box of the embedded suite's embodiments."""
    from vgps.envs import EMBODIMENTS
    m = max(e.max_step for e in EMBODIMENTS.values())
    r = max(e.max_rot_step for e in EMBODIMENTS.values())
    return (np.array([-m] * 3 + [-r] * 3 + [0.0], np.float32),
            np.array([m] * 3 + [r] * 3 + [1.0], np.float32))


def cache_path(cache_dir: str | Path, label: str, key_parts=()) -> Path:
    """``<cache_dir>/<label>-<hash of EVAL_PROTOCOL and key_parts>.sqlite``: a retrained model,
    or another :data:`EVAL_PROTOCOL`, gets a new file."""
    h = cache_key({"protocol": EVAL_PROTOCOL, "key": list(key_parts)})[:10]
    return Path(cache_dir) / f"{label}-{h}.sqlite"


def make_evaluator(cache_dir: str | Path, label: str, policies: dict, *, critic=None, encoder=None,
                   make_env: Callable | None = None, num_envs: int = 16, key_parts=(),
                   env_pool: dict | None = None, verbose: bool = False, shift: str | None = None,
                   render: bool = False) -> Evaluator:
    """A cached :class:`Evaluator` whose agent is a :class:`~vgps.steer.ValueGuidedPolicy` of
    ``policies[cfg.policy]`` in mode ``cfg.method`` with ``critic`` (one critic object, with its
    own action normalizer, shared by every policy).

    ``make_env``: ``task -> env`` (default: the embedded suite, ``vgps.envs.make(task,
    shift=shift, render=render)``: render for critics or policies that read the camera; a shift
    is part of the cache key and has its own environments in ``env_pool``; pass
    :func:`vgps.eval.simpler.make_simpler` for SIMPLER). The per-episode
    cache is :func:`cache_path` ``(cache_dir, label, key_parts)``: pass the critic's and the
    policies' cache keys, so retrained models are re-evaluated. ``env_pool``: a dict shared by
    several evaluators so they step the same environment instances (every episode starts with a
    seeded ``reset``)."""
    from vgps.steer import ValueGuidedPolicy
    horizon = None
    if make_env is None:
        import vgps.envs as envs
        from vgps.envs.tasks import TASKS
        from vgps.envs.shifts import parse_shift
        parse_shift(shift)                                  # an unknown shift fails here
        make_env = lambda task: envs.make(task, shift=shift, render=render)  # noqa: E731
        horizon = lambda task: TASKS[task].horizon if task in TASKS else None  # noqa: E731
        key_parts = (*key_parts, {"shift": shift}) if shift else key_parts
        if env_pool is not None and (shift or render):      # never share envs across scenes
            env_pool = env_pool.setdefault(("scene", shift, render), {})
    elif shift is not None or render:
        raise ValueError("shift= and render= configure the default environments; with make_env= "
                         "build them into make_env")
    low, high = random_policy_bounds()

    def make_agent(cfg: RunConfig):
        return ValueGuidedPolicy(policies[cfg.policy], critic, K=max(cfg.K, 1), beta=cfg.beta,
                                 mode=cfg.method, language_encoder=encoder,
                                 random_low=low, random_high=high)

    return Evaluator(make_env, make_agent, cache_path(cache_dir, label, key_parts),
                     num_envs=num_envs, verbose=verbose, env_pool=env_pool, horizon=horizon)
