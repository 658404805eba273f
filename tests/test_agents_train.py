"""Training loop: exact resume, NaN stop, data-parallel sharding, Critic errors."""
import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from vgps.agents import NonFiniteLossError, StepSampler, load_critic, train
from vgps.agents.checkpoint import CheckpointError, list_checkpoints
from vgps.agents.synthetic import random_transitions
from vgps.config import CriticConfig, DataConfig
from vgps.data.normalize import ActionNormalizer

TINY = CriticConfig(hidden_dims=(32, 32), encoder_dims=(32,), behavior_hidden_dims=(32,),
                    batch_size=16, num_steps=12, behavior_steps=4, log_every=4,
                    checkpoint_every=5, cql_n_actions=2)
DATA = random_transitions(400, state_dim=6, language_dim=512)


# action normalizer that halves every dim (gripper included), so scores are easy to check by hand
NORM = ActionNormalizer(np.zeros(7), np.full(7, 2.0), np.ones(7, bool))


def _leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("full")
    return train(TINY, StepSampler(DATA, 16, seed=3, normalizer=NORM), d, progress=False)


def test_kill_and_resume_is_identical(full_run, tmp_path):
    sampler = StepSampler(DATA, 16, seed=3, normalizer=NORM)
    part = train(TINY, sampler, tmp_path, normalizer=NORM, stop_after=7, progress=False)
    assert int(part.state["step"]) == 7
    del part                                      # "kill": only the files on disk survive
    resumed = train(TINY, sampler, tmp_path, progress=False)    # the data's normalizer
    for a, b in zip(_leaves(full_run.state), _leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
    assert [r["step"] for r in resumed.metrics] == [r["step"] for r in full_run.metrics]


def test_metrics_logged_and_critic_loads(full_run):
    d = full_run.run_dir
    assert (d / "metrics.jsonl").exists() and (d / "metrics_critic.csv").exists()
    assert (d / "metrics_behavior.csv").exists()
    critic = load_critic(d)
    assert critic.obs_modality == "state" and critic.num_qs == 2
    assert type(critic.normalizer) is ActionNormalizer and critic.normalizer == NORM
    obs = {"state": DATA["observations"]["state"][:3]}
    raw = np.random.default_rng(0).uniform(-1, 1, (3, 4, 7)).astype(np.float32)
    s = critic.score(obs, DATA["language"][:3], raw)
    z = critic.encode(obs, DATA["language"][:3])
    q = np.asarray(critic.q_from_embedding(z, raw / 2.0))
    assert s.shape == (3, 4) and q.shape == (2, 3, 4)
    np.testing.assert_allclose(s, q.min(0), rtol=1e-6)


def test_critic_errors(full_run, tmp_path):
    critic = load_critic(full_run.run_dir)
    obs = {"state": DATA["observations"]["state"][:2]}
    with pytest.raises(ValueError, match="language embedding"):
        critic.score(obs, np.zeros((2, 384), np.float32), np.zeros((2, 3, 7)))
    with pytest.raises(ValueError, match="dimension 6"):
        critic.score(obs, DATA["language"][:2], np.zeros((2, 3, 6)))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "meta.json").write_text((full_run.run_dir / "meta.json").read_text())
    (bad / "critic.msgpack").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_critic(bad)
    with pytest.raises(ValueError, match="language embedding size"):
        train(dataclasses.replace(TINY, language_dim=384), StepSampler(DATA, 16), tmp_path / "x",
              progress=False)


class _NaNAt(StepSampler):
    def sample(self, step):
        b = super().sample(step)
        if step == 8:
            b = dict(b, rewards=np.full_like(b["rewards"], np.nan))
        return b


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match="at step 8"):
        train(TINY, _NaNAt(DATA, 16), tmp_path, progress=False)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000004.msgpack",
                                                            "step_00000005.msgpack"]


def test_data_parallel_two_devices_matches_one(tmp_path):
    code = textwrap.dedent(f"""
        import jax, numpy as np, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import dataclasses
        from test_agents_train import TINY, DATA
        from vgps.agents import StepSampler, train
        cfg = dataclasses.replace(TINY, behavior_steps=0)
        assert len(jax.devices()) == 2
        a = train(cfg, StepSampler(DATA, 16), {str(tmp_path / 'one')!r}, progress=False,
                  devices=jax.devices()[:1], stop_after=3)
        b = train(cfg, StepSampler(DATA, 16), {str(tmp_path / 'two')!r}, progress=False, stop_after=3)
        sh = jax.tree.leaves(b.state)[0].sharding
        assert len(sh.device_set) == 2, sh
        for x, y in zip(jax.tree.leaves(a.state), jax.tree.leaves(b.state)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5)
        print("OK")
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(Path(__file__).parents[1]))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]


class _FakeEncoder:
    def encode(self, texts):
        return np.stack([np.random.default_rng(len(t)).normal(size=512).astype(np.float32)
                         for t in texts])


def test_diagnostics_run_on_episodes(full_run):
    from vgps.agents.diagnostics import DECISION_POINTS, PERTURBATIONS, plot_q_along_episodes, run_diagnostics
    rng = np.random.default_rng(0)
    eps = []
    for i in range(3):
        T = 12
        act = rng.normal(size=(T, 7)).astype(np.float32)
        act[:, 6] = ((np.arange(T) < 4) | (np.arange(T) > 8)).astype(np.float32)   # grasp at 4, release at 9
        eps.append({"observation": {"state": rng.normal(size=(T, 6)).astype(np.float32)},
                    "action": act, "instruction": f"task {i}", "success": i != 2,
                    "metadata": {"failure_mode": None if i != 2 else "drift"}})
    critic = load_critic(full_run.run_dir)
    r = run_diagnostics(critic, eps, _FakeEncoder(), labels=DataConfig())
    for k in PERTURBATIONS + DECISION_POINTS:
        assert 0.0 <= r[f"rank/{k}"] <= 1.0
    assert r["rank/mean"] == pytest.approx(np.mean([r[f"rank/{k}"] for k in PERTURBATIONS]))
    assert -1.0 <= r["spearman"] <= 1.0 and 0.0 <= r["bound_rate"] <= 1.0
    assert r["q_lower_ok"] and len(r["per_episode"]) == 3
    plot_q_along_episodes({"tiny": r})


def test_perturbation_masks_mark_the_grasp_and_release_steps():
    from vgps.agents.diagnostics import perturb
    g = np.array([1, 1, 0, 0, 0, 1, 1, 0, 1], np.float32)   # close at 2, open at 5, close at 7, open at 8
    acts = np.zeros((len(g), 7), np.float32)
    acts[:, 6] = g
    rng, scale = np.random.default_rng(0), np.ones(6)
    masks = {k: perturb(acts, k, scale, rng)
             for k in ("gripper_flip", "gripper_flip_carrying", "gripper_flip_at_grasp", "gripper_flip_at_release")}
    for k, (a, valid) in masks.items():
        np.testing.assert_array_equal(a[:, 6], 1 - g)          # every kind flips the command
    np.testing.assert_array_equal(np.flatnonzero(masks["gripper_flip"][1]), np.arange(len(g)))
    np.testing.assert_array_equal(np.flatnonzero(masks["gripper_flip_carrying"][1]), [4])
    np.testing.assert_array_equal(np.flatnonzero(masks["gripper_flip_at_grasp"][1]), [2, 7])
    np.testing.assert_array_equal(np.flatnonzero(masks["gripper_flip_at_release"][1]), [5])


def test_score_episode_pads_to_few_shapes(full_run):
    """Episodes of 19 different lengths compile at most 3 shapes (16/32/64) and score as unpadded."""
    from vgps.agents.diagnostics import score_episode
    critic, ref = load_critic(full_run.run_dir), load_critic(full_run.run_dir)
    rng = np.random.default_rng(0)
    lang = rng.normal(size=512).astype(np.float32)
    for T in range(3, 60, 3):
        ep = {"observation": {"state": rng.normal(size=(T, 6)).astype(np.float32)}}
        cands = rng.uniform(-1, 1, (T, 4, 7)).astype(np.float32)
        q = score_episode(critic, ep, lang, cands)
        want = ref.score(ep["observation"], np.repeat(lang[None], T, 0), cands)
        assert q.shape == (T, 4)
        np.testing.assert_allclose(q, want, rtol=1e-5, atol=1e-5)
    assert critic._encode._cache_size() <= 3 and ref._encode._cache_size() == 19
