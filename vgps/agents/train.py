"""One training loop for Cal-QL and IQL.

``train(cfg, data, run_dir)`` runs the agent's phases (Cal-QL with a behaviour
π: BC first, then the critic) with a jitted update, data-parallel over all local devices
(batch sharded on its leading axis, state replicated, via ``jax.sharding``), logs metrics to
``metrics.jsonl`` + ``metrics_<phase>.csv`` and a tqdm bar, checkpoints every
``checkpoint_every`` steps and resumes from the newest checkpoint. The action (and state)
normalizer saved with the critic is the data's own (``data.normalizer``, the one its batches'
actions were normalized with), so it cannot be forgotten or mismatched.

Exact resume: the state holds the PRNG key and step, and ``data.sample(step)`` (see
:class:`StepSampler`) depends only on the step, so kill-and-resume reproduces an uninterrupted
run bit for bit. A non-finite loss stops training with :class:`NonFiniteLossError` naming the
step, and so do non-finite parameters found before a checkpoint is written: no checkpoint on disk
holds a NaN/inf, so the last one stays good. A run directory is only resumed with the config it
was started with, and ``resume=False`` refuses a directory holding an earlier run's checkpoints,
critic or metrics (it would mix them with its own); a damaged newest checkpoint falls back to the
newest intact one; the metrics files are written atomically and a cut last line of
``metrics.jsonl`` is dropped (with a warning) on resume and by :func:`read_metrics`.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import time
import warnings
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vgps.agents import calql, checkpoint as ckpt, iql
from vgps.agents.critic import Critic
from vgps.artifacts import write_atomic
from vgps.data.normalize import Normalizer


class NonFiniteLossError(FloatingPointError):
    """Raised when an update returns a NaN/inf loss or leaves NaN/inf parameters."""


class StepSampler:
    """Uniform minibatches from an in-memory transition dict; batch ``t`` depends only on
    ``(seed, t)``, which makes resumed runs identical. ``transitions`` holds arrays with a
    leading ``N`` axis (``observations`` / ``next_observations`` are dicts of such arrays).
    ``normalizer``: the :class:`~vgps.data.normalize.ActionNormalizer` that maps raw actions to
    ``transitions["actions"]`` (None: the critic scores actions as given); ``state_normalizer``
    likewise for raw states. :func:`train` saves both with the critic."""

    def __init__(self, transitions: dict, batch_size: int, seed: int = 0, *, normalizer=None,
                 state_normalizer=None):
        self.transitions, self.batch_size, self.seed = transitions, batch_size, seed
        self.normalizer, self.state_normalizer = normalizer, state_normalizer
        self.size = len(transitions["actions"])

    def sample(self, step: int) -> dict:
        idx = np.sort(np.random.default_rng([self.seed, step]).integers(0, self.size, self.batch_size))
        return jax.tree.map(lambda x: x[idx], self.transitions)


_MISSING = object()


def _data_normalizer(data, given, attr: str):
    """The normalizer ``data.<attr>`` carries (``given`` only for data that declare none);
    an error if the data have no such attribute and none is given, if both are given and
    differ, or if it is not one of ours (it must load back from meta.json)."""
    own = getattr(data, attr, _MISSING)
    if own is _MISSING:
        if given is None:
            raise TypeError(f"{type(data).__name__} has no .{attr}: give the data one (None if "
                            f"{'actions' if attr == 'normalizer' else 'states'} are used as "
                            f"given) or pass {attr}= to train()")
        own = None
    for n in (given, own):
        if n is not None and not isinstance(n, Normalizer):
            raise TypeError(f"{attr} must be a vgps.data.normalize normalizer (e.g. "
                            f"ActionNormalizer), got {type(n).__name__}")
    if given is not None and own is not None and given != own:
        raise ValueError(f"{attr}= ({given!r}, mean {given.mean.round(4).tolist()}) differs "
                         f"from data.{attr} ({own!r}, mean {own.mean.round(4).tolist()}), which "
                         f"the data were normalized with; drop {attr}= (train takes it from the "
                         "data)")
    return own if own is not None else given


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


def read_metrics(run_dir) -> list[dict]:
    """Rows of ``run_dir/metrics.jsonl`` (``[]`` if there is none). A last line that is not valid
    JSON (cut by a kill or a full disk, e.g. in files written before writes were atomic) is
    dropped with a warning naming the file and line; a bad line before it is a
    :class:`~vgps.agents.checkpoint.CheckpointError`."""
    p = Path(run_dir) / "metrics.jsonl"
    if not p.exists():
        return []
    lines = [(i, l) for i, l in enumerate(p.read_text().splitlines(), 1) if l.strip()]
    rows = []
    for n, (i, line) in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if n < len(lines) - 1:
                raise ckpt.CheckpointError(f"{p} line {i} is not valid JSON: {e}") from e
            warnings.warn(f"{p}: dropping truncated last line {i} ({line[:60]!r})",
                          RuntimeWarning, stacklevel=3)
    return rows


def _load_log(run_dir: Path, upto: int) -> list[dict]:
    """:func:`read_metrics` rows up to step ``upto`` (the checkpoint resumed from)."""
    return [r for r in read_metrics(run_dir) if r["step"] <= upto]


def _stale_outputs(run_dir: Path) -> list[Path]:
    """Files an earlier run left in ``run_dir`` that a fresh (``resume=False``) run would mix
    with its own: checkpoints (the rotation keeps the highest steps, so a longer earlier run's
    would outlive the new run's), ``critic.msgpack`` and the metrics logs."""
    return [*ckpt.list_checkpoints(run_dir),
            *[p for p in [run_dir / "critic.msgpack", run_dir / "metrics.jsonl"] if p.exists()],
            *sorted(run_dir.glob("metrics_*.csv"))]


def _write_logs(run_dir: Path, rows: list[dict]) -> None:
    write_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    for phase in sorted({r["phase"] for r in rows}):
        pr = [r for r in rows if r["phase"] == phase]
        buf = io.StringIO()
        w = csv.DictWriter(buf, list(pr[0].keys()), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(pr)
        write_atomic(run_dir / f"metrics_{phase}.csv", buf.getvalue().encode())


# meta.json entries that change what is trained, besides the config's own fields
_RESUME_META_KEYS = ("obs_spec", "normalizer", "state_normalizer")


def _resume_differences(old: dict, new: dict) -> list[str]:
    """``"field: <on disk> (on disk) vs <requested> (requested)"`` for every config field and
    :data:`_RESUME_META_KEYS` entry of ``new`` (a meta dict) that ``old`` (meta.json) lacks or
    holds with another value."""
    new = json.loads(json.dumps(ckpt.to_jsonable(new)))
    pairs = [(k, old.get("config", {}), new["config"]) for k in new["config"]]
    pairs += [(k, old, new) for k in _RESUME_META_KEYS]
    out = []
    for k, o, n in pairs:
        a = json.dumps(o[k], sort_keys=True) if k in o else "<missing>"
        b = json.dumps(n.get(k), sort_keys=True)
        if a != b:
            out.append(f"{k}: {a} (on disk) vs {b} (requested)")
    return out


def _restore_newest_intact(paths: list[Path], template):
    """``(state, path)`` from the newest of ``paths`` that reads; damaged newer ones are skipped
    with a warning naming them and the one used."""
    damaged = []
    for path in reversed(paths):
        try:
            state = ckpt.restore_bytes(path, template)
        except ckpt.CorruptCheckpointError as e:
            damaged.append((path, e))
            continue
        for bad, e in damaged:
            warnings.warn(f"damaged checkpoint {bad} ({e}); resuming from {path}",
                          RuntimeWarning, stacklevel=3)
        return state, path
    raise ckpt.CheckpointError("no intact checkpoint to resume from: "
                               + "; ".join(str(e) for _, e in damaged))


def _leaf_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _non_finite_leaves(state) -> list[str]:
    """Names (``critic/params/...``) of the floating-point leaves of ``state`` holding NaN/inf."""
    return [_leaf_name(path) for path, x in jax.tree_util.tree_flatten_with_path(state)[0]
            if np.issubdtype(np.asarray(x).dtype, np.inexact) and not np.isfinite(x).all()]


def train(cfg, data, run_dir, *, normalizer=None, state_normalizer=None, resume: bool = True,
          stop_after: int | None = None, progress: bool = True, devices=None,
          extra_meta: dict | None = None) -> TrainResult:
    """Train ``cfg.algorithm`` on ``data`` (a :class:`StepSampler`, a
    :class:`~vgps.data.loader.TrainingData`, or anything with ``sample(step) -> batch`` and
    ``normalizer`` / ``state_normalizer`` attributes) into ``run_dir``. The normalizers saved with
    the critic are the data's; ``normalizer=`` / ``state_normalizer=`` are only for data that
    carry none, and must equal the data's otherwise. ``stop_after`` ends early after that global
    step (used to simulate a kill). Returns the final state, metrics rows and wall time."""
    normalizer = _data_normalizer(data, normalizer, "normalizer")
    state_normalizer = _data_normalizer(data, state_normalizer, "state_normalizer")
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
    if not resume:
        stale = _stale_outputs(run_dir)
        if stale:
            names = ", ".join(str(p.relative_to(run_dir)) for p in stale[:6])
            more = f" and {len(stale) - 6} more" if len(stale) > 6 else ""
            raise ValueError(
                f"{run_dir} holds files of an earlier run ({names}{more}); resume=False would mix "
                f"them with the new run's. Use a new run directory, or delete "
                f"{run_dir / 'checkpoints'}, {run_dir / 'critic.msgpack'} and "
                f"{run_dir / 'metrics*'} to start over")
    existing = ckpt.list_checkpoints(run_dir) if resume else []
    if existing and (run_dir / "meta.json").exists():
        diff = _resume_differences(ckpt.load_meta(run_dir), meta)
        if diff:
            raise ValueError(f"{run_dir} holds a run with another config; not resuming it "
                             "(use a new run directory, or delete its checkpoints/ to start over): "
                             + "; ".join(diff))
    ckpt.save_meta(run_dir, meta)

    state = agent.init(jax.random.PRNGKey(cfg.seed), jax.tree.map(lambda x: x[:1], example))
    last_good = None
    if existing:
        state, last_good = _restore_newest_intact(existing, state)
    state = jax.device_put(state, repl)
    step = int(state["step"])
    rows = _load_log(run_dir, step) if step else []
    updates = {ph.name: jax.jit(ph.update, in_shardings=(repl, dsh), out_shardings=(repl, repl),
                                donate_argnums=0) for ph in agent.phases}
    end = total if stop_after is None else min(total, stop_after)
    bar = None
    if progress:
        from tqdm import tqdm      # text bars: tqdm.auto warns without ipywidgets
        bar = tqdm(total=total, initial=step, desc=run_dir.name, mininterval=30.0)
    t0 = time.perf_counter()

    def batch_at(i):
        return jax.device_put(_prepare(cfg, data.sample(i), state_normalizer), dsh)
    try:
        batch = batch_at(step) if step < end else None
        while step < end:
            phase, start = _phase_at(agent, step)
            state, m = updates[phase.name](state, batch)
            # the next batch (a function of its step alone) is sampled and augmented while the
            # dispatched update runs; reading the loss then waits for it
            batch = batch_at(step + 1) if step + 1 < end else None
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
                host = jax.device_get(state)
                bad = _non_finite_leaves(host)
                if bad:
                    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
                    raise NonFiniteLossError(
                        f"non-finite parameters at step {step} (phase {phase.name!r}): "
                        f"{', '.join(bad[:3])}{more}; checkpoint step_{step:08d}.msgpack not "
                        f"written; last finite checkpoint: {last_good}")
                last_good = ckpt.save_state(run_dir, step, host)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if step == total:
        ckpt.save_params(run_dir / "critic.msgpack",
                         jax.device_get(state["critic"][ckpt.steer_params_key(cfg)]))
    return TrainResult(state, run_dir, rows, time.perf_counter() - t0)
