"""Scene-shift evaluation (issue 16, item 4): the shift table's numbers on constructed results,
and a real run in two scenes."""
import numpy as np
import pandas as pd
import pytest

from vgps.eval.harness import RunConfig
from vgps.eval.scenes import SCENES, scene_tasks, shift_table

V = RunConfig("p", "vgps", 10, 1.0)


def _rows(scene, policy, cfg, task, successes):
    return [{"scene": scene, "policy": policy, "method": cfg.method, "K": cfg.K, "beta": cfg.beta,
             "task": task, "env_seed": 100 + i, "success": bool(s)} for i, s in enumerate(successes)]


def _results():
    base, rows = RunConfig("p"), []
    # training scenes: base 0.5 on both tasks; V-GPS 0.75; checker: base 0.25, V-GPS 0.25
    for task in ("widowx_carrot_on_plate", "widowx_spoon_on_towel"):
        rows += _rows("training scenes", "p", base, task, [1, 1, 0, 0])
        rows += _rows("training scenes", "p", V, task, [1, 1, 1, 0])
        rows += _rows("checker texture", "p", base, task, [1, 0, 0, 0])
        rows += _rows("checker texture", "p", V, task, [0, 1, 0, 0])
    return pd.DataFrame(rows)


def test_shift_table_numbers():
    t = shift_table(_results(), reps=500)
    assert t["scene"].tolist() == ["training scenes", "checker texture"]      # SCENES order
    tr, ch = t.iloc[0], t.iloc[1]
    assert (tr["base"], tr["V-GPS"], tr["improvement"], tr["base kept"]) == (0.5, 0.75, 0.25, 1.0)
    assert (ch["base"], ch["V-GPS"], ch["improvement"], ch["base kept"]) == (0.25, 0.25, 0.0, 0.5)
    assert tr["episodes"] == 8
    # paired: in the checker scene every episode's pair differs on 2 of 8 episodes either way
    assert ch["improvement lo"] < 0 < ch["improvement hi"]
    assert 0 <= tr["improvement lo"] <= 0.25 <= tr["improvement hi"]
    for c in ("base", "V-GPS", "improvement"):
        assert (t[f"{c} lo"] <= t[c]).all() and (t[c] <= t[f"{c} hi"]).all()


def test_shift_table_reference_scene():
    """Single-scene data: the reference for "base kept" is the unshifted scene."""
    df = _results()
    df["scene"] = df["scene"].replace({"training scenes": "unshifted scene"})
    t = shift_table(df, reps=200, reference="unshifted scene")
    assert t["scene"].tolist() == ["unshifted scene", "checker texture"]
    np.testing.assert_allclose(t["base kept"], [1.0, 0.5])
    with pytest.raises(KeyError, match="unknown reference scene"):
        shift_table(df, reps=200, reference="scene Z")


def test_shift_table_needs_one_steered_setting():
    df = _results()
    other = df[df["method"] == "vgps"].assign(K=50)
    both = pd.concat([df, other], ignore_index=True)
    with pytest.raises(ValueError, match="several V-GPS settings"):
        shift_table(both)
    np.testing.assert_array_equal(shift_table(both, V, reps=200)["V-GPS"], [0.75, 0.25])


def test_scenes_cover_the_held_out_families_and_one_combination_per_embodiment():
    from vgps.envs.shifts import SHIFTS, parse_shift
    shifts = [s for s, _, _ in SCENES.values() if s is not None]    # None: the unshifted scene
    assert list(SCENES)[0] == "unshifted scene" and SCENES["unshifted scene"][0] is None
    for s in shifts:
        parse_shift(s)                                  # every scene is a valid shift
    assert set(SHIFTS) - {"diverse"} <= {n for s in shifts for n in s.split("+")}
    assert scene_tasks("texture + distractors", ["widowx_carrot_on_plate", "google_robot_pick_coke_can"]) \
        == ["widowx_carrot_on_plate"]
    assert scene_tasks("light + camera", ["widowx_carrot_on_plate", "google_robot_pick_coke_can"]) \
        == ["google_robot_pick_coke_can"]


def test_evaluate_scenes_runs_the_same_episodes_in_each_scene(tmp_path, monkeypatch):
    """Real environments: every scene's environments are made with its shift, the same (task,
    seed, episode) -> env_seed in every scene, one cache per scene, a rerun served from them."""
    import vgps.envs as envs
    from tests._steer_fakes import GaussPolicy, HashEncoder, QuadraticCritic
    from vgps.eval.scenes import evaluate_scenes
    made, real = [], envs.make
    monkeypatch.setattr(envs, "make", lambda t, **kw: made.append(kw.get("shift")) or real(t, **kw))
    kw = dict(critic=QuadraticCritic(), encoder=HashEncoder(), num_envs=2,
              scenes=("training scenes", "table 1 in lower"))
    cfgs = [RunConfig("gauss"), RunConfig("gauss", "vgps", 4, 0.0)]
    df = evaluate_scenes(tmp_path, "t", {"gauss": GaussPolicy()}, cfgs, ["widowx_carrot_on_plate"],
                         [0], 2, **kw)
    assert set(made) == {"diverse", "table_height_low"}
    assert len(df) == 8 and df.groupby(["scene", "method"]).size().tolist() == [2] * 4
    seeds = df.groupby("scene")["env_seed"].apply(lambda s: sorted(set(s)))
    assert seeds["training scenes"] == seeds["table 1 in lower"]
    assert sorted(p.name.split("-")[1] for p in tmp_path.glob("*.sqlite")) == \
        ["diverse", "table_height_low"]
    n = len(made)
    again = evaluate_scenes(tmp_path, "t", {"gauss": GaussPolicy()}, cfgs, ["widowx_carrot_on_plate"],
                            [0], 2, **kw)
    assert len(made) == n                       # every episode from the caches
    pd.testing.assert_frame_equal(again, df)
    with pytest.raises(KeyError, match="unknown scene"):
        evaluate_scenes(tmp_path, "t", {}, cfgs, [], [0], 1, scenes=("on the moon",))
