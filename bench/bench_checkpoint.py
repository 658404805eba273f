"""Training-state checkpoints: our msgpack rotation (``vgps.agents.checkpoint``) against
orbax-checkpoint's ``CheckpointManager`` (what octo uses), side by side in one process.

Measures, for the ``default`` profile's Cal-QL state (critic, target, behaviour π, Adam moments)
and one with 3x wider layers (about 6x the parameters): import time in a fresh interpreter, save (until durable) and restore wall
time, files and bytes written per checkpoint. Medians of interleaved repetitions.
"""
from __future__ import annotations

import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from vgps.agents import calql
from vgps.agents import checkpoint as ckpt
from vgps.agents.synthetic import random_transitions
from vgps.config import get_profile

REPS = 5


def _import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                 text=True).stdout.strip().splitlines()[-1]) for _ in range(3)]
    return statistics.median(runs)


def _state(scale: int):
    cfg = get_profile("default").critic
    if scale > 1:
        cfg = dataclasses.replace(cfg, hidden_dims=tuple(d * scale for d in cfg.hidden_dims),
                                  encoder_dims=tuple(d * scale for d in cfg.encoder_dims))
    agent = calql.make(cfg)
    batch = random_transitions(4, state_dim=40)
    return jax.device_get(agent.init(jax.random.PRNGKey(0), batch))


def _tree_bytes(d: Path) -> tuple[int, int]:
    files = [p for p in d.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main():
    import orbax.checkpoint as ocp
    print(f"import: vgps.agents.checkpoint {_import_seconds('vgps.agents.checkpoint'):.2f} s, "
          f"orbax.checkpoint {_import_seconds('orbax.checkpoint'):.2f} s (fresh interpreter, "
          "median of 3)")
    print("| state | parameters | ours: save / restore (s) | orbax: save / restore (s) | "
          "ours: files, MB | orbax: files, MB |")
    print("|---|---:|---|---|---|---|")
    for label, scale in (("default Cal-QL", 1), ("3x wider", 3)):
        state = _state(scale)
        n = sum(int(np.size(x)) for x in jax.tree.leaves(state))
        t = {"ours_save": [], "ours_load": [], "orbax_save": [], "orbax_load": []}
        with tempfile.TemporaryDirectory() as tmp:
            ours, orb = Path(tmp) / "ours", Path(tmp) / "orbax"
            mgr = ocp.CheckpointManager(orb, options=ocp.CheckpointManagerOptions(max_to_keep=2))
            for step in range(1, REPS + 1):
                t0 = time.perf_counter()
                path = ckpt.save_state(ours, step, state)
                t["ours_save"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                ckpt.restore_bytes(path, state)
                t["ours_load"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                mgr.save(step, args=ocp.args.StandardSave(state))
                mgr.wait_until_finished()
                t["orbax_save"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                mgr.restore(step, args=ocp.args.StandardRestore(state))
                t["orbax_load"].append(time.perf_counter() - t0)
            mgr.close()
            fo, bo = _tree_bytes(ours / "checkpoints")
            fx, bx = _tree_bytes(orb)
        m = {k: statistics.median(v) for k, v in t.items()}
        print(f"| {label} | {n:,} | {m['ours_save']:.3f} / {m['ours_load']:.3f} | "
              f"{m['orbax_save']:.3f} / {m['orbax_load']:.3f} | {fo // 2}, {bo / 2e6:.1f} | "
              f"{fx // 2}, {bx / 2e6:.1f} |", flush=True)


if __name__ == "__main__":
    main()
