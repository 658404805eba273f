"""Wall-time cost of the instruction-set pin (vgps/isa.py), measured side by side.

Each workload runs in a fresh process per setting — ``pinned`` (the default), ``native``
(``VGPS_ISA=native``: every library picks its kernels by this CPU) and the pin with XLA's YNNPACK
fusions left on (what switching them off costs) — and the settings alternate over ``REPS`` rounds, so slow and
fast moments of this shared machine fall on all of them; the table holds medians and the ratio to
``native``. Workloads: a Cal-QL update of the default state critic (batch 128) and of the 64-px
conv critic; rendered dataset episodes (the datasets stage); one steered evaluation step
(V-GPS, K=10, state stand-in, B=16).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

REPS = 2
SETTINGS = ("pinned", "native", "pinned but YNNPACK on")
WORKLOADS = ("critic_state", "episodes", "steer")   # "critic_conv": add for the 64-px conv critic


def _workload(name: str) -> float:
    """Seconds per unit of ``name`` (run inside the child process)."""
    import time
    if name.startswith("critic"):
        import dataclasses

        from bench.bench_critic import bench_calql
        from vgps.config import get_profile
        cfg = get_profile("default").critic
        if name == "critic_conv":
            cfg = dataclasses.replace(cfg, obs_modality="image", encoder="conv_small")
            return bench_calql(name, cfg, 64, 3)["s/step"]
        return bench_calql(name, cfg, None, 30)["s/step"]
    if name == "episodes":
        from bench.bench_envs import generation_rate
        return 60.0 / generation_rate(episodes=12)
    if name == "steer":
        import jax

        from vgps.eval.overhead import build
        from vgps.steer import ValueGuidedPolicy
        policy, critic, obs = build("state")
        obs = {"state": np.repeat(obs["state"], 16, 0)}
        agent = ValueGuidedPolicy(policy, critic, K=10, beta=1.0, language_encoder=_enc())
        instr = ["put eggplant into yellow basket"] * 16
        agent.act(obs, instr, jax.random.split(jax.random.PRNGKey(0), 16))   # one key per row
        t0 = time.perf_counter()
        for i in range(20):
            agent.act(obs, instr, jax.random.split(jax.random.PRNGKey(i), 16))
        return (time.perf_counter() - t0) / 20
    raise ValueError(name)


def _enc():
    from vgps.eval.overhead import FixedEncoder
    return FixedEncoder()


def _env(setting: str) -> dict:
    from vgps import isa
    base = {k: v for k, v in os.environ.items() if k not in (*isa.ENV, "XLA_FLAGS", "VGPS_ISA")}
    if setting == "native":
        return {**base, "VGPS_ISA": isa.OFF}
    env = isa.pinned_environ(base)
    if setting == "pinned but YNNPACK on":
        env["XLA_FLAGS"] = " ".join(f for f in env["XLA_FLAGS"].split()
                                    if not f.startswith("--xla_cpu_experimental_ynn_fusion_type"))
    return env


def _child(name: str, setting: str) -> float:
    r = subprocess.run([sys.executable, "-m", "bench.bench_isa", "--child", name], env=_env(setting),
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"{name} ({setting}) failed:\n{r.stderr[-1500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["seconds"]


def run(report=print):
    import pandas as pd
    times = {(w, s): [] for w in WORKLOADS for s in SETTINGS}
    for rep in range(REPS):
        for w in WORKLOADS:
            for s in SETTINGS:
                times[(w, s)].append(_child(w, s))
        report(f"  round {rep + 1}/{REPS} done")
    rows = []
    for w in WORKLOADS:
        native = float(np.median(times[(w, "native")]))
        for s in SETTINGS:
            med = float(np.median(times[(w, s)]))
            rows.append({"workload": w, "setting": s, "seconds": med, "vs native": med / native})
    return pd.DataFrame(rows)


def main() -> None:
    from vgps.manifest import host_info
    from vgps.plotting import to_markdown
    print(f"host: {host_info()['cpu']} ({', '.join(host_info()['simd'])}); {REPS} alternating rounds",
          flush=True)
    print(to_markdown(run(), ".3f"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps({"seconds": _workload(sys.argv[2])}))
    else:
        main()
