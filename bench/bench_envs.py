"""Embedded benchmark: scripted-expert success (zero-noise vs mixed quality), env speed, generation rate.

``python -m bench envs`` (or ``make bench``). Environment variables: ``VGPS_BENCH_EPISODES``
(default 100 per task and expert), ``VGPS_BENCH_STEPS`` (rendered steps timed, default 600).
"""
from __future__ import annotations

import os
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")


def expert_table(episodes: int = 100, seed0: int = 0):
    """Success of the zero-noise and the mixed-quality expert on every EVAL task (state-only)."""
    import pandas as pd

    from vgps.envs import EVAL_TASKS, make
    from vgps.envs.experts import ScriptedExpert, rollout
    rows = []
    for t in EVAL_TASKS:
        env = make(t, render=False)
        row = {"task": t}
        for q in ("expert", "mixed"):
            res = [rollout(env, ScriptedExpert(q, seed=0), seed0 + s) for s in range(episodes)]
            row[f"{q}_success"] = float(np.mean([r["success"] for r in res]))
            row[f"{q}_steps"] = float(np.mean([len(r["actions"]) for r in res]))
            row[f"{q}_unstable"] = int(sum(r["unstable"] for r in res))
        rows.append(row)
        env.close()
    return pd.DataFrame(rows)


def env_speed(steps: int = 600, image_size: int = 64, task: str = "widowx_carrot_on_plate",
              render: bool = True) -> float:
    """Environment steps per second in one process (expert actions, resets included)."""
    from vgps.envs import make
    from vgps.envs.experts import ScriptedExpert
    env = make(task, image_size=image_size, render=render)
    ex, n, seed = ScriptedExpert("mixed"), 0, 0
    t0 = time.perf_counter()
    while n < steps:
        env.reset(seed=seed)
        ex.reset(env)
        seed += 1
        done = False
        while not done and n < steps:
            _, _, term, trunc, _ = env.step(ex.act(env))
            done = term or trunc
            n += 1
    dt = time.perf_counter() - t0
    env.close()
    return n / dt


def generation_rate(episodes: int = 30) -> float:
    """Rendered 64-px mixed-expert episodes per minute in one process (both embodiments)."""
    from vgps.config import get_profile
    from vgps.envs.generate import episode_plan, run_episode
    cfg = get_profile("smoke").benchmark
    plan = episode_plan(cfg, "bridge_like", "train")[: episodes * 2 // 3] + \
        episode_plan(cfg, "fractal_like", "train")[: episodes // 3]
    t0 = time.perf_counter()
    for t, s in plan:
        run_episode(t, s, cfg)
    return len(plan) / (time.perf_counter() - t0) * 60


def main() -> None:
    from vgps.plotting import to_markdown
    n = int(os.environ.get("VGPS_BENCH_EPISODES", 100))
    t0 = time.perf_counter()
    df = expert_table(n)
    print(f"Scripted-expert success over {n} seeded episodes per task (seeds 0..{n - 1}), "
          f"state-only ({time.perf_counter() - t0:.0f} s):")
    print(to_markdown(df, ".2f"))
    steps = int(os.environ.get("VGPS_BENCH_STEPS", 600))
    for task in ("widowx_carrot_on_plate", "google_robot_move_near"):
        r64 = env_speed(steps, 64, task)
        r0 = env_speed(steps, 64, task, render=False)
        print(f"{task}: {r64:.0f} steps/s with 64x64 rendering, {r0:.0f} steps/s state-only (1 process)")
    rate = generation_rate()
    print(f"data generation: {rate:.0f} rendered episodes/min in 1 process "
          f"(~{2 * rate:.0f}/min with 2 workers)")


if __name__ == "__main__":
    main()
