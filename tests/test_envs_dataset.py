"""Dataset generation: episode format, resumable cache, RLDS round trip through the reader."""
import dataclasses

import numpy as np
import pytest

from vgps.config import get_profile
from vgps.envs import STATE_DIM
from vgps.envs.generate import episode_plan, generate, load_chunk, run_episode, save_chunk


@pytest.fixture(scope="module")
def cfg():
    return dataclasses.replace(get_profile("smoke").benchmark, episodes_bridge_like=4,
                               episodes_fractal_like=3, image_size=32, val_fraction=0.34,
                               chunk_size=2)


def test_plan_is_deterministic_and_disjoint(cfg):
    a = episode_plan(cfg, "bridge_like", "train")
    assert a == episode_plan(cfg, "bridge_like", "train")
    seeds = {s for n in ("bridge_like", "fractal_like") for sp in ("train", "val")
             for _, s in episode_plan(cfg, n, sp)}
    assert len(seeds) == 4 + 3 + 1 + 1 and min(seeds) >= 10_000_000


def test_episode_format_and_chunk_round_trip(cfg, tmp_path):
    ep = run_episode("widowx_carrot_on_plate", 10_000_001, cfg)
    T = len(ep["action"])
    assert ep["observation"]["image"].shape == (T, 32, 32, 3)
    assert ep["observation"]["state"].shape == (T, STATE_DIM)
    assert set(ep["metadata"]) >= {"task_id", "embodiment", "quality", "failure_mode", "success", "seed"}
    save_chunk([ep, ep], tmp_path / "c.npz")
    back = load_chunk(tmp_path / "c.npz")
    assert len(back) == 2
    np.testing.assert_array_equal(back[1]["observation"]["image"], ep["observation"]["image"])
    assert back[0]["metadata"] == ep["metadata"]


# TensorFlow after MuJoCo segfaults when other env test modules were imported in the same process
# (OSMesa/TF clash): `make unit` runs this file's isolated tests in a pytest process of their own
@pytest.mark.isolated
def test_generate_and_read_back(cfg, tmp_path):
    from vgps.data.rlds import load_episodes
    paths = generate(out=tmp_path, workers=1, cfg=cfg, quiet=True)
    b = load_episodes(paths["bridge_like"], split="train")
    f = load_episodes(paths["fractal_like"], split="train")
    v = load_episodes(paths["bridge_like"], split="val")
    assert len(b) == 4 and len(f) == 3 and len(v) == 1
    ref = load_chunk(sorted((tmp_path / "_cache").rglob("bridge_like/train/chunk_00000_*.npz"))[0])[0]
    np.testing.assert_array_equal(b[0]["observation"]["image"], ref["observation"]["image"])
    np.testing.assert_allclose(b[0]["observation"]["state"], ref["observation"]["state"])
    np.testing.assert_allclose(b[0]["action"], ref["action"], atol=1e-6)
    assert b[0]["instruction"] == ref["instruction"] and b[0]["success"] == ref["success"]
    assert b[0]["metadata"]["task_id"] == ref["metadata"]["task_id"]
    assert f[0]["metadata"]["embodiment"] == "google_robot"
    np.testing.assert_array_equal(np.unique(f[0]["action"][:, 6]), np.unique(
        load_chunk(sorted((tmp_path / "_cache").rglob("fractal_like/train/chunk_00000_*.npz"))[0])[0]["action"][:, 6]))
    # resumable: a second call reuses every cached chunk
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "_cache").rglob("*.npz")}
    generate(out=tmp_path, workers=1, cfg=cfg, quiet=True)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "_cache").rglob("*.npz")} == before
