"""The SIMPLER wrapper through gymnasium's real TimeLimit (which in gymnasium 1.x no longer
forwards attributes such as get_language_instruction or robot_uid). simpler_env itself cannot be
installed here (numpy < 2, sapien 2.2); a minimal module stands in for its two entry points."""
import sys
import types

import gymnasium as gym
import numpy as np
import pytest

from vgps.eval.simpler import STICKY_STEPS, SimplerEnv


class _Base(gym.Env):
    robot_uid = "widowx"
    observation_space = gym.spaces.Box(0, 255, (4, 4, 3), np.uint8)
    action_space = gym.spaces.Box(-1, 1, (7,), np.float32)

    def __init__(self):
        self.sent = []

    def get_language_instruction(self):
        return "put the spoon on the towel"

    def reset(self, seed=None, options=None):
        return {"img": np.zeros((4, 4, 3), np.uint8)}, {}

    def step(self, action):
        self.sent.append(np.asarray(action))
        return {"img": np.zeros((4, 4, 3), np.uint8)}, 0.0, False, False, {"success": False}


@pytest.fixture
def simpler(monkeypatch):
    def image(env, obs):
        assert env.robot_uid == "widowx"          # raises AttributeError through TimeLimit in 1.x
        return obs["img"]
    mods = {"simpler_env": types.ModuleType("simpler_env"),
            "simpler_env.utils": types.ModuleType("simpler_env.utils"),
            "simpler_env.utils.env": types.ModuleType("simpler_env.utils.env"),
            "simpler_env.utils.env.observation_utils": types.SimpleNamespace(
                get_image_from_maniskill2_obs_dict=image)}
    mods["simpler_env"].make = lambda name: gym.wrappers.TimeLimit(_Base(), 10)
    for k, v in mods.items():
        monkeypatch.setitem(sys.modules, k, v)


def test_instruction_and_image_come_through_timelimit(simpler):
    env = SimplerEnv("widowx_spoon_on_towel")
    assert isinstance(env.env, gym.wrappers.TimeLimit)
    with pytest.raises(AttributeError):
        env.env.get_language_instruction()        # what the wrapper used to call
    obs, info = env.reset(seed=0)
    assert info["instruction"] == "put the spoon on the towel" and info["embodiment"] == "widowx"
    env.step(np.array([0.01, 0, 0, 0, 0, np.pi / 2, 0.9]))
    sent = env.base.sent[-1]
    np.testing.assert_allclose(sent[3:6], [0, 0, np.pi / 2], atol=1e-6)   # axis-angle
    assert sent[6] == 1.0                                                  # WidowX: open → +1
    env.step(np.array([0, 0, 0, 0, 0, 0, 0.1]))
    assert env.base.sent[-1][6] == -1.0


def test_google_gripper_is_relative_and_sticky(simpler):
    env = SimplerEnv("google_robot_pick_coke_can")
    env.reset(seed=0)
    opens = [1, 1, 0] + [0] * (STICKY_STEPS + 2) + [1]
    for o in opens:
        env.step(np.array([0, 0, 0, 0, 0, 0, float(o)]))
    g = [a[6] for a in env.base.sent]
    assert g[:2] == [0.0, 0.0]                                  # first step and no change: keep
    assert g[2:2 + STICKY_STEPS] == [1.0] * STICKY_STEPS        # open → closed: +1 (close), held 15
    assert g[2 + STICKY_STEPS:-1] == [0.0] * 3                  # then nothing to change
    assert g[-1] == -1.0                                        # closed → open: −1


def test_widowx_gripper_debounce_as_the_released_vgps_evaluation(simpler):
    """V-GPS's SimplerEnv fork (OctoInference.step, sticky_step=3): the WidowX gripper starts open
    and switches only after 3 consecutive commands for the other state; 1 = follow at once."""
    env = SimplerEnv("widowx_spoon_on_towel", widowx_sticky_steps=3)
    env.reset(seed=0)
    opens = [0, 0, 1, 0, 0, 0, 0, 1, 1, 1]
    for o in opens:
        env.step(np.array([0, 0, 0, 0, 0, 0, float(o)]))
    g = [a[6] for a in env.base.sent]
    # two "close" commands then "open": still open; three "close": closed on the third; three
    # "open" after that: open again on the third
    assert g == [1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0, 1.0]
    env.reset(seed=0)                                   # reset: open again, count cleared
    env.step(np.array([0, 0, 0, 0, 0, 0, 0.0]))
    assert env.base.sent[-1][6] == 1.0
    with pytest.raises(ValueError, match="widowx_sticky_steps"):
        SimplerEnv("widowx_spoon_on_towel", widowx_sticky_steps=0)


def test_env_factory_passes_the_profiles_widowx_debounce(simpler):
    from vgps.config import EvalConfig, get_profile
    from vgps.eval.simpler import env_factory
    make_env, where = env_factory(get_profile("paper").eval)
    assert where.startswith("SIMPLER is installed")
    assert make_env("widowx_spoon_on_towel").widowx_sticky_steps == 3
    assert env_factory(EvalConfig())[0]("widowx_spoon_on_towel").widowx_sticky_steps == 1


def test_env_factory_without_simpler_is_the_embedded_suite(monkeypatch):
    from vgps.config import EvalConfig
    from vgps.eval import simpler
    monkeypatch.setattr(simpler, "simpler_available", lambda: False)
    _, where = simpler.env_factory(EvalConfig())
    assert "embedded MuJoCo suite" in where
