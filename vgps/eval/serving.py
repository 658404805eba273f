"""Steering a policy served from another process, checked against steering it in process.

:func:`served_vs_in_process` (notebook 08) runs one stand-in three ways on the same episodes:
``ValueGuidedPolicy`` in this process; ``ValueGuidedPolicy`` around a
:class:`~vgps.remote.RemotePolicy` of ``vgps serve-policy`` in a child process; and a client of
``vgps steer-proxy`` (a third process, steering the served policy). Keys travel with every request,
so the three must give the same episodes, bit for bit. Then the per-step latency of each, measured
side by side (:func:`~vgps.eval.overhead.interleaved_times`).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from vgps.eval.harness import Evaluator, RunConfig, make_evaluator
from vgps.eval.overhead import interleaved_times
from vgps.remote import RemotePolicy, ServerProcess
from vgps.steer import ValueGuidedPolicy

WAYS = ("in process", "served policy, steered here", "steering proxy")


def served_vs_in_process(profile: str, policy_name: str, policy, critic, critic_dir, encoder,
                         tasks, episodes: int, *, K: int, beta: float, seed: int = 0,
                         num_envs: int = 10, latency_reps: int = 30):
    """``(episodes DataFrame with a 'way' column, latency DataFrame)`` for ``policy`` (the stand-in
    ``policy_name`` of ``profile``, loaded here too) steered by ``critic`` (saved in
    ``critic_dir``), K candidates, temperature β, on ``tasks`` × ``episodes`` of ``seed``. The
    episode caches are temporary: every way really runs."""
    cli = [sys.executable, "-m", "vgps.cli"]
    cfg = RunConfig(policy_name, "vgps", K, beta)
    base = RunConfig(policy_name, "policy")
    frames, lat = [], {}
    with tempfile.TemporaryDirectory() as tmp, \
            ServerProcess(cli + ["serve-policy", "--policy", policy_name, "--profile", profile,
                                 "--port", "0"]) as psrv, \
            ServerProcess(cli + ["steer-proxy", "--policy", psrv.url, "--critic", critic_dir,
                                 "--K", K, "--beta", beta, "--port", "0"]) as proxy:
        tmp = Path(tmp)
        remote = RemotePolicy(psrv.url, timeout=120)
        client = RemotePolicy(proxy.url, timeout=120)
        pools = {}
        for way, pol in zip(WAYS[:2], (policy, remote)):
            ev = make_evaluator(tmp / way.replace(" ", "_"), "served", {policy_name: pol},
                                critic=critic, encoder=encoder, num_envs=num_envs,
                                env_pool=pools)
            for c in (base, cfg):
                frames.append(ev.run(c, tasks, [seed], episodes).assign(way=way))
        import vgps.envs as envs
        ev = Evaluator(lambda task: envs.make(task), lambda c: client, tmp / "proxy.sqlite",
                       num_envs=num_envs, verbose=False, env_pool=pools)
        frames.append(ev.run(cfg, tasks, [seed], episodes).assign(way=WAYS[2]))
        # latency: one environment (B = 1), the same observation for every agent
        obs, info = envs.make(tasks[0]).reset(seed=0)
        batch, instr = {k: v[None] for k, v in obs.items()}, [info["instruction"]]
        agents = {
            ("policy alone", WAYS[0]): ValueGuidedPolicy(policy, mode="policy"),
            ("policy alone", "served policy"): ValueGuidedPolicy(remote, mode="policy"),
            (f"V-GPS K={K}", WAYS[0]): ValueGuidedPolicy(policy, critic, K=K, beta=beta,
                                                         language_encoder=encoder),
            (f"V-GPS K={K}", WAYS[1]): ValueGuidedPolicy(remote, critic, K=K, beta=beta,
                                                         language_encoder=encoder),
            (f"V-GPS K={K}", WAYS[2]): client,
        }
        lat = interleaved_times(agents, batch, instr, latency_reps)
    rows = [{"agent": a, "where": w, "ms per step (median)": 1e3 * float(np.median(ts))}
            for (a, w), ts in lat.items()]
    latency = pd.DataFrame(rows)
    ref = latency.groupby("agent")["ms per step (median)"].transform("first")
    latency["× in process"] = latency["ms per step (median)"] / ref
    return pd.concat(frames, ignore_index=True), latency
