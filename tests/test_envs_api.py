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


# ------------------------------------------------------------------ diverse training scenes
def _hue(rgb):
    import colorsys
    return colorsys.rgb_to_hsv(*rgb)[0]


def test_training_and_held_out_scene_ranges_are_disjoint():
    """200 diverse draws never show a held-out variant; every held-out shift draws inside its own
    range; each family is varied in about half of the training scenes; the draw is a function
    of the seed."""
    from vgps.envs.shifts import (DISTRACTOR_POOL, HELDOUT_RANGE, INCH, TRAIN_DISTRACTORS,
                                  TRAIN_RANGE, parse_shift)
    div = parse_shift("diverse")
    scenes = [div.draw(s) for s in range(200)]
    assert scenes[7] == div.draw(7) and scenes[7] != scenes[8]
    freq = {f: np.mean([any(x.startswith(f) for x in sc.families()) for sc in scenes])
            for f in ("table_color", "table_texture", "table_height", "lighting", "camera_jitter",
                      "distractors")}
    assert all(0.38 < v < 0.62 for v in freq.values()), freq
    for sc in scenes:
        if sc.table_color is not None:
            assert TRAIN_RANGE["hue"][0] <= _hue(sc.table_color) < TRAIN_RANGE["hue"][1]
        assert sc.texture in (None, "speckle")
        assert sc.table_dz in (0.0, -0.5 * INCH, 0.5 * INCH)
        if sc.lighting is not None:
            assert 0.55 <= sc.lighting[1] <= 0.9 and max(map(abs, sc.lighting[0][:2])) < 0.35
        if sc.camera_jitter is not None:
            assert max(map(abs, sc.camera_jitter[0])) <= 0.015
            assert max(map(abs, sc.camera_jitter[1])) <= np.deg2rad(1.5)
        assert sc.distractor_pool in ("", "train") and sc.n_distractors in (0, 1, 2)
    for s in range(50):
        c, li, cam = (parse_shift(n).draw(s) for n in ("table_color", "lighting", "camera_jitter"))
        assert HELDOUT_RANGE["hue"][0] <= _hue(c.table_color) < HELDOUT_RANGE["hue"][1]
        assert 0.25 <= li.lighting[1] <= 0.45 and min(map(abs, li.lighting[0][:2])) > 0.3
        assert min(map(abs, cam.camera_jitter[0])) >= 0.02
        assert c.families() == ("table_color",)
    assert parse_shift("table_height_low").draw(0).table_dz == -INCH
    assert parse_shift("diverse+table_height_high").draw(3).table_dz == INCH
    d = parse_shift("diverse+distractors").draw(0)
    assert (d.distractor_pool, d.n_distractors) == ("held_out", 2)
    from vgps.envs.tasks import TASKS, task_objects
    for emb in TRAIN_DISTRACTORS:
        used = {n for t in TASKS.values() if t.embodiment == emb for n in task_objects(t)}
        assert not set(TRAIN_DISTRACTORS[emb]) & used      # training clutter: never a task object
        assert set(DISTRACTOR_POOL[emb]) <= used           # held-out clutter: other tasks' objects


def test_diverse_scenes_are_seeded_and_the_expert_still_succeeds():
    """The same seed gives the same frames and state; objects rest on the drawn table height;
    only training-pool distractors appear; the zero-noise expert succeeds in most scenes."""
    from vgps.envs.shifts import INCH, TRAIN_DISTRACTORS
    env = make("widowx_carrot_on_plate", image_size=32, shift="diverse")
    again = make("widowx_carrot_on_plate", image_size=32, shift="diverse")
    seen_dz, ok = set(), []
    for s in range(8):
        o, _ = env.reset(seed=s)
        o2, _ = again.reset(seed=s)
        np.testing.assert_array_equal(o["image"], o2["image"])
        np.testing.assert_array_equal(o["state"], o2["state"])
        dz = env.scene.table_dz
        seen_dz.add(round(dz / INCH, 2))
        assert o["state"][object_slice("plate")][2] == pytest.approx(dz + 0.005, abs=3e-3)
        extra = set(env.present) - set(env.task_present)
        assert extra <= set(TRAIN_DISTRACTORS["widowx"]) and len(extra) == env.scene.n_distractors
        ok.append(rollout(env, ScriptedExpert("expert"), s)["success"])
    assert seen_dz == {-0.5, 0.0, 0.5}
    assert np.mean(ok) >= 0.75, ok
    env.close()
    again.close()


def test_generation_records_the_scene_of_each_diverse_episode():
    from vgps.config import BenchmarkConfig
    from vgps.envs import generate
    single, diverse = BenchmarkConfig(render_images=False), \
        BenchmarkConfig(render_images=False, scenes="diverse")
    assert generate.fingerprint(single) != generate.fingerprint(diverse)
    task = "widowx_carrot_on_plate"
    ep = generate.run_episode(task, 5, diverse)
    assert ep["metadata"]["scene"] == ("+".join(generate._env(task, diverse).scene.families())
                                       or "default")
    plain = generate.run_episode(task, 5, single)      # same task and seed, another env
    assert "scene" not in plain["metadata"]
    assert generate._env(task, single).scene.families() == ()


def test_env_factory_renders_the_embedded_suite_for_image_critics(monkeypatch):
    from vgps.config import EvalConfig
    from vgps.eval import simpler
    monkeypatch.setattr(simpler, "simpler_available", lambda: False)
    for render in (False, True):
        make_env, where = simpler.env_factory(EvalConfig(), render=render)
        env = make_env("widowx_spoon_on_towel")
        assert env.unwrapped.do_render is render and ("camera frames" in where) is render
        env.close()
