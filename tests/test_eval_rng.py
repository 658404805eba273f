"""One RNG stream per episode (issue 15, item 2): an episode's result is a function of (policy,
critic, setting, task, episode seed) only, not of the lock-step batch it ran in.

Policies take one PRNG key per row; row i's samples depend on key i (and row i's inputs) alone,
so adding, removing or reordering other rows changes nothing. The harness gives each episode its
own key stream (from its episode seed, folded with the step), so ``num_envs`` 1, 4 and 70 give
the same trajectories, bit for bit."""
from __future__ import annotations

import functools
import hashlib
import sqlite3

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests._steer_fakes import GaussPolicy, HashEncoder
from vgps.eval.harness import (EVAL_PROTOCOL, CacheProtocolError, EpisodeCache, Evaluator, RunConfig,
                               cache_path, episode_keys, episode_seed, make_evaluator)
from vgps.policies.base import RandomPolicy
from vgps.policies.bc import BCPolicy, PolicySpec, fit_stats, init_params
from vgps.steer import ValueGuidedPolicy

S, D = 6, 512
ACTS = np.concatenate([0.01 + 0.02 * np.random.default_rng(0).standard_normal((256, 6)),
                       np.random.default_rng(1).integers(0, 2, (256, 1))], 1).astype(np.float32)


@functools.cache
def _bc(kind: str, chunk: int = 1) -> BCPolicy:
    """A freshly initialised stand-in (sampling does not need trained weights)."""
    spec = PolicySpec(f"t-{kind}", kind, (32, 32), (32,), chunk=chunk, diffusion_steps=4)
    params = init_params(spec, S, D, jax.random.PRNGKey(0))
    return BCPolicy(spec, params, fit_stats(ACTS), HashEncoder(D))


@functools.cache
def _critic():
    """A real (freshly initialised) MLP critic: its matmuls run over the whole [B, K] batch."""
    from vgps.agents.critic import Critic
    from vgps.config import CriticConfig
    from vgps.data.normalize import ActionNormalizer
    from vgps.nets.critic import CriticNet
    cfg = CriticConfig(hidden_dims=(32, 32), encoder_dims=(32, 32), embedding_dim=32)
    params = CriticNet(cfg).init(jax.random.PRNGKey(1), {"state": np.zeros((1, S), np.float32)},
                                 jnp.zeros((1, D)), jnp.zeros((1, 1, 7)))
    return Critic(cfg, params, ActionNormalizer.fit(ACTS))


def _obs(b: int) -> dict:
    return {"state": np.random.default_rng(b).standard_normal((b, S)).astype(np.float32)}


INSTR = ["pick coke can", "put carrot on plate", "stack blocks", "pick coke can", "open drawer"]
ROWS = ([2], [4, 3, 2, 1, 0], [1, 1, 3])     # one row, reversed, a repeated row


def _samplers():
    """name -> (observations, instructions, keys) -> array with the batch on axis 0."""
    k = 3
    out = {
        "random": lambda o, i, r: RandomPolicy().sample_actions(o, i, k, r),
        "gauss (test fake)": lambda o, i, r: GaussPolicy().sample_actions(o, i, k, r),
        "bc diffusion": lambda o, i, r: _bc("diffusion").sample_actions(o, i, k, r),
        "bc diffusion chunks": lambda o, i, r: _bc("diffusion", 2).sample_chunks(o, i, k, r),
        "bc tokens": lambda o, i, r: _bc("tokens").sample_actions(o, i, k, r),
        "bc ar_tokens": lambda o, i, r: _bc("ar_tokens").sample_actions(o, i, k, r),
    }

    def steered(mode, beta, what="act", policy="diffusion"):
        def run(o, i, r):
            v = ValueGuidedPolicy(_bc(policy), _critic(), K=4, beta=beta, mode=mode,
                                  language_encoder=HashEncoder(D))
            v.reset(len(i))
            if what == "act":
                a, info = v.act(o, i, r)
                return np.concatenate([a, info["index"][:, None].astype(np.float32)], -1)
            return v.sample_actions(o, i, 2, r)
        return run
    out["steered softmax draw"] = steered("vgps", 1.0)
    out["steered greedy"] = steered("vgps", 0.0, policy="tokens")
    out["random_select"] = steered("random_select", 0.0, policy="ar_tokens")
    out["random_policy"] = steered("random_policy", 0.5)
    out["steered as a policy"] = steered("vgps", 1.0, what="sample_actions")
    return out


@pytest.mark.parametrize("name", list(_samplers()))
def test_a_rows_samples_depend_only_on_its_key_and_inputs(name):
    fn = _samplers()[name]
    obs, keys = _obs(5), jax.random.split(jax.random.PRNGKey(0), 5)
    full = np.asarray(fn(obs, INSTR, keys))
    assert full.shape[0] == 5 and np.isfinite(full).all()
    assert not np.array_equal(full[0], full[3])       # same instruction, other key and state
    for rows in ROWS:
        idx = np.asarray(rows)
        sub = np.asarray(fn({"state": obs["state"][idx]}, [INSTR[j] for j in idx], keys[idx]))
        np.testing.assert_array_equal(sub, full[idx], err_msg=f"{name}: rows {rows} of 5")
    again = np.asarray(fn(obs, INSTR, keys.at[1].set(jax.random.PRNGKey(99))))
    assert not np.array_equal(again[1], full[1])      # row 1 follows its own key...
    np.testing.assert_array_equal(np.delete(again, 1, 0), np.delete(full, 1, 0))   # ...alone


@pytest.mark.parametrize("bad,msg", [
    (jax.random.PRNGKey(0), r"one PRNG key per row.*got 1 key of shape \(2,\) for 3 rows"),
    (jax.random.split(jax.random.PRNGKey(0), 2), r"one PRNG key per row.*got 2 keys.*for 3 rows"),
    (np.zeros((3, 2), np.float32), r"uint32"),
])
def test_the_number_of_keys_must_be_the_batch_size(bad, msg):
    pols = [RandomPolicy(), _bc("diffusion"), _bc("tokens"), _bc("ar_tokens")]
    for pol in pols:
        with pytest.raises(ValueError, match=msg):
            pol.sample_actions(_obs(3), INSTR[:3], 2, bad)
    v = ValueGuidedPolicy(_bc("diffusion"), _critic(), K=4, beta=1.0, language_encoder=HashEncoder(D))
    with pytest.raises(ValueError, match=msg):
        v.act(_obs(3), INSTR[:3], bad)
    typed = jax.random.split(jax.random.key(0), 3)                  # new-style key arrays work too
    assert RandomPolicy().sample_actions(_obs(3), INSTR[:3], 2, typed).shape == (3, 2, 7)


# --------------------------------------------------------------------------- the harness
HORIZON = 6


class WalkEnv:
    """Actions matter: the state integrates the actions, success when the gripper command has been
    "open" (> 0.5) three steps in a row (else truncated at HORIZON). Every action an episode takes goes into its trajectory digest ``log[(task, seed)]``;
    the instruction depends on the seed, so lock-step batches mix instructions."""

    def __init__(self, task, log):
        self.task, self.log = task, log

    def reset(self, *, seed):
        self.seed, self.t, self.x = seed, 0, np.zeros(S, np.float32)
        self.x[1] = seed % 5
        self.h = self.log[(self.task, seed)] = hashlib.sha256()
        return {"state": self.x.copy()}, {"instruction": INSTR[seed % 3]}

    def step(self, a):
        a = np.asarray(a, np.float32)
        self.h.update(a.tobytes())
        self.t += 1
        self.x[0] += a[0]
        self.x[2], self.x[3] = self.t, a[-1]
        self.x[4] = (self.x[4] + 1) * (a[-1] > 0.5)
        ok = bool(self.x[4] >= 3)
        return ({"state": self.x.copy()}, float(ok), ok, self.t >= HORIZON,
                {"success": ok, "embodiment": "toy"})


CONFIGS = [RunConfig("diffusion", "vgps", 4, 1.0), RunConfig("tokens", "random_select", 3, 0.0),
           RunConfig("ar_tokens", "policy"), RunConfig("diffusion", "random_policy", 4, 0.5)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.policy}-{c.method}")
def test_episode_outcomes_do_not_depend_on_num_envs(tmp_path, cfg):
    """72 episodes (2 seeds x 36): 72 batches of 1, 18 of 4, or 70 + 2 (68 padded slots)."""
    policies = {n: _bc(n) for n in ("diffusion", "tokens", "ar_tokens")}
    results = {}
    for n in (1, 4, 70):
        log = {}
        ev = make_evaluator(tmp_path / f"n{n}", "rng", policies, critic=_critic(), encoder=HashEncoder(D),
                            make_env=lambda task: WalkEnv(task, log), num_envs=n)  # noqa: B023
        df = ev.run(cfg, ["t1"], [0, 1], episodes=36)
        df["trajectory"] = [log[(t, s)].hexdigest() for t, s in zip(df["task"], df["env_seed"])]
        results[n] = df.sort_values(["task", "seed", "episode"]).reset_index(drop=True)
    ref = results[1]
    assert len(ref) == 72 and ref["trajectory"].nunique() == 72      # the episodes really differ
    if cfg.method != "policy":
        assert 0 < ref["success"].mean() < 1 and ref["steps"].nunique() > 1
    cols = ["task", "seed", "episode", "env_seed", "success", "steps", "trajectory"]
    for n in (4, 70):
        bad = ref[cols].ne(results[n][cols]).any(axis=1)
        assert not bad.any(), (f"num_envs={n} changes {int(bad.sum())} of {len(ref)} episodes, e.g.\n"
                               f"{ref[cols][bad].head(3)}\nvs\n{results[n][cols][bad].head(3)}")


def test_episode_keys_come_from_the_episode_seed_alone():
    seeds = [episode_seed(0, 3), episode_seed(7, 1), 2**40 + 5]
    k = np.asarray(episode_keys(seeds))
    assert k.shape == (3, 2) and k.dtype == np.uint32
    np.testing.assert_array_equal(k[1], np.asarray(episode_keys([seeds[1]]))[0])
    assert len({tuple(r) for r in np.asarray(episode_keys([5, 2**32 + 5, 2**33 + 5]))}) == 3   # no 32-bit wrap


# --------------------------------------------------------------------------- the cache
def test_caches_of_the_per_batch_rng_are_not_reused(tmp_path):
    """cache_path() hashes the protocol in; a store written under another protocol (or by the code
    before this one, which recorded none) is refused, with its rows untouched."""
    assert EVAL_PROTOCOL >= 2
    p = cache_path(tmp_path, "abl", ("critic-a",))
    assert p.name.startswith("abl-") and p.suffix == ".sqlite"
    import json
    old_hash = hashlib.sha256(json.dumps(["critic-a"], sort_keys=True, default=str).encode()).hexdigest()[:10]
    assert p.name != f"abl-{old_hash}.sqlite"                       # the name the old code used
    ev = Evaluator(lambda t: WalkEnv(t, {}), lambda c: ValueGuidedPolicy(RandomPolicy(), mode="policy"),
                   p, num_envs=2, verbose=False)
    ev.run(RunConfig("random"), ["t1"], [0], episodes=2)
    assert len(EpisodeCache(p).load()) == 2                          # same protocol: reused
    with sqlite3.connect(p) as con:                                  # as the previous code left it
        con.execute("DELETE FROM meta WHERE name = 'protocol'")
    before = p.read_bytes()
    with pytest.raises(CacheProtocolError, match=r"protocol 1 .*one RNG key per lock-step batch"):
        Evaluator(lambda t: WalkEnv(t, {}), None, p, num_envs=2, verbose=False)
    assert p.read_bytes() == before
