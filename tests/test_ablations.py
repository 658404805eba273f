"""vgps.eval.ablations: seeded data subsets, actors as policies, fine-tuning, tables/figures."""
from __future__ import annotations

import dataclasses

import jax
import matplotlib
import numpy as np
import pandas as pd
import pytest

from tests._steer_fakes import HashEncoder, keys
from vgps.agents import StepSampler, train
from vgps.agents.synthetic import random_transitions
from vgps.config import CriticConfig, get_profile
from vgps.data.normalize import ActionNormalizer, StateNormalizer
from vgps.eval import ablations as ab
from vgps.paths import TEST_DATA
from vgps.policies.base import Policy

TINY = CriticConfig(hidden_dims=(32, 32), encoder_dims=(32,), behavior_hidden_dims=(32,),
                    batch_size=16, num_steps=6, behavior_steps=3, log_every=3,
                    checkpoint_every=3, cql_n_actions=2)
DATA = random_transitions(200, state_dim=6, language_dim=512, seed=1)


# ------------------------------------------------------------------ subsets (Table 8)
def test_subset_indices_nested_seeded_and_sized():
    a = ab.subset_indices(100, 0.5, seed=3)
    b = ab.subset_indices(100, 0.1, seed=3)
    assert len(a) == 50 and len(b) == 10 and set(b) <= set(a)
    assert np.array_equal(a, ab.subset_indices(100, 0.5, seed=3))
    assert not np.array_equal(a, ab.subset_indices(100, 0.5, seed=4))
    assert np.array_equal(np.sort(a), a) and len(set(a)) == len(a)
    assert len(ab.subset_indices(5, 0.01, seed=0)) == 1            # never empty
    assert np.array_equal(ab.subset_indices(7, 1.0, seed=0), np.arange(7))
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            ab.subset_indices(10, bad, seed=0)


def test_fraction_training_data_keeps_only_the_plan_episodes():
    prof = get_profile("smoke")
    dirs = [TEST_DATA / "bridge_tiny" / "1.0.0", TEST_DATA / "fractal_tiny" / "1.0.0"]
    episodes = ab.load_state_episodes(dirs)
    kept = {"bridge_tiny": ab.subset_indices(len(episodes[0]), 0.5, 0).tolist(),
            "fractal_tiny": ab.subset_indices(len(episodes[1]), 0.5, 1).tolist()}
    plan = {"dirs": dirs, "episodes": kept}
    data = ab.fraction_training_data(prof, plan, episodes, encoder=HashEncoder(), batch_size=8)
    want = [sum(len(episodes[i][j]["action"]) for j in idx) for i, idx in enumerate(kept.values())]
    assert data.num_transitions == want
    batch = data.sample(0)
    assert batch["actions"].shape == (8, 7) and batch["language"].shape == (8, 512)
    # normalizers are refitted on the subset only (pooled by the mixture weights)
    from vgps.data.normalize import pool
    subs = [np.concatenate([episodes[i][j]["action"] for j in idx]) for i, idx in enumerate(kept.values())]
    want_norm = pool([ActionNormalizer.fit(x) for x in subs], data.weights / data.weights.sum())
    assert np.allclose(data.normalizer.mean, want_norm.mean) and np.allclose(data.normalizer.std, want_norm.std)
    with pytest.raises(ValueError, match="episodes"):
        ab.fraction_training_data(prof, {"dirs": dirs, "episodes": {"a": [10_000], "b": [0]}},
                                  episodes, encoder=HashEncoder())


# ------------------------------------------------------------------ actors (Table 11)
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    norm = ActionNormalizer.fit(DATA["actions"] * 0.05 + 0.01)
    snorm = StateNormalizer.fit(DATA["observations"]["state"])
    for name, cfg in {"calql": TINY, "calql_sac": dataclasses.replace(TINY, calql_policy="sac"),
                      "iql": dataclasses.replace(TINY, algorithm="iql")}.items():
        d = tmp_path_factory.mktemp(name)
        train(cfg, StepSampler(DATA, 16, seed=0), d, normalizer=norm, state_normalizer=snorm,
              progress=False)
        out[name] = d
    return out


@pytest.mark.parametrize("name", ["calql", "calql_sac", "iql"])
def test_actor_is_a_policy_with_raw_scale_actions(runs, name):
    enc = HashEncoder()
    actor = ab.load_actor(runs[name], enc)
    assert isinstance(actor, Policy)
    obs = {"state": DATA["observations"]["state"][:3]}
    a = actor.sample_actions(obs, ["pick x", "pick y", "pick x"], 4, keys(0, 3))
    assert a.shape == (3, 4, 7) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.allclose(a[:, 0], a[:, 3])                       # deterministic mode
    # unnormalised with the run's action normalizer: bound·tanh lies in [-3, 3] before it
    z = actor.normalizer.normalize(a)
    assert np.all(np.abs(z[..., :6]) <= actor.cfg.action_bound + 1e-4)
    assert enc.calls == 1                                       # instructions embedded once
    actor.sample_actions(obs, ["pick x", "pick y", "pick x"], 2, keys(1, 3))
    assert enc.calls == 1
    s = ab.load_actor(runs[name], enc, deterministic=False)
    b = s.sample_actions(obs, ["pick x"] * 3, 4, keys(0, 3))
    assert not np.allclose(b[:, 0], b[:, 1])
    one = s.sample_actions({"state": obs["state"][2:]}, ["pick x"], 4, keys(0, 3)[2:])
    np.testing.assert_array_equal(one[0], b[2])                # row 2 from its own key alone
    with pytest.raises(ValueError, match="instructions"):
        actor.sample_actions(obs, ["pick x"], 1, keys(0, 1))


def test_load_actor_refuses_unfinished_runs(tmp_path):
    train(TINY, StepSampler(DATA, 16, seed=0), tmp_path, normalizer=ActionNormalizer.fit(DATA["actions"]),
          stop_after=4, progress=False)
    with pytest.raises(Exception, match="unfinished"):
        ab.load_actor(tmp_path, HashEncoder())


# ------------------------------------------------------------------ fine-tuning (Table 7)
def test_finetune_starts_from_the_policy_and_keeps_its_statistics():
    from vgps.policies.bc import BCData, BCPolicy, PolicySpec, train_bc
    rng = np.random.default_rng(0)
    spec = PolicySpec("tiny", "diffusion", (16,), (16,), chunk=2, diffusion_steps=4)
    acts = np.concatenate([0.02 * rng.standard_normal((64, 2, 6)), rng.integers(0, 2, (64, 2, 1))], -1)
    data = BCData(rng.standard_normal((64, 5)).astype(np.float32), rng.integers(0, 2, 64),
                  rng.standard_normal((2, 512)).astype(np.float32), acts.astype(np.float32))
    params, stats, _ = train_bc(spec, data, 3, 16, 1e-3, 0, verbose=False)
    base = BCPolicy(spec, params, stats, HashEncoder())
    shifted = BCData(data.state, data.lang_idx, data.lang_table, (acts * 3).astype(np.float32))
    ft, losses = ab.finetune_bc(base, shifted, 4, 16, 1e-3, seed=0)
    assert losses.shape == (4,) and np.isfinite(losses).all()
    for k in stats:
        assert np.array_equal(np.asarray(ft.stats[k]), np.asarray(base.stats[k]))
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(ft.params), jax.tree.leaves(base.params))]
    assert any(moved)
    again, _ = ab.finetune_bc(base, shifted, 4, 16, 1e-3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(ft.params), jax.tree.leaves(again.params)))
    out = ft.sample_actions({"state": data.state[:2]}, ["a", "b"], 3, keys(0, 2))
    assert out.shape == (2, 3, 7)


# ------------------------------------------------------------------ tables and figures
def test_gripper_agreement_counts_open_commands():
    class Const:
        name = "const"

        def __init__(self, g):
            self.g = g

        def reset(self, b):
            pass

        def sample_actions(self, obs, instr, k, rng):
            out = np.zeros((len(obs["state"]), k, 7), np.float32)
            out[..., -1] = self.g
            return out
    eps = [{"observation": {"state": np.zeros((4, 3), np.float32)}, "instruction": "x",
            "action": np.array([[0] * 6 + [g] for g in (1, 1, 0, 0)], np.float32)}] * 3
    t = ab.gripper_agreement({"open": Const(1.0), "closed": Const(0.0)}, eps, num_states=12)
    t = t.set_index("policy")
    assert t.loc["open", "gripper agreement"] == 0.5 and t.loc["open", "open commands"] == 1.0
    assert t.loc["closed", "closes when demo closes"] == 1.0 and t.loc["closed", "opens when demo opens"] == 0.0


def test_plot_ours_vs_paper_panels_and_paper_markers():
    matplotlib.use("Agg")
    df = pd.DataFrame({"task": ["a", "a", "b", "b"], "success": [1, 0, 1, 1]})
    res = pd.concat([df.assign(K=10, beta="β=0"), df.assign(K=50, beta="β=0")], ignore_index=True)
    r = ab.rates(res, ["task", "K", "beta"])
    assert set(r.columns) >= {"rate", "lo", "hi", "n"}
    paper = pd.DataFrame({"task": ["a", "a"], "K": [10, 50], "rate": [0.5, 0.6]})
    fig = ab.plot_ours_vs_paper(r, paper, x="K", hue="beta", col="task", kind="line",
                                baseline={"a": 0.4}, paper_baseline={"a": 0.3}, title="t")
    assert len(fig.axes) == 2
    labels = fig.legends[0].get_texts()
    assert {"paper", "ours, β=0", "octo-small alone, ours", "octo-small alone, paper"} <= {x.get_text() for x in labels}
    fig = ab.plot_ours_vs_paper(r[r["K"] == 10], None, x="task", kind="bar")
    assert len(fig.axes) == 1


def test_paper_rates_filters_and_task_names():
    t = ab.paper_rates(10, task="Eggplant basket", critic="IQL")
    assert len(t) == 5 and set(t["critic"]) == {"IQL"}
    assert set(ab.PAPER_TASK.values()) >= {"Eggplant basket", "Pick Coke"}
    from vgps.eval.harness import random_policy_bounds
    lo, hi = random_policy_bounds()
    assert lo.shape == hi.shape == (7,) and lo[-1] == 0 and hi[-1] == 1 and np.all(hi[:6] > 0)


# ------------------------------------------------------------------ critic variants and labels
def test_critic_variants_differ_only_where_declared_and_the_cache_key_covers_the_labels(tmp_path):
    from tests.data_helpers import copy_tiny
    from vgps.agents import runs as R
    from vgps.data.labels import label_config
    from vgps.data.loader import load_training_data
    prof = get_profile("smoke")
    ours, paper = R.critic_variant(prof, "calql_sac"), R.critic_variant(prof, "calql_sac_paper_labels")
    assert ours.critic == paper.critic and ours.critic.calql_policy == "sac"
    assert ours.data.use_success_flag and not paper.data.use_success_flag
    assert dataclasses.replace(ours.data, use_success_flag=False) == paper.data
    assert R.critic_variant(prof, "calql").critic == prof.critic
    assert R.critic_variant(prof, "iql").critic.algorithm == "iql"
    with pytest.raises(KeyError, match="unknown critic 'nope'"):
        R.critic_variant(prof, "nope")
    dirs = [copy_tiny(tmp_path, "bridge_tiny"), copy_tiny(tmp_path, "fractal_tiny")]   # stats are cached beside
    k_ours, k_paper = ab.mixture_key(ours, dirs), ab.mixture_key(paper, dirs)
    assert k_ours != k_paper          # same critic config, other labels: never reuse the cached critic
    # the key notebook 06 predicts without loading equals the key of the data notebook 02 trains on
    data = load_training_data(dirs, profile=paper, obs_keys=("state",), batch_size=8,
                              encoder=HashEncoder(), backend="memory")
    assert data.labels == label_config(paper.data) and data.labels["use_success_flag"] is False
    assert R.cache_key(paper.critic, data.dataset_dirs, data.weights, data.labels) == k_paper
