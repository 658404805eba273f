"""Lock-step batched evaluation: N environments stepped together so that every policy and critic
call is batched; per-episode results cached in a CSV keyed by (config, task, seed, episode).

An *agent* has ``reset(batch_size)`` and ``act(observations, instructions, rng) -> (actions
[B, 7], info)`` — :class:`vgps.steer.ValueGuidedPolicy` in any mode.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import jax
import numpy as np
import pandas as pd

RESULT_COLUMNS = ["task", "embodiment", "policy", "method", "K", "beta", "seed", "episode",
                  "env_seed", "success", "steps", "unstable"]


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


def lockstep_chunks(jobs: list[tuple], num_envs: int):
    """Split ``jobs`` (tuples ending in ``(seed, episode)``) into lock-step batches of at most
    ``min(num_envs, len(jobs))`` episodes; yields ``(chunk, env_seeds, rng)`` with the batch's RNG
    seeded by its first episode — the batching every evaluation of this harness uses."""
    b = min(int(num_envs), len(jobs))
    for start in range(0, len(jobs), b):
        chunk = jobs[start:start + b]
        rng = jax.random.PRNGKey(episode_seed(*chunk[0][-2:]) % (2**31))
        yield chunk, [episode_seed(*j[-2:]) for j in chunk], rng


def _stack(obs_list):
    return {k: np.stack([o[k] for o in obs_list]) for k in obs_list[0]}


def run_lockstep(agent, envs: list, env_seeds: list[int], rng: jax.Array,
                 on_step: Callable | None = None) -> list[dict]:
    """Run ``len(env_seeds) <= len(envs)`` episodes together; padding slots reuse env 0's first
    observation so the batch shape (and the jitted functions) never change. ``on_step(i, env,
    info)`` is called after every step of episode ``i`` (e.g. to track simulator state)."""
    n, b = len(env_seeds), len(envs)
    if n > b:
        raise ValueError(f"{n} episodes for {b} environments")
    obs, instr = [], []
    for env, s in zip(envs, env_seeds):
        o, info = env.reset(seed=int(s))
        obs.append(o)
        instr.append(info["instruction"])
    obs += [obs[0]] * (b - n)
    instr += [instr[0]] * (b - n)
    done = np.zeros(b, bool)
    done[n:] = True
    res = [{"env_seed": int(s), "success": False, "steps": 0, "unstable": False,
            "embodiment": ""} for s in env_seeds]
    agent.reset(b)
    t = 0
    while not done.all():
        actions, _ = agent.act(_stack(obs), instr, jax.random.fold_in(rng, t))
        for i in np.flatnonzero(~done):
            o, _, term, trunc, info = envs[i].step(np.asarray(actions[i], np.float32))
            obs[i] = o
            r = res[i]
            r["steps"] += 1
            r["embodiment"] = info.get("embodiment", "")
            r["success"] |= bool(info.get("success", False))
            r["unstable"] |= bool(info.get("unstable", False))
            done[i] = term or trunc
            if on_step is not None:
                on_step(i, envs[i], info)
        t += 1
    return res


class Evaluator:
    """Evaluate ``RunConfig`` s on tasks and seeds with a CSV cache.

    Args:
        make_env: ``task_id -> env`` (e.g. ``lambda t: vgps.envs.make(t, render=False)``).
        make_agent: ``RunConfig -> agent`` (a ValueGuidedPolicy).
        cache_csv: per-episode results; rows already there are not re-run.
        env_pool: task -> [env, ...] shared with other evaluators (see :func:`pooled_envs`).
        num_envs: lock-step batch size.
    """

    def __init__(self, make_env: Callable, make_agent: Callable, cache_csv: str | Path,
                 num_envs: int = 16, verbose: bool = True, env_pool: dict | None = None):
        self.make_env, self.make_agent = make_env, make_agent
        self.cache_csv, self.num_envs, self.verbose = Path(cache_csv), int(num_envs), verbose
        self._envs: dict[str, list] = {} if env_pool is None else env_pool
        self.df = (pd.read_csv(self.cache_csv) if self.cache_csv.exists()
                   else pd.DataFrame(columns=RESULT_COLUMNS))

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
            for chunk, env_seeds, rng in lockstep_chunks(jobs, self.num_envs):
                res = run_lockstep(agent, envs, env_seeds, rng)
                rows += [(si, {**asdict(cfg), "task": task, "seed": sd, "episode": e, **r})
                         for (si, sd, e), r in zip(chunk, res)]
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
        keys = ["policy", "method", "K", "beta", "task", "seed", "episode"]
        df = pd.concat([self.df, new], ignore_index=True) if not self.df.empty else new
        df = df.drop_duplicates(keys, keep="last").sort_values(keys, kind="stable")
        self.df = df.reset_index(drop=True)
        self.cache_csv.parent.mkdir(parents=True, exist_ok=True)
        self.df.to_csv(self.cache_csv, index=False, lineterminator="\n")


def random_policy_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Uniform random proposals over the widest action box of the embedded suite's embodiments."""
    from vgps.envs import EMBODIMENTS
    m = max(e.max_step for e in EMBODIMENTS.values())
    r = max(e.max_rot_step for e in EMBODIMENTS.values())
    return (np.array([-m] * 3 + [-r] * 3 + [0.0], np.float32),
            np.array([m] * 3 + [r] * 3 + [1.0], np.float32))


def cache_path(cache_dir: str | Path, label: str, key_parts=()) -> Path:
    """``<cache_dir>/<label>-<hash of key_parts>.csv``: a retrained model gets a new file."""
    h = hashlib.sha256(json.dumps(list(key_parts), sort_keys=True, default=str).encode())
    return Path(cache_dir) / f"{label}-{h.hexdigest()[:10]}.csv"


def make_evaluator(cache_dir: str | Path, label: str, policies: dict, *, critic=None, encoder=None,
                   make_env: Callable | None = None, num_envs: int = 16, key_parts=(),
                   env_pool: dict | None = None, verbose: bool = False) -> Evaluator:
    """A cached :class:`Evaluator` whose agent is a :class:`~vgps.steer.ValueGuidedPolicy` of
    ``policies[cfg.policy]`` in mode ``cfg.method`` with ``critic`` (one critic object, with its
    own action normalizer, shared by every policy).

    ``make_env``: ``task -> env`` (default: the embedded suite, ``vgps.envs.make(task,
    render=False)``; pass :func:`vgps.eval.simpler.make_simpler` for SIMPLER). The per-episode
    cache is :func:`cache_path` ``(cache_dir, label, key_parts)``: pass the critic's and the
    policies' cache keys, so retrained models are re-evaluated. ``env_pool``: a dict shared by
    several evaluators so they step the same environment instances (every episode starts with a
    seeded ``reset``)."""
    from vgps.steer import ValueGuidedPolicy
    if make_env is None:
        import vgps.envs as envs
        make_env = lambda task: envs.make(task, render=False)  # noqa: E731
    low, high = random_policy_bounds()

    def make_agent(cfg: RunConfig):
        return ValueGuidedPolicy(policies[cfg.policy], critic, K=max(cfg.K, 1), beta=cfg.beta,
                                 mode=cfg.method, language_encoder=encoder,
                                 random_low=low, random_high=high)

    return Evaluator(make_env, make_agent, cache_path(cache_dir, label, key_parts),
                     num_envs=num_envs, verbose=verbose, env_pool=env_pool)
