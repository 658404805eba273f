import json

import numpy as np
import pytest

from vgps.data.normalize import (ActionNormalizer, StateNormalizer, fit_statistics,
                                 load_statistics, pool, save_statistics)


def actions(n=500, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(loc=[0.1, -0.2, 0.3, 0, 0, 0, 0], scale=[0.05, 0.1, 2, 1, 1, 1, 1],
                   size=(n, 7)).astype(np.float32)
    a[:, 6] = rng.integers(0, 2, n)
    return a


def test_round_trip_and_gripper_untouched():
    a = actions()
    n = ActionNormalizer.fit(a)
    z = n.normalize(a)
    np.testing.assert_array_equal(z[:, 6], a[:, 6])          # gripper passes through exactly
    np.testing.assert_allclose(z[:, :6].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :6].std(0), 1, atol=1e-4)
    np.testing.assert_allclose(n.unnormalize(z), a, atol=1e-5)
    assert n.normalize(a[None])[0].shape == a.shape           # [..., 7]


def test_hand_values():
    n = ActionNormalizer([1, 2, 3, 4, 5, 6, 7], [2, 2, 2, 2, 2, 2, 2])
    x = np.array([3, 2, 1, 4, 5, 6, 0.5], np.float32)
    np.testing.assert_array_equal(n.normalize(x), [1, 0, -1, 0, 0, 0, 0.5])


def test_json_round_trip(tmp_path):
    a = actions()
    n, s = ActionNormalizer.fit(a), StateNormalizer.fit(a[:, :5])
    assert ActionNormalizer.from_dict(json.loads(json.dumps(n.to_dict()))) == n
    p = save_statistics(tmp_path, n, s)
    assert p.name == "dataset_statistics.json"
    n2, s2 = load_statistics(tmp_path)
    assert n2 == n and s2 == s
    with pytest.raises(FileNotFoundError, match="no normalization statistics"):
        load_statistics(tmp_path / "missing")


def test_fit_statistics_is_cached(tmp_path):
    eps = [{"action": actions(50, i), "observation": {"state": actions(50, i)[:, :3]}}
           for i in range(3)]
    n1, _ = fit_statistics(eps, cache_dir=tmp_path)
    n2, _ = fit_statistics([{"action": actions(5, 9), "observation": {}}], cache_dir=tmp_path)
    assert n1 == n2                                            # read back, not refitted
    n3, _ = fit_statistics([{"action": actions(5, 9), "observation": {}}], cache_dir=tmp_path,
                           refit=True)
    assert n3 != n1


def test_pool_equals_fit_on_union():
    a, b = actions(300, 1), actions(100, 2) * 3
    p = pool([ActionNormalizer.fit(a), ActionNormalizer.fit(b)], [300, 100])
    u = ActionNormalizer.fit(np.concatenate([a, b]))
    np.testing.assert_allclose(p.mean, u.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.std, u.std, rtol=1e-5)


def test_wrong_size_is_an_error():
    with pytest.raises(ValueError, match=r"expected \[\.\.\., 7\]"):
        ActionNormalizer.fit(actions()).normalize(np.zeros((2, 6)))
