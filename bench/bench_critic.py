"""Critic training throughput: steps/s, samples/s and achieved GFLOP/s (XLA cost analysis).

Rows: the full Cal-QL update (behaviour π, 3x4 CQL actions) for the MLP state critic and the
small conv critic at 64x64; and a critic step with 10 extra actions per state (the CQL /
re-ranking pattern) with encoder reuse (encode once, ``q_from_embedding`` for all actions) and
without (the whole network re-run per action), for conv_small at 64x64 and ResNet-34 at
128x128. Batch 256, except ResNet-34 without reuse, which runs at batch 32 unless
``VGPS_BENCH_FULL=1`` (one step at 256 takes minutes here); its samples/s is comparable.
``VGPS_BENCH_SKIP_RESNET=1`` leaves out the two ResNet-34 rows (several minutes on 2 cores).
"""
from __future__ import annotations

import dataclasses
import os
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
    if os.environ.get("VGPS_BENCH_SKIP_RESNET") == "1":
        jobs = jobs[:-2]
    rows = []
    for job in jobs:
        rows.append(job())
        report(rows[-1])
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
