"""Reward labels and MC returns, H=3, gamma=0.98 — expectations computed by hand."""
import numpy as np
import pytest

from vgps.data.labels import label_steps

G = 0.98


def lab(T, **kw):
    return label_steps(T, horizon=3, gamma=G, **kw)


@pytest.mark.parametrize("T", [1, 2, 3])
def test_shorter_or_equal_to_horizon_is_all_success(T):
    out = lab(T)
    np.testing.assert_array_equal(out["rewards"], np.zeros(T))
    np.testing.assert_array_equal(out["masks"], np.zeros(T))
    np.testing.assert_array_equal(out["mc_returns"], np.zeros(T))
    assert out["success_step"].all()


def test_length_4_shifted():
    out = lab(4)
    np.testing.assert_array_equal(out["rewards"], [-1, 0, 0, 0])
    np.testing.assert_array_equal(out["masks"], [1, 0, 0, 0])
    np.testing.assert_allclose(out["mc_returns"], [-1, 0, 0, 0])
    np.testing.assert_array_equal(out["next_index"], [1, 2, 3, 3])


def test_length_4_unshifted():
    out = lab(4, shifted=False)
    np.testing.assert_array_equal(out["rewards"], [0, 1, 1, 1])
    np.testing.assert_array_equal(out["masks"], [1, 0, 0, 0])
    np.testing.assert_allclose(out["mc_returns"], [0.98, 1, 1, 1], rtol=1e-6)


def test_length_1_unshifted():
    out = lab(1, shifted=False)
    assert out["rewards"].tolist() == [1.0] and out["masks"].tolist() == [0.0]
    assert out["mc_returns"].tolist() == [1.0]


def test_length_40_shifted():
    out = lab(40)
    assert (out["rewards"][:37] == -1).all() and (out["rewards"][37:] == 0).all()
    assert (out["masks"][:37] == 1).all() and (out["masks"][37:] == 0).all()
    mc = out["mc_returns"]
    assert mc[36] == pytest.approx(-1.0)
    assert mc[35] == pytest.approx(-1.98)
    assert mc[34] == pytest.approx(-2.9404)
    # k steps before the success region: -(1 - 0.98^k) / 0.02; step 0 has k = 37
    assert mc[0] == pytest.approx(-(1 - 0.98 ** 37) / 0.02, rel=1e-5)
    assert mc[0] == pytest.approx(-26.3226, abs=1e-3)     # 0.98^37 = 0.473549
    assert (mc[37:] == 0).all()
    assert (np.diff(mc[:38]) > 0).all()                    # values rise towards success


def test_length_40_unshifted():
    out = lab(40, shifted=False)
    mc = out["mc_returns"]
    assert (out["rewards"][:37] == 0).all() and (out["rewards"][37:] == 1).all()
    assert mc[36] == pytest.approx(0.98)
    assert mc[0] == pytest.approx(0.473549, abs=1e-5)
    assert (mc[37:] == 1).all()


def test_failed_episode_with_flag_gets_no_success_label():
    out = lab(4, success=False, use_success_flag=True)
    np.testing.assert_array_equal(out["rewards"], [-1, -1, -1, -1])
    np.testing.assert_array_equal(out["masks"], [1, 1, 1, 1])
    np.testing.assert_allclose(out["mc_returns"], [-50, -50, -50, -50], rtol=1e-6)
    np.testing.assert_array_equal(out["absorbing"], [False, False, False, True])
    np.testing.assert_array_equal(out["next_index"], [1, 2, 3, 3])   # last: its own obs
    un = lab(4, success=False, use_success_flag=True, shifted=False)
    np.testing.assert_array_equal(un["rewards"], [0, 0, 0, 0])
    np.testing.assert_array_equal(un["mc_returns"], [0, 0, 0, 0])


def test_flag_ignored_when_disabled_or_unknown():
    demo = lab(4)
    for kw in ({"success": False}, {"success": None, "use_success_flag": True},
               {"success": True, "use_success_flag": True}):
        out = lab(4, **kw)
        np.testing.assert_array_equal(out["rewards"], demo["rewards"])
        assert not out["absorbing"].any()


def test_horizon_one_and_bad_input():
    out = label_steps(3, horizon=1, gamma=G)
    np.testing.assert_array_equal(out["rewards"], [-1, -1, 0])
    np.testing.assert_allclose(out["mc_returns"], [-1.98, -1, 0])
    with pytest.raises(ValueError, match="length"):
        label_steps(0)
