"""vgps.policies.actor: the actor of a Cal-QL / IQL run as a black-box policy (Table 11)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests._steer_fakes import HashEncoder, keys
from vgps.agents import StepSampler, train
from vgps.agents.synthetic import random_transitions
from vgps.config import CriticConfig
from vgps.data.normalize import ActionNormalizer, StateNormalizer
from vgps.policies.actor import load_actor
from vgps.policies.base import Policy

TINY = CriticConfig(hidden_dims=(32, 32), encoder_dims=(32,), behavior_hidden_dims=(32,),
                    batch_size=16, num_steps=6, behavior_steps=3, log_every=3,
                    checkpoint_every=3, cql_n_actions=2)
DATA = random_transitions(200, state_dim=6, language_dim=512, seed=1)


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
    actor = load_actor(runs[name], enc)
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
    s = load_actor(runs[name], enc, deterministic=False)
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
        load_actor(tmp_path, HashEncoder())
