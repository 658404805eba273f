"""Watchable rollouts (issue 18 item 2): a recorded episode is the evaluated episode, frame for
frame, and the GIF is a deterministic function of the frames. Renders, so it runs with the env
tests (no TensorFlow in this process)."""
import numpy as np
import pandas as pd
from PIL import Image

from vgps.envs import make
from vgps.eval.failures import CATEGORIES, failure_modes
from vgps.eval.rollouts import first_contrast, record, side_by_side_gif

TASK = "widowx_carrot_on_plate"


class _Drift:
    """A batch agent whose action depends on its per-row key (as policies' samples do)."""
    def reset(self, batch_size):
        pass

    def act(self, obs, instructions, keys):
        import jax
        noise = np.stack([np.asarray(jax.random.normal(k, (3,))) for k in keys]) * 0.3
        a = np.zeros((len(instructions), 7), np.float32)
        a[:, :3] = noise
        a[:, 2] -= 0.5
        a[:, 6] = 1.0
        return a, {}


def test_record_is_the_evaluated_episode_and_frames_start_at_reset():
    env = make(TASK, render=True, image_size=32)
    rec = record(_Drift(), env, 12345)
    ref = failure_modes(_Drift(), [make(TASK, render=False)], [12345]).iloc[0]
    assert rec["success"] == bool(ref["success"]) and rec["outcome"] == ref["outcome"]
    assert rec["outcome"] in CATEGORIES
    assert rec["frames"].shape == (rec["steps"] + 1, 32, 32, 3) and rec["frames"].dtype == np.uint8
    obs, _ = env.reset(seed=12345)
    np.testing.assert_array_equal(rec["frames"][0], obs["image"])
    again = record(_Drift(), env, 12345)
    np.testing.assert_array_equal(again["frames"], rec["frames"])
    assert len({f.tobytes() for f in rec["frames"]}) > 2                 # the arm moves


def test_record_refuses_a_non_rendering_env():
    import pytest
    with pytest.raises(ValueError, match="render=True"):
        record(_Drift(), make(TASK, render=False), 0)


def test_side_by_side_gif_is_deterministic_and_complete(tmp_path):
    rng = np.random.default_rng(0)
    left = {"frames": rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8), "success": False,
            "outcome": "never grasped"}
    right = {"frames": rng.integers(0, 255, (9, 16, 16, 3), dtype=np.uint8), "success": True,
             "outcome": "success"}
    p1 = side_by_side_gif(left, right, tmp_path / "a.gif", ("alone", "+ V-GPS"), stride=2, hold=3,
                          header="put carrot on plate")
    p2 = side_by_side_gif(left, right, tmp_path / "b.gif", ("alone", "+ V-GPS"), stride=2, hold=3,
                          header="put carrot on plate")
    assert p1.read_bytes() == p2.read_bytes()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.gif", "b.gif"]    # no temporary left
    im = Image.open(p1)
    assert im.format == "GIF" and im.n_frames == len(range(0, 9, 2))          # steps 0, 2, 4, 6, 8
    durations = []
    for k in range(im.n_frames):
        im.seek(k)
        durations.append(im.info["duration"])
    assert durations == [120] * 4 + [120 * 4]                   # 8 fps in centiseconds, last held
    assert im.size == (2 * 32 + 6, 32 + 34 + 16 + 18)
    im.seek(im.n_frames - 1)
    rgb = np.asarray(im.convert("RGB")).reshape(-1, 3)
    assert ((rgb == (0, 120, 0)).all(1)).any()              # the success caption keeps its exact colour
    import pytest
    with pytest.raises(ValueError, match="one size"):
        side_by_side_gif(left, {**right, "frames": right["frames"][:, :8]}, tmp_path / "c.gif", ("a", "b"))


def test_first_contrast_prefers_a_grasp_failure():
    rows = [("t1", 1, "base", "dropped / released off target"), ("t1", 1, "vgps", "success"),
            ("t1", 2, "base", "never grasped"), ("t1", 2, "vgps", "success"),
            ("t2", 3, "base", "success"), ("t2", 3, "vgps", "success")]
    df = pd.DataFrame(rows, columns=["task", "env_seed", "agent", "outcome"])
    assert first_contrast(df, "base", "vgps") == {"task": "t1", "env_seed": 2, "base_outcome": "never grasped"}
    assert first_contrast(df, "base", "vgps", prefer="x")["env_seed"] == 1
    assert first_contrast(df, "vgps", "base") is None


def test_contrast_gif_records_both_agents_on_one_seed(tmp_path):
    from vgps.eval.rollouts import contrast_gif
    path = tmp_path / "c.gif"
    a, b = contrast_gif((_Drift(), _Drift()), TASK, 777, path, ("left", "right"), image_size=32, stride=4)
    assert a["instruction"] and a["instruction"] == b["instruction"]       # the header by default
    np.testing.assert_array_equal(a["frames"], b["frames"])                # same seed, same stream
    ref = failure_modes(_Drift(), [make(TASK, render=False)], [777]).iloc[0]
    assert a["outcome"] == ref["outcome"]
    with Image.open(path) as im:
        assert im.n_frames == len(range(0, a["steps"] + 1, 4)) + (a["steps"] % 4 != 0)
