"""vgps.eval.ablations: seeded data subsets, fraction critics, critic variants, tables/figures."""
from __future__ import annotations

import dataclasses

import matplotlib
import numpy as np
import pandas as pd
import pytest

from tests._steer_fakes import HashEncoder
from vgps.config import get_profile
from vgps.data.normalize import ActionNormalizer
from vgps.eval import ablations as ab
from vgps.paths import TEST_DATA


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


def test_one_critic_registry_drives_every_list():
    """Notebooks 02/05/06, EvalConfig and the labels derive from config.CRITIC_VARIANTS."""
    from vgps.agents.runs import critic_variant
    from vgps.config import CRITIC_VARIANTS, EvalConfig, critic_names, get_profile
    assert EvalConfig().critics == critic_names(tuned=True) == ("calql_sac_image",)
    assert EvalConfig().state_critic == "calql_sac" and CRITIC_VARIANTS["calql_sac"].obs_modality == "state"
    assert critic_names(notebook="02") == ("calql", "calql_sac", "calql_paper_labels", "calql_sac_paper_labels",
                                           "calql_sac_image")
    assert critic_names(ablations=True) == ("calql", "calql_sac", "iql")
    assert critic_names(notebook="03") == ("iql",)
    for name, v in CRITIC_VARIANTS.items():
        if v.twin:       # a twin differs only by the paper's labels
            t = CRITIC_VARIANTS[v.twin]
            assert t.critic == v.critic and t.data == {"use_success_flag": False}
        p = critic_variant(get_profile("smoke"), name)
        assert all(getattr(p.critic, k) == x for k, x in v.critic.items())
    assert critic_variant(get_profile("smoke"), "calql_sac_paper_labels").data.use_success_flag is False
    # the paper's critic reads pixels: every image variant is the state one with the patch_mixer encoder
    image = critic_names(obs_modality="image")
    assert image == ("calql_image", "calql_sac_image", "calql_image_paper_labels",
                     "calql_sac_image_paper_labels", "iql_image")
    for name in image:
        c = critic_variant(get_profile("default"), name).critic
        state = critic_variant(get_profile("default"), name.replace("_image", "")).critic
        assert (c.obs_modality, c.encoder) == ("image", "patch_mixer")
        assert dataclasses.replace(c, obs_modality="state", encoder="mlp") == state
    assert set(critic_names(obs_modality="state")) == set(CRITIC_VARIANTS) - set(image)
    with pytest.raises(TypeError, match="no field"):
        critic_names(colour="red")
    with pytest.raises(KeyError, match="unknown critic"):
        critic_variant(get_profile("smoke"), "sarsa")


def test_beside_paper_orders_rows_and_fills_missing_paper_rows():
    import pandas as pd
    from vgps.eval.ablations import beside_paper
    ours = pd.DataFrame({"task": ["b", "a", "a"], "method": ["x", "y", "x"], "n": [5, 5, 5],
                         "rate": [0.2, 0.4, 0.6], "lo": [0.1, 0.2, 0.3], "hi": [0.5, 0.7, 0.8]})
    paper = pd.DataFrame({"task": ["a", "b"], "method": ["x", "x"], "rate": [0.9, 0.1]})
    t = beside_paper(ours, paper, methods=["x", "y"], tasks=["a", "b"])
    assert list(t.columns) == ["task", "method", "n", "ours", "ours 95% lo", "ours 95% hi", "paper"]
    assert list(zip(t["task"], t["method"])) == [("a", "x"), ("a", "y"), ("b", "x")]
    assert t["ours"].tolist() == [0.6, 0.4, 0.2]
    assert t["paper"].iloc[0] == 0.9 and np.isnan(t["paper"].iloc[1]) and t["paper"].iloc[2] == 0.1
