"""One training loop for Cal-QL and IQL.

``train(cfg, data, run_dir, normalizer=...)`` runs the agent's phases (Cal-QL with a behaviour
π: BC first, then the critic) with a jitted update, data-parallel over all local devices
(batch sharded on its leading axis, state replicated, via ``jax.sharding``), logs metrics to
``metrics.jsonl`` + ``metrics_<phase>.csv`` and a tqdm bar, checkpoints every
``checkpoint_every`` steps and resumes from the newest checkpoint.

Exact resume: the state holds the PRNG key and step, and ``data.sample(step)`` (see
:class:`StepSampler`) depends only on the step, so kill-and-resume reproduces an uninterrupted
run bit for bit. A non-finite loss stops training with :class:`NonFiniteLossError` naming the
step; checkpoints are only written after finite steps, so the last good one stays on disk.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vgps.agents import calql, checkpoint as ckpt, iql
from vgps.agents.critic import Critic


class NonFiniteLossError(FloatingPointError):
    """Raised when an update returns a NaN/inf loss."""


class StepSampler:
    """Uniform minibatches from an in-memory transition dict; batch ``t`` depends only on
    ``(seed, t)``, which makes resumed runs identical. ``transitions`` holds arrays with a
    leading ``N`` axis (``observations`` / ``next_observations`` are dicts of such arrays)."""

    def __init__(self, transitions: dict, batch_size: int, seed: int = 0):
        self.transitions, self.batch_size, self.seed = transitions, batch_size, seed
        self.size = len(transitions["actions"])

    def sample(self, step: int) -> dict:
        idx = np.sort(np.random.default_rng([self.seed, step]).integers(0, self.size, self.batch_size))
        return jax.tree.map(lambda x: x[idx], self.transitions)


def make_agent(cfg):
    if cfg.algorithm == "calql":
        return calql.make(cfg)
    if cfg.algorithm == "iql":
        return iql.make(cfg)
    raise ValueError(f"unknown algorithm {cfg.algorithm!r}")


def _check_batch(cfg, batch):
    d = batch["language"].shape[-1]
    if d != cfg.language_dim:
        raise ValueError(f"language embedding size {d} != CriticConfig.language_dim {cfg.language_dim}")
    a = batch["actions"].shape[-1]
    if a != cfg.action_dim:
        raise ValueError(f"action dimension {a} != CriticConfig.action_dim {cfg.action_dim}")
    key = "state" if cfg.obs_modality == "state" else "image"
    if key not in batch["observations"]:
        raise KeyError(f"obs_modality={cfg.obs_modality!r} needs batch['observations'][{key!r}]")


def _prepare(cfg, batch, state_normalizer=None):
    """Keep only the modality's observation; standardise states with ``state_normalizer`` (the
    same object :class:`Critic` applies at scoring time)."""
    key = "state" if cfg.obs_modality == "state" else "image"
    out = dict(batch)
    for k in ("observations", "next_observations"):
        x = batch[k][key]
        if key == "state" and state_normalizer is not None:
            x = np.asarray(state_normalizer.normalize(x), np.float32)
        out[k] = {key: x}
    return out


@dataclasses.dataclass
class TrainResult:
    state: dict
    run_dir: Path
    metrics: list[dict]
    seconds: float

    def critic(self) -> Critic:
        from vgps.agents.critic import load_critic
        return load_critic(self.run_dir)


def _phase_at(agent, step):
    start = 0
    for ph in agent.phases:
        if step < start + ph.num_steps:
            return ph, start
        start += ph.num_steps
    return None, start


def _load_log(run_dir: Path, upto: int) -> list[dict]:
    p = run_dir / "metrics.jsonl"
    if not p.exists():
        return []
    rows = [json.loads(l) for l in p.read_text().splitlines() if l.strip()]
    return [r for r in rows if r["step"] <= upto]


def _write_logs(run_dir: Path, rows: list[dict]) -> None:
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for phase in sorted({r["phase"] for r in rows}):
        pr = [r for r in rows if r["phase"] == phase]
        keys = list(pr[0].keys())
        with open(run_dir / f"metrics_{phase}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, keys, extrasaction="ignore", lineterminator="\n")
            w.writeheader()
            w.writerows(pr)


def train(cfg, data, run_dir, *, normalizer=None, state_normalizer=None, resume: bool = True,
          stop_after: int | None = None, progress: bool = True, devices=None,
          extra_meta: dict | None = None) -> TrainResult:
    """Train ``cfg.algorithm`` on ``data`` (a :class:`StepSampler` or anything with
    ``sample(step) -> batch``) into ``run_dir``. ``stop_after`` ends early after that global
    step (used to simulate a kill). Returns the final state, metrics rows and wall time."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    agent = make_agent(cfg)
    total = agent.total_steps
    devices = list(devices or jax.devices())
    mesh = Mesh(np.array(devices), ("data",))
    repl, dsh = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    example = _prepare(cfg, data.sample(0), state_normalizer)
    _check_batch(cfg, example)
    if example["actions"].shape[0] % len(devices):
        raise ValueError(f"batch size {example['actions'].shape[0]} not divisible by "
                         f"{len(devices)} devices")

    meta = {"algorithm": cfg.algorithm, "config": dataclasses.asdict(cfg),
            "obs_modality": cfg.obs_modality, "language_dim": cfg.language_dim,
            "action_dim": cfg.action_dim, "num_qs": cfg.num_qs, "total_steps": total,
            "phases": [[p.name, p.num_steps] for p in agent.phases],
            "obs_spec": {k: {"shape": list(v.shape[1:]), "dtype": str(v.dtype)}
                         for k, v in example["observations"].items()},
            "normalizer": normalizer, "state_normalizer": state_normalizer, **(extra_meta or {})}
    ckpt.save_meta(run_dir, meta)

    state = agent.init(jax.random.PRNGKey(cfg.seed), jax.tree.map(lambda x: x[:1], example))
    existing = ckpt.list_checkpoints(run_dir) if resume else []
    if existing:
        state = ckpt.restore_bytes(existing[-1], state)
    state = jax.device_put(state, repl)
    step = int(state["step"])
    rows = _load_log(run_dir, step)
    updates = {ph.name: jax.jit(ph.update, in_shardings=(repl, dsh), out_shardings=(repl, repl),
                                donate_argnums=0) for ph in agent.phases}
    end = total if stop_after is None else min(total, stop_after)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, initial=step, desc=run_dir.name, mininterval=30.0)
    t0, last_good = time.perf_counter(), (existing[-1] if existing else None)
    try:
        while step < end:
            phase, start = _phase_at(agent, step)
            batch = jax.device_put(_prepare(cfg, data.sample(step), state_normalizer), dsh)
            state, m = updates[phase.name](state, batch)
            loss = float(m["loss"])
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"non-finite loss ({loss}) at step {step} (phase {phase.name!r}); "
                    f"last good checkpoint: {last_good}")
            step += 1
            phase_end = step == start + phase.num_steps
            if step % cfg.log_every == 0 or phase_end:
                row = {"step": step, "phase": phase.name,
                       **{k: float(v) for k, v in jax.device_get(m).items()},
                       "wall_s": round(time.perf_counter() - t0, 3)}
                rows.append(row)
                _write_logs(run_dir, rows)
                if bar is not None:
                    bar.set_postfix(phase=phase.name, loss=f"{loss:.3g}")
            if step % cfg.checkpoint_every == 0 or phase_end or step == end:
                last_good = ckpt.save_state(run_dir, step, jax.device_get(state))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if step == total:
        ckpt.save_params(run_dir / "critic.msgpack", jax.device_get(state["critic"]["params"]))
    return TrainResult(state, run_dir, rows, time.perf_counter() - t0)
