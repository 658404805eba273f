"""Loss pieces on hand-built numbers; expected values computed independently here."""
import math

import jax
import jax.numpy as jnp
import numpy as np

from vgps.agents.calql import cql_regularizer, max_target_value
from vgps.agents.common import polyak, relabel_negatives
from vgps.agents.iql import awr_weights, expectile_loss


def _lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def test_cql_logsumexp_importance_sampled_with_calql_bound():
    # one head, one state, N = 2 sampled actions per source, A = 2, bound 1
    q_data = np.array([[-3.0]])
    q_rand = np.array([[[-5.0, -4.0]]])
    q_pi = np.array([[[-6.0, -2.0]]])
    q_nx = np.array([[[-7.0, -1.5]]])
    logp_pi = np.array([[0.5, -0.25]])
    logp_nx = np.array([[1.0, 0.0]])
    mc = np.array([-4.5])
    diff, rate = cql_regularizer(q_data, q_rand, q_pi, logp_pi, q_nx, logp_nx, mc, action_dim=2,
                                 bound=1.0, temperature=1.0, importance_sample=True, calql_bound=True)
    log_u = 2 * math.log(0.5)                          # uniform density on [-1, 1]^2
    terms = [-5.0 - log_u, -4.0 - log_u,
             max(-7.0, -4.5) - 1.0, max(-1.5, -4.5) - 0.0,   # π(s') samples, bound raises -7
             max(-6.0, -4.5) - 0.5, max(-2.0, -4.5) + 0.25]  # π(s) samples, bound raises -6
    np.testing.assert_allclose(diff, [[_lse(terms) - (-3.0)]], rtol=1e-6)
    assert float(rate) == 0.5                          # one of two values raised in each source


def test_cql_without_bound_and_temperature():
    q_data = np.array([[0.0, 1.0]])
    q_rand = np.zeros((1, 2, 1)); q_pi = np.ones((1, 2, 1)); q_nx = np.full((1, 2, 1), 2.0)
    lp = np.zeros((2, 1)); mc = np.full(2, 10.0)
    diff, _ = cql_regularizer(q_data, q_rand, q_pi, lp, q_nx, lp, mc, action_dim=1, bound=1.0,
                              temperature=2.0, importance_sample=False, calql_bound=False)
    for b in range(2):
        xs = [0.0, q_data[0, b], 2.0, 1.0]
        np.testing.assert_allclose(diff[0, b], 2.0 * _lse([x / 2.0 for x in xs]) - q_data[0, b],
                                   rtol=1e-6)


def test_max_target_backup_min_over_heads_then_max_over_actions():
    q = np.array([[[1.0, 5.0, 3.0], [0.0, -1.0, -2.0]],
                  [[2.0, 4.0, 6.0], [-3.0, 1.0, -1.0]]])     # [E=2, B=2, N=3]
    # head-min: b0 -> [1, 4, 3] -> 4; b1 -> [-3, -1, -2] -> -1
    np.testing.assert_allclose(max_target_value(q), [4.0, -1.0])


def test_expectile_loss():
    diff = np.array([1.0, -2.0, 0.5])
    expected = (0.7 * 1.0 + 0.3 * 4.0 + 0.7 * 0.25) / 3
    np.testing.assert_allclose(expectile_loss(diff, 0.7), expected, rtol=1e-6)


def test_awr_weights_clipped():
    np.testing.assert_allclose(awr_weights(jnp.array([0.0, 1.0, 10.0]), 1.0, 100.0),
                               [1.0, math.e, 100.0], rtol=1e-6)


def test_polyak():
    t, o = {"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([3.0, -2.0])}
    np.testing.assert_allclose(polyak(t, o, 5e-3)["w"], [1.0 * 0.995 + 3.0 * 0.005,
                                                        2.0 * 0.995 - 2.0 * 0.005], rtol=1e-6)


def test_negative_relabel():
    lang = jnp.array([[1.0, 0], [0, 1.0], [0, 1.0], [1.0, 1.0]])
    batch = {"language": lang, "rewards": jnp.zeros(4), "masks": jnp.zeros(4),
             "mc_returns": jnp.zeros(4)}
    out = relabel_negatives(jax.random.PRNGKey(0), batch, 0.75, -1.0, 0.98)
    # rows 0..2 selected; row 2's rolled instruction equals its own -> untouched
    np.testing.assert_array_equal(out["rewards"], [-1, -1, 0, 0])
    np.testing.assert_array_equal(out["masks"], [1, 1, 0, 0])
    np.testing.assert_allclose(out["mc_returns"][:2], [-50.0, -50.0], rtol=1e-5)
    np.testing.assert_array_equal(out["language"][0], lang[3])
