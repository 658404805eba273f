"""ValueGuidedPolicy: selection rule, determinism, shapes, normalization identity, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests._steer_fakes import GaussPolicy, HashEncoder, QuadraticCritic, keys
from vgps.policies.base import PolicyOutputError, RandomPolicy
from vgps.steer import ValueGuidedPolicy, select_index

B, S = 3, 4


def _obs(b=B):
    return {"state": np.linspace(-1, 1, b * S, dtype=np.float32).reshape(b, S)}


def _vgp(**kw):
    kw.setdefault("K", 8)
    kw.setdefault("beta", 0.0)
    return ValueGuidedPolicy(GaussPolicy(), QuadraticCritic(), language_encoder=HashEncoder(), **kw)


def test_greedy_picks_argmax():
    v = _vgp(beta=0.0, K=16)
    a, info = v.act(_obs(), ["pick coke can"] * B, keys(0, B))
    np.testing.assert_array_equal(info["index"], np.argmax(info["q"], -1))
    np.testing.assert_array_equal(a, info["candidates"][np.arange(B), info["index"]])


def test_large_beta_approaches_uniform():
    q = jnp.asarray([[0.0, -1.0, -5.0, -20.0]])
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    draws = np.asarray(jax.vmap(lambda k: select_index(q, jnp.float32(1e6), k[None]))(keys))[:, 0]
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, 0.25, atol=0.03)
    sharp = np.asarray(jax.vmap(lambda k: select_index(q, jnp.float32(0.1), k[None]))(keys))[:, 0]
    assert (sharp == 0).mean() > 0.99


def test_softmax_matches_probabilities():
    q = jnp.asarray([[0.0, -1.0, -2.0]])
    keys = jax.random.split(jax.random.PRNGKey(1), 20000)
    draws = np.asarray(jax.vmap(lambda k: select_index(q, jnp.float32(1.0), k[None]))(keys))[:, 0]
    p = np.exp([0.0, -1.0, -2.0]); p /= p.sum()
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / len(draws), p, atol=0.015)


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_same_seed_same_action(beta):
    a1, i1 = _vgp(beta=beta).act(_obs(), ["x"] * B, keys(7, B))
    a2, i2 = _vgp(beta=beta).act(_obs(), ["x"] * B, keys(7, B))
    a3, _ = _vgp(beta=beta).act(_obs(), ["x"] * B, keys(8, B))
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(i1["q"], i2["q"])
    assert not np.array_equal(a1, a3)


@pytest.mark.parametrize("mode", ["vgps", "policy", "random_select", "random_policy"])
@pytest.mark.parametrize("b", [1, 5])
def test_shapes(mode, b):
    v = _vgp(mode=mode, K=6, beta=0.1)
    a, info = v.act(_obs(b), ["a", "b", "a", "c", "d"][:b], keys(0, b))
    k = 1 if mode == "policy" else 6
    assert a.shape == (b, 7) and a.dtype == np.float32
    assert info["candidates"].shape == (b, k, 7) and info["q"].shape == (b, k)
    assert info["index"].shape == (b,)
    assert np.isfinite(info["q"]).all() == (mode in ("vgps", "random_policy"))


def test_critic_gets_training_normalization_and_encodes_once():
    critic = QuadraticCritic()
    v = ValueGuidedPolicy(GaussPolicy(), critic, K=10, beta=0.0, language_encoder=HashEncoder())
    assert v.normalizer is critic.normalizer                      # the same object, not a copy
    _, info = v.act(_obs(), ["x"] * B, keys(0, B))
    np.testing.assert_array_equal(critic.seen_actions[-1], critic.normalizer.normalize(info["candidates"]))
    assert critic.encode_calls == 1 and critic.encoded_rows == B  # once per observation, not per K


def test_reencode_matches_encode_once():
    crit_a, crit_b = QuadraticCritic(), QuadraticCritic()
    enc = HashEncoder()
    cand = np.asarray(GaussPolicy().sample_actions(_obs(), None, 5, keys(3, B)))
    qa = ValueGuidedPolicy(GaussPolicy(), crit_a, K=5, language_encoder=enc).score(_obs(), ["x"] * B, cand)
    qb = ValueGuidedPolicy(GaussPolicy(), crit_b, K=5, language_encoder=enc, reencode=True).score(_obs(), ["x"] * B, cand)
    np.testing.assert_allclose(qa, qb, rtol=1e-6)
    assert crit_b.encoded_rows == 5 * B


def test_min_over_ensemble_and_language_cached():
    enc = HashEncoder()
    critic = QuadraticCritic(num_qs=3)
    v = ValueGuidedPolicy(GaussPolicy(), critic, K=4, language_encoder=enc)
    cand = GaussPolicy().sample_actions(_obs(), None, 4, keys(0, B))
    q = v.score(_obs(), ["x"] * B, cand)
    z = critic.encode(_obs(), enc.encode(["x"] * B))
    np.testing.assert_allclose(q, np.asarray(critic.q_from_embedding(z, critic.normalizer.normalize(cand))[0]))
    for _ in range(3):
        v.act(_obs(), ["x", "y", "x"], keys(1, B))
    assert enc.calls == 3    # one for the direct call above, then "x", then "y" only once


def test_chunk_execution():
    class Chunky(GaussPolicy):
        def sample_chunks(self, obs, instr, k, rng):
            a = self.sample_actions(obs, instr, k, rng)
            return np.stack([a + 0.001 * h for h in range(4)], axis=2)
    v = ValueGuidedPolicy(Chunky(), QuadraticCritic(), K=5, beta=0.0, language_encoder=HashEncoder(),
                          exec_horizon=3)
    a0, i0 = v.act(_obs(), ["x"] * B, keys(0, B))
    a1, i1 = v.act(_obs(), ["x"] * B, keys(1, B))
    a2, _ = v.act(_obs(), ["x"] * B, keys(2, B))
    a3, i3 = v.act(_obs(), ["x"] * B, keys(3, B))
    assert i0["replanned"] and not i1["replanned"] and i3["replanned"]
    np.testing.assert_allclose(a1 - a0, 0.001, atol=1e-6)
    np.testing.assert_allclose(a2 - a0, 0.002, atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="K must be"):
        _vgp(K=0)
    with pytest.raises(ValueError, match="beta"):
        _vgp(beta=-0.1)
    with pytest.raises(ValueError, match="mode"):
        _vgp(mode="best")
    with pytest.raises(ValueError, match="needs a critic"):
        ValueGuidedPolicy(GaussPolicy(), None, mode="vgps")
    v = ValueGuidedPolicy(GaussPolicy(action_dim=6), QuadraticCritic(), language_encoder=HashEncoder())
    with pytest.raises(PolicyOutputError, match="action size 6"):
        v.act(_obs(), ["x"] * B, keys(0, B))
    v = ValueGuidedPolicy(GaussPolicy(nan=True), QuadraticCritic(), language_encoder=HashEncoder())
    with pytest.raises(PolicyOutputError, match="NaN"):
        v.act(_obs(), ["x"] * B, keys(0, B))


def test_random_policy_bounds():
    a = RandomPolicy().sample_actions(_obs(), ["x"] * B, 50, keys(0, B))
    assert a.shape == (B, 50, 7) and set(np.unique(a[..., -1])) <= {0.0, 1.0}
    assert np.abs(a[..., :3]).max() <= 0.02


def test_encoder_dispatched_once_before_the_policy_samples():
    events = []

    class Policy(GaussPolicy):
        def sample_actions(self, *a):
            events.append("policy")
            return super().sample_actions(*a)

    class Critic(QuadraticCritic):
        def encode(self, *a):
            events.append("encode")
            return super().encode(*a)

    crit = Critic()
    v = ValueGuidedPolicy(Policy(), crit, K=6, beta=0.0, language_encoder=HashEncoder())
    a, info = v.act(_obs(), ["x"] * B, keys(3, B))
    assert events == ["encode", "policy"] and crit.encoded_rows == B     # once per observation
    # the early embedding scores exactly as scoring from scratch would
    np.testing.assert_allclose(info["q"], v.score(_obs(), ["x"] * B, info["candidates"]), rtol=1e-6)
    events.clear()
    ValueGuidedPolicy(Policy(), crit, K=6, mode="random_select").act(_obs(), ["x"] * B, keys(3, B))
    assert events == ["policy"]                                         # no critic, no encoding
