"""Critic training throughput: steps/s, samples/s and achieved GFLOP/s (XLA cost analysis).

Rows: the full Cal-QL update (behaviour π, 3x4 CQL actions) for the MLP state critic and the
small conv critic at 64x64; and a critic step with 10 extra actions per state (the CQL /
re-ranking pattern) with encoder reuse (encode once, ``q_from_embedding`` for all actions) and
without (the whole network re-run per action), for conv_small at 64x64 and ResNet-34 at
128x128. Batch 256, except ResNet-34 without reuse, which runs at batch 32 unless
``VGPS_BENCH_FULL=1`` (one step at 256 takes minutes here); its samples/s is comparable.
``VGPS_BENCH_SKIP_RESNET=1`` leaves out the ResNet-34 rows (several minutes on 2 cores).

Side by side (batch 128, 64 px, the image encoders' goal of issue 16: <= 0.15 s per Cal-QL update
at >= 60 GFLOP/s on 2 cores): the full Cal-QL update for ``patch_mixer``, ``conv_small`` and
ResNet-34, all compiled first and then timed in alternating rounds, so that on a shared machine
every encoder sees the same load; medians over the rounds, ``x conv_small`` is conv_small's median
s/step over the row's. A 1024^3 float32 matmul timed in the same rounds gives the machine's
attainable GFLOP/s at that moment (``sgemm reference``).
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vgps.agents import calql
from vgps.agents.synthetic import random_transitions
from vgps.config import CriticConfig
from vgps.nets.critic import CriticNet

EXTRA = 10


def _flops(compiled) -> float:
    try:
        ca = compiled.cost_analysis()
        ca = ca[0] if isinstance(ca, (list, tuple)) else ca
        return float(ca.get("flops", float("nan")))
    except Exception:  # noqa: BLE001 - cost analysis is best effort
        return float("nan")


def _time(step, state, batch, n_steps: int):
    compiled = jax.jit(step).lower(state, batch).compile()
    state, m = compiled(state, batch)                 # warm-up
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(n_steps):
        state, m = compiled(state, batch)
    jax.block_until_ready(m)
    return (time.perf_counter() - t0) / n_steps, _flops(compiled)


def _reuse_step(net, tx, reuse: bool):
    """Critic step: TD-like loss on Q(s, a) + logsumexp over EXTRA actions per state."""
    def loss_fn(p, b):
        if reuse:
            z = net.apply(p, b["observations"], b["language"], method=CriticNet.encode)
            q = net.apply(p, z, b["actions"], method=CriticNet.q_from_embedding)
            qx = net.apply(p, z, b["extra"], method=CriticNet.q_from_embedding)
        else:
            q = net.apply(p, b["observations"], b["language"], b["actions"])
            qx = jnp.stack([net.apply(p, b["observations"], b["language"], b["extra"][:, k])
                            for k in range(EXTRA)], axis=-1)
        return jnp.mean((q - b["rewards"]) ** 2) + jnp.mean(jax.nn.logsumexp(qx, -1) - q)

    def step(state, b):
        p, opt = state
        loss, g = jax.value_and_grad(loss_fn)(p, b)
        u, opt = tx.update(g, opt, p)
        return (optax.apply_updates(p, u), opt), loss
    return step


def _batch(cfg, batch_size, image_size=None):
    tr = random_transitions(batch_size, state_dim=20, image_size=image_size, seed=0)
    key = "image" if image_size else "state"
    for k in ("observations", "next_observations"):
        tr[k] = {key: tr[k][key]}
    tr["extra"] = np.random.default_rng(1).uniform(-1, 1, (batch_size, EXTRA, 7)).astype(np.float32)
    return tr


def _row(name, batch_size, sec, flops):
    return {"config": name, "batch": batch_size, "s/step": sec, "steps/s": 1 / sec,
            "samples/s": batch_size / sec, "GFLOP/step": flops / 1e9, "GFLOP/s": flops / 1e9 / sec}


def bench_calql(name, cfg, image_size, n_steps):
    agent = calql.make(cfg)
    b = _batch(cfg, cfg.batch_size, image_size)
    b.pop("extra")
    state = agent.init(jax.random.PRNGKey(0), jax.tree.map(lambda x: x[:1], b))
    sec, fl = _time(agent.phases[-1].update, state, b, n_steps)
    return _row(name, cfg.batch_size, sec, fl)


def _sgemm_seconds(n: int = 1024, reps: int = 5) -> float:
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x).lower(a).compile()
    f(a).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(reps):
        out = f(a)
    out.block_until_ready()
    return (time.perf_counter() - t0) / reps


def bench_calql_side_by_side(cfgs: dict, image_size: int, rounds: int = 5, steps: dict | None = None,
                             reference: str | None = None) -> list[dict]:
    """Full Cal-QL update per ``{name: CriticConfig}``, compiled up front, then ``rounds`` rounds
    each timing ``steps[name]`` (default 3) updates of every config in turn, and a 1024^3 sgemm.
    Rows carry the median s/step, ``x <reference>`` (reference median / row median) and the
    per-round spread."""
    steps = steps or {}
    built = {}
    for name, cfg in cfgs.items():
        agent = calql.make(cfg)
        b = _batch(cfg, cfg.batch_size, image_size)
        b.pop("extra")
        state = agent.init(jax.random.PRNGKey(0), jax.tree.map(lambda x: x[:1], b))
        compiled = jax.jit(agent.phases[-1].update).lower(state, b).compile()
        state, m = compiled(state, b)                 # warm-up
        jax.block_until_ready(m)
        built[name] = [compiled, state, b, _flops(compiled)]
    times = {name: [] for name in cfgs}
    sgemm = []
    for _ in range(rounds):
        sgemm.append(_sgemm_seconds())
        for name, bt in built.items():
            n = steps.get(name, 3)
            t0 = time.perf_counter()
            for _ in range(n):
                bt[1], m = bt[0](bt[1], bt[2])
            jax.block_until_ready(m)
            times[name].append((time.perf_counter() - t0) / n)
    ref = statistics.median(times[reference]) if reference else None
    rows = []
    for name, bt in built.items():
        sec = statistics.median(times[name])
        row = _row(name, cfgs[name].batch_size, sec, bt[3])
        if ref:
            row[f"x {reference}"] = ref / sec
        row["rounds (min-max s/step)"] = f"{rounds} ({min(times[name]):.3g}-{max(times[name]):.3g})"
        rows.append(row)
    sec = statistics.median(sgemm)
    rows.append(_row("sgemm reference 1024^3", 1, sec, 2.0 * 1024 ** 3)
                | {"rounds (min-max s/step)": f"{rounds} ({min(sgemm):.3g}-{max(sgemm):.3g})"})
    return rows


def bench_reuse(name, cfg, image_size, batch_size, reuse, n_steps):
    net, tx = CriticNet(cfg), optax.adam(3e-4)
    b = _batch(cfg, batch_size, image_size)
    p = net.init(jax.random.PRNGKey(0), jax.tree.map(lambda x: x[:1], b["observations"]),
                 b["language"][:1], b["actions"][:1])
    sec, fl = _time(_reuse_step(net, tx, reuse), (p, tx.init(p)), b, n_steps)
    return _row(f"{name} {'reuse' if reuse else 'no reuse'} (+{EXTRA} actions)", batch_size, sec, fl)


def run(report=print) -> list[dict]:
    """Run every row, calling ``report(row)`` as each finishes."""
    full = os.environ.get("VGPS_BENCH_FULL") == "1"
    mlp = CriticConfig(batch_size=256)
    conv = dataclasses.replace(mlp, obs_modality="image", encoder="conv_small")
    r34 = dataclasses.replace(mlp, obs_modality="image", encoder="resnet34")
    jobs = [lambda: bench_calql("Cal-QL update, MLP state critic", mlp, None, 20),
            lambda: bench_reuse("MLP state", mlp, None, 256, True, 20),
            lambda: bench_reuse("MLP state", mlp, None, 256, False, 20),
            lambda: bench_calql("Cal-QL update, conv_small 64px", conv, 64, 3),
            lambda: bench_reuse("conv_small 64px", conv, 64, 256, True, 3),
            lambda: bench_reuse("conv_small 64px", conv, 64, 256, False, 1),
            lambda: bench_reuse("ResNet-34 128px", r34, 128, 256, True, 1),
            lambda: bench_reuse("ResNet-34 128px", r34, 128, 256 if full else 32, False, 1)]
    skip_resnet = os.environ.get("VGPS_BENCH_SKIP_RESNET") == "1"
    if skip_resnet:
        jobs = jobs[:-2]
    rows = []
    for job in jobs:
        rows.append(job())
        report(rows[-1])
    # the image encoders side by side: batch 128, 64 px, alternating rounds (see module docstring)
    b128 = dataclasses.replace(mlp, obs_modality="image", batch_size=128)
    side = {"Cal-QL update, patch_mixer 64px": dataclasses.replace(b128, encoder="patch_mixer"),
            "Cal-QL update, conv_small 64px": dataclasses.replace(b128, encoder="conv_small")}
    if not skip_resnet:
        side["Cal-QL update, ResNet-34 64px"] = dataclasses.replace(b128, encoder="resnet34")
    for row in bench_calql_side_by_side(side, 64, rounds=5, reference="Cal-QL update, conv_small 64px",
                                        steps={"Cal-QL update, patch_mixer 64px": 5,
                                               "Cal-QL update, ResNet-34 64px": 1}):
        rows.append(row)
        report(row)
    return rows


def main() -> None:
    import pandas as pd
    from vgps.plotting import to_markdown
    print(f"jax {jax.__version__}, devices {jax.devices()}", flush=True)

    def report(row):
        print("  " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in row.items()), flush=True)
    df = pd.DataFrame(run(report))
    print(to_markdown(df, ".3g"))


if __name__ == "__main__":
    main()
