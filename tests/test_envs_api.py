"""Env API: spaces, registration, errors, shifts, episode ends, expert success."""
import gymnasium as gym
import numpy as np
import pytest

from vgps.envs import EVAL_TASKS, SHIFTS, STATE_DIM, TRAIN_TASKS, gym_id, make, object_slice
from vgps.envs.experts import ScriptedExpert, rollout

HORIZONS = {"widowx_spoon_on_towel": 60, "widowx_carrot_on_plate": 60, "widowx_stack_blocks": 60,
            "widowx_eggplant_in_basket": 120, "google_robot_pick_coke_can": 80,
            "google_robot_move_near": 80}


def test_task_lists():
    assert EVAL_TASKS == tuple(HORIZONS)
    assert set(EVAL_TASKS) < set(TRAIN_TASKS) and len(TRAIN_TASKS) > len(EVAL_TASKS)


def test_unknown_task_lists_valid_ids():
    with pytest.raises(ValueError, match="widowx_carrot_on_plate"):
        make("widowx_carrot_on_moon")


def test_unknown_shift():
    with pytest.raises(ValueError, match="table_height_low"):
        make("widowx_carrot_on_plate", shift="table_on_fire", render=False)


@pytest.mark.parametrize("bad,msg", [(np.full(7, np.nan), "NaN"), (np.zeros(6), "shape"),
                                     (np.zeros((1, 7)), "shape")])
def test_invalid_actions(bad, msg):
    env = make("widowx_carrot_on_plate", render=False)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=msg):
        env.step(bad)


def test_step_before_reset():
    env = make("widowx_carrot_on_plate", render=False)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(7))


def test_observation_and_spaces():
    env = make("google_robot_move_near", image_size=32)
    obs, info = env.reset(seed=3)
    assert obs["image"].shape == (32, 32, 3) and obs["image"].dtype == np.uint8
    assert obs["image"].max() > 0
    assert obs["state"].shape == (STATE_DIM,) and obs["state"].dtype == np.float32
    assert env.observation_space.contains(obs)
    assert info["instruction"].startswith("move ") and " near " in info["instruction"]
    present = [n for n in ("coke_can", "pepsi_can", "apple", "orange", "sponge")
               if obs["state"][object_slice(n)][3] == 1]
    assert len(present) == 3
    env.close()


def test_render_false_gives_blank_images_and_same_state():
    a, b = make("widowx_stack_blocks", render=False), make("widowx_stack_blocks")
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    assert not oa["image"].any()
    act = np.array([0.02, 0.01, -0.02, 0, 0, 0.05, 0.0], np.float32)
    for _ in range(3):
        oa = a.step(act)[0]
        ob = b.step(act)[0]
    np.testing.assert_array_equal(oa["state"], ob["state"])
    b.close()


def test_gymnasium_make():
    env = gym.make(gym_id("widowx_carrot_on_plate"), render=False)
    obs, info = env.reset(seed=0)
    assert info["instruction"] == "put carrot on plate"
    env.close()


def test_truncates_at_horizon():
    env = make("google_robot_pick_coke_can", render=False)
    env.reset(seed=0)
    for t in range(80):
        _, r, term, trunc, info = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
        assert not term
    assert trunc and not info["success"] and info["step"] == 80


@pytest.mark.parametrize("shift", sorted(SHIFTS))
def test_shifts_render(shift):
    env = make("widowx_carrot_on_plate", image_size=32, shift=shift)
    base = make("widowx_carrot_on_plate", image_size=32)
    o, _ = env.reset(seed=1)
    ob, _ = base.reset(seed=1)
    assert not np.array_equal(o["image"], ob["image"])
    src = object_slice("carrot")
    if "height" not in shift:       # shifts keep the task's layout for a seed
        np.testing.assert_allclose(o["state"][src][:2], ob["state"][src][:2], atol=1e-3)
    env.close()
    base.close()


def test_table_height_shift_moves_objects():
    lo = make("widowx_carrot_on_plate", shift="table_height_low", render=False).reset(seed=0)[0]
    hi = make("widowx_carrot_on_plate", shift="table_height_high", render=False).reset(seed=0)[0]
    dz = hi["state"][object_slice("plate")][2] - lo["state"][object_slice("plate")][2]
    assert dz == pytest.approx(2 * 0.0254, abs=2e-3)


@pytest.mark.parametrize("task", EVAL_TASKS)
def test_zero_noise_expert_succeeds(task):
    env = make(task, render=False)
    results = [rollout(env, ScriptedExpert("expert"), s) for s in range(3)]
    assert all(r["success"] for r in results)
    r = results[0]
    assert len(r["actions"]) <= HORIZONS[task]


def test_failure_modes_are_flagged_and_fail_sometimes():
    env = make("widowx_carrot_on_plate", render=False)
    out = [rollout(env, ScriptedExpert("mixed", failure_mode="late_release", seed=0), s) for s in range(6)]
    assert all(r["failure_mode"] == "late_release" for r in out)
    assert not all(r["success"] for r in out)


def test_expert_rejects_unknown_quality():
    with pytest.raises(ValueError, match="quality"):
        ScriptedExpert("perfect")


_RENDER = ("import vgps.envs as E\n"
           "E.make('widowx_carrot_on_plate').reset(seed=0)\n")


@pytest.mark.parametrize("code,err", [
    # rendering first used to segfault at `import tensorflow` (exit code -11, no message)
    (_RENDER + "import tensorflow\n",
     "ImportError: cannot import tensorflow: this process has rendered with Mesa GL"),
    (_RENDER + "from vgps.data.rlds import iter_episodes\nfrom vgps.paths import TEST_DATA\n"
     "next(iter_episodes(TEST_DATA / 'bridge_tiny' / '1.0.0'))\n", "cannot import tensorflow"),
    ("import tensorflow\n" + _RENDER, "GLUnavailableError: TensorFlow is loaded in this process"),
])
def test_rendering_and_tensorflow_refuse_to_share_a_process(code, err):
    """Either order ends in a clear Python error naming the clash, never a segfault."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert err in r.stderr, r.stderr[-2000:]
