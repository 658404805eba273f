"""Lock-step harness on a toy env: padding, paired seeds, CSV cache, protocols."""
import numpy as np
import pytest
import pandas as pd

from tests._steer_fakes import GaussPolicy, HashEncoder, QuadraticCritic
from vgps.eval.harness import Evaluator, RunConfig, cache_path, episode_seed, make_evaluator
from vgps.eval.protocols import best_per_policy, choose_fixed, summary
from vgps.steer import ValueGuidedPolicy


class ToyEnv:
    """Succeeds at step 3 when the seed is even, else truncates at step 5."""
    def reset(self, *, seed):
        self.seed, self.t = seed, 0
        return {"state": np.full(4, seed % 7, np.float32)}, {"instruction": "pick coke can"}

    def step(self, a):
        assert a.shape == (7,)
        self.t += 1
        ok = self.seed % 2 == 0 and self.t >= 3
        return ({"state": np.full(4, self.t, np.float32)}, float(ok), ok, self.t >= 5,
                {"success": ok, "embodiment": "toy"})


def _agent(cfg):
    return ValueGuidedPolicy(GaussPolicy(), QuadraticCritic(), K=max(cfg.K, 1), beta=cfg.beta,
                             mode=cfg.method, language_encoder=HashEncoder())


def test_lockstep_and_cache(tmp_path):
    made = []
    ev = Evaluator(lambda t: ToyEnv(), lambda c: made.append(c) or _agent(c), tmp_path / "r.csv", num_envs=4)
    df = ev.run(RunConfig("gauss"), ["t1", "t2"], [0], episodes=6)     # 6 = 4 + 2 (padded batch)
    assert len(df) == 12 and list(df["episode"][:6]) == list(range(6))
    expect = [episode_seed(0, e) % 2 == 0 for e in range(6)]
    assert list(df[df.task == "t1"]["success"]) == expect
    assert set(df["steps"]) <= {3, 5}
    n = len(made)
    ev2 = Evaluator(lambda t: ToyEnv(), lambda c: made.append(c) or _agent(c), tmp_path / "r.csv", num_envs=4)
    again = ev2.run(RunConfig("gauss"), ["t1", "t2"], [0], episodes=6)
    assert len(made) == n                                               # served from the CSV
    pd.testing.assert_frame_equal(again.reset_index(drop=True)[df.columns].astype(str),
                                  df.reset_index(drop=True).astype(str))


def test_make_evaluator_keys_its_cache_and_steers_with_the_critic(tmp_path):
    """One cache file per (label, key_parts); method names a ValueGuidedPolicy mode; envs shared."""
    pool = {}
    kw = dict(critic=QuadraticCritic(), encoder=HashEncoder(), make_env=lambda t: ToyEnv(),
              num_envs=3, env_pool=pool)
    ev = make_evaluator(tmp_path, "abl", {"gauss": GaussPolicy()}, key_parts=("critic-a", "pol-1"), **kw)
    df = ev.run(RunConfig("gauss", "vgps", 4, 0.0), ["t1"], [0], episodes=3)
    assert ev.cache_csv == cache_path(tmp_path, "abl", ("critic-a", "pol-1")) and ev.cache_csv.exists()
    assert list(df["method"]) == ["vgps"] * 3 and list(df["K"]) == [4] * 3 and len(pool["t1"]) == 3
    agent = ev.make_agent(RunConfig("gauss", "random_policy", 5, 1.0))
    assert agent.mode == "random_policy" and agent.K == 5 and agent.critic is kw["critic"]
    other = make_evaluator(tmp_path, "abl", {"gauss": GaussPolicy()}, key_parts=("critic-b", "pol-1"), **kw)
    assert other.cache_csv != ev.cache_csv and other.df.empty     # a retrained critic: no reuse
    assert other._envs is pool


def _fake_results():
    rows = []
    for pol, gain in (("a", 0.3), ("b", 0.0)):
        for task in ("t1", "t2"):
            for method, k, b in (("policy", 1, 0.0), ("vgps", 10, 0.0), ("vgps", 10, 1.0)):
                rate = 0.3 + (gain if (method == "vgps" and b == 1.0) else 0.0)
                for e in range(20):
                    rows.append({"policy": pol, "task": task, "method": method, "K": k, "beta": b,
                                 "env_seed": e, "success": int(e < rate * 20)})
    return pd.DataFrame(rows)


def test_protocols():
    df = _fake_results()
    best = best_per_policy(df)
    assert best.set_index("policy").loc["a", "beta"] == 1.0
    choice, scores = choose_fixed(df)
    assert choice == {"K": 10, "beta": 1.0}
    # policy a: 0.6 at β=1, 0.3 at β=0; b: 0.3 at both -> mean over policies 0.45 vs 0.30
    np.testing.assert_allclose(scores["mean_rate"], [0.45, 0.30])
    s = summary(df, {"a": (10, 1.0), "b": (10, 1.0)}, "fixed").set_index("policy")
    assert s.loc["a", "improvement"] > 0.29 and s.loc["a", "verdict"].startswith("helps")
    assert s.loc["b", "verdict"].startswith("does not help")


def test_choose_fixed_over_critics_and_ties():
    df = _fake_results()
    # a second critic that is better than the first only at K=10, β=0 (0.55 for policy a)
    other = df[df["method"] == "vgps"].copy()
    other["critic"] = "sac"
    better = (other["policy"] == "a") & (other["beta"] == 0.0)
    other.loc[better, "success"] = (other.loc[better, "env_seed"] < 11).astype(int)
    both = pd.concat([df.assign(critic="behavior"), other], ignore_index=True)
    choice, scores = choose_fixed(both, critic_order=("behavior", "sac"))
    assert choice == {"critic": "behavior", "K": 10, "beta": 1.0}           # 0.45 beats 0.425
    assert list(scores["critic"][:2]) == ["behavior", "sac"]
    # equal means: the earlier critic in critic_order wins, whatever the alphabet says
    tie = pd.concat([df.assign(critic="zeta"), df.assign(critic="alpha")], ignore_index=True)
    assert choose_fixed(tie, critic_order=("zeta", "alpha"))[0]["critic"] == "zeta"
    assert choose_fixed(tie)[0]["critic"] == "alpha"
    with pytest.raises(ValueError, match="no V-GPS rows"):
        choose_fixed(df[df["method"] == "policy"])


class GraspToyEnv(ToyEnv):
    """ToyEnv whose object is 'held' on steps 2–3 when seed % 3 == 1, from step 2 on when
    seed % 3 == 2, never when seed % 3 == 0 (odd seeds fail, even seeds succeed at step 3)."""
    source = "obj"

    @property
    def unwrapped(self):
        return self

    def grasped(self, name):
        assert name == "obj"
        m = self.seed % 3
        return (m == 1 and 2 <= self.t <= 3) or (m == 2 and self.t >= 2)


def test_failure_modes_track_the_grasp_through_the_lockstep_run():
    from vgps.eval.failures import CATEGORIES, failure_modes
    seeds = [1, 3, 5, 8]           # held then dropped, never, held to timeout, success
    envs = [GraspToyEnv() for _ in seeds]
    df = failure_modes(_agent(RunConfig("gauss")), envs, seeds)      # keys from the seeds
    assert list(df["ever_grasped"]) == [True, False, True, True]
    assert list(df["held_at_end"]) == [False, False, True, True]
    assert list(df["outcome"]) == [CATEGORIES[2], CATEGORIES[1], CATEGORIES[3], CATEGORIES[0]]


def test_the_evaluator_stores_each_episodes_outcome(tmp_path):
    """Evaluator.run records the §4 category of every episode (padded last chunk included), the
    same failure_modes gives for that episode, and it survives a reload; an environment that
    cannot tell stores ''."""
    from vgps.eval.failures import CATEGORIES, failure_modes
    cfg = RunConfig("gauss", "vgps", 3, 1.0)
    ev = Evaluator(lambda t: GraspToyEnv(), _agent, tmp_path / "r.sqlite", num_envs=4)
    res = ev.run(cfg, ["t1"], [0, 1], episodes=3)                     # 6 jobs: chunks of 4 + 2
    assert list(res["env_seed"]) == [episode_seed(s, e) for s in (0, 1) for e in range(3)]
    expect = [CATEGORIES[0] if s % 2 == 0 else {0: CATEGORIES[1], 1: CATEGORIES[2], 2: CATEGORIES[3]}[s % 3]
              for s in res["env_seed"]]
    assert list(res["outcome"]) == expect
    one = failure_modes(_agent(cfg), [GraspToyEnv()], [int(res["env_seed"].iloc[4])])
    assert one["outcome"].iloc[0] == expect[4]
    again = Evaluator(lambda t: GraspToyEnv(), _agent, tmp_path / "r.sqlite", num_envs=4)
    assert list(again.df["outcome"]) == expect
    plain = Evaluator(lambda t: ToyEnv(), _agent, tmp_path / "p.sqlite", num_envs=4).run(cfg, ["t1"], [0], 2)
    assert list(plain["outcome"]) == ["", ""]
    with pytest.raises(ValueError, match="do not report a grasp"):
        failure_modes(_agent(cfg), [ToyEnv()], [0])


def test_per_task_table_in_the_papers_order_with_averages():
    """Table 2's layout: WidowX tasks in the paper's order, their average, the Google robot's
    tasks and average, the total last; intervals only on task rows."""
    from vgps.eval.protocols import per_task_table
    emb = {"w_spoon": "widowx", "w_carrot": "widowx", "g_coke": "google_robot"}
    rows = [{"policy": "p", "method": m, "K": k, "beta": 1.0, "task": t, "seed": 0, "episode": e,
             "success": float((e + (m == "vgps")) % 2)}
            for t in ("g_coke", "w_carrot", "w_spoon") for m, k in (("policy", 0), ("vgps", 10))
            for e in range(4)]
    tab = per_task_table(pd.DataFrame(rows), {"p": (10, 1.0)}, emb)
    assert list(zip(tab["embodiment"], tab["task"])) == [
        ("widowx", "w_spoon"), ("widowx", "w_carrot"), ("widowx", "average"),
        ("google_robot", "g_coke"), ("google_robot", "average"), ("total", "average")]
    assert tab["p"].tolist() == [0.5] * 6 and tab["p +V-GPS"].tolist() == [0.5] * 6
    assert tab.loc[0, "p CI"].startswith("[") and tab.loc[2, "p CI"] == "" and tab.loc[5, "p +V-GPS CI"] == ""
