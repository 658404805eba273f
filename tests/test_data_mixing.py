"""Training input: in-memory mixing, seed determinism, tf.data pipeline, load_training_data."""
import numpy as np
import pytest

from tests.data_helpers import HashEncoder, copy_tiny, make_test_datasets_module
from vgps.config import DataConfig
from vgps.data.memory import MixtureSampler, TransitionStore
from vgps.data.normalize import ActionNormalizer

MK = make_test_datasets_module()
CFG = DataConfig()


def store(n_eps, length, seed, name):
    eps = [MK.make_episode(i, length, seed=seed) for i in range(n_eps)]
    return TransitionStore(eps, CFG, keys=("state",), name=name)


@pytest.fixture(scope="module")
def stores():
    return [store(4, 10, 0, "a"), store(3, 7, 1, "b")]


def sampler(stores, seed=0, weights=(1.0, 0.54), batch=1000):
    norm = ActionNormalizer.fit(np.concatenate([s.actions for s in stores]))
    return MixtureSampler(stores, weights, batch_size=batch, seed=seed, normalizer=norm,
                          encoder=HashEncoder())


def test_store_labels_and_next_observation(stores):
    s = stores[0]
    assert len(s) == 40 and s.num_episodes == 4
    np.testing.assert_array_equal(s.rewards[:10], [-1] * 7 + [0] * 3)
    np.testing.assert_array_equal(s.next_index[:10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 9])
    np.testing.assert_array_equal(s.next_index[10:12], [11, 12])      # offsets per episode
    b = s.gather(np.array([0, 9]))
    np.testing.assert_array_equal(b["next_observations"]["state"][0], s.obs["state"][1])
    np.testing.assert_array_equal(b["next_observations"]["state"][1], s.obs["state"][9])


def test_mixing_ratio_within_2_percent(stores):
    smp = sampler(stores)
    which = np.concatenate([smp.indices(step)[0] for step in range(10)])   # 10k samples
    assert len(which) == 10_000
    assert abs((which == 0).mean() - 1 / 1.54) < 0.02
    smp3 = sampler(stores, weights=(1.0, 3.0))
    which3 = np.concatenate([smp3.indices(step)[0] for step in range(10)])
    assert abs((which3 == 1).mean() - 0.75) < 0.02


def test_batch_format_and_seed_determinism(stores):
    a, b, c = sampler(stores, 0, batch=64), sampler(stores, 0, batch=64), sampler(stores, 1, batch=64)
    b0, b0_again, c0 = a.sample(0), b.sample(0), c.sample(0)
    assert set(b0) == {"observations", "next_observations", "actions", "rewards", "masks",
                       "mc_returns", "language"}
    assert b0["observations"]["state"].shape == (64, 8) and b0["language"].shape == (64, 512)
    assert b0["actions"].dtype == np.float32 and b0["actions"].shape == (64, 7)
    for k in ("actions", "rewards", "mc_returns", "language"):
        np.testing.assert_array_equal(b0[k], b0_again[k])
    assert not np.array_equal(b0["actions"], c0["actions"])
    assert not np.array_equal(b0["actions"], a.sample(1)["actions"])
    np.testing.assert_array_equal(a.sample(0)["actions"], b0["actions"])   # random access
    # labels consistent: masks 0 exactly on reward-0 (success) rows; mc returns match rewards
    np.testing.assert_array_equal(b0["masks"] == 0, b0["rewards"] == 0)
    assert ((b0["mc_returns"] == 0) == (b0["rewards"] == 0)).all()


def test_weight_errors(stores):
    with pytest.raises(ValueError, match="one non-negative weight per dataset"):
        sampler(stores, weights=(1.0,))


@pytest.fixture(scope="module", autouse=True)
def artifacts_root(tmp_path_factory):
    """Statistics caches go under this module's own artifacts root."""
    root = tmp_path_factory.mktemp("artifacts")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VGPS_ARTIFACTS", str(root))
        yield root


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    return [copy_tiny(tmp, "bridge_tiny"), copy_tiny(tmp, "fractal_tiny")]


def _listing(d):
    return sorted((p.relative_to(d).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in [d, *d.rglob("*")])


@pytest.mark.parametrize("backend", ["memory", "tfdata"])
def test_load_training_data_backends(tiny_dirs, artifacts_root, backend):
    from vgps.data.loader import load_training_data
    cfg = DataConfig(image_size=32, use_success_flag=True, shuffle_buffer=64)
    kw = dict(obs_keys=("image", "state"), batch_size=16, backend=backend, encoder=HashEncoder())
    td = load_training_data(tiny_dirs, None, cfg, seed=0, **kw)
    from vgps.artifacts import fingerprint as data_fingerprint
    from vgps.data.loader import statistics_cache_path
    for d in tiny_dirs:        # statistics cached under artifacts/, never beside the data
        assert not (d / "dataset_statistics.json").exists()
        f = statistics_cache_path(d, "train", data_fingerprint(d))
        assert f.parent == artifacts_root / "_cache" / "statistics" and f.exists()
    assert td.backend == backend and list(td.weights) == [1.0, 0.54]     # by layout
    b0 = td.sample(0)
    assert b0["observations"]["image"].shape == (16, 32, 32, 3)
    assert b0["observations"]["image"].dtype == np.uint8
    assert b0["next_observations"]["state"].shape == (16, 8)
    assert set(np.unique(b0["rewards"])) <= {0.0, -1.0}
    # failed episodes (flag) give mc = -50; successful ones never go below -1/(1-0.98)
    assert (b0["mc_returns"] >= -50.0001).all()
    same = load_training_data(tiny_dirs, None, cfg, seed=0, **kw).sample(0)
    other = load_training_data(tiny_dirs, None, cfg, seed=1, **kw).sample(0)
    for k in ("actions", "mc_returns", "language"):
        np.testing.assert_array_equal(b0[k], same[k])
    np.testing.assert_array_equal(b0["observations"]["image"], same["observations"]["image"])
    assert not np.array_equal(b0["actions"], other["actions"])
    # actions are normalized with the pooled normalizer: un-normalizing gives raw actions
    raw = td.normalizer.unnormalize(b0["actions"])
    assert np.isin(raw[:, 6], [0.0, 1.0]).all()


def test_augmentation_is_seeded_and_shared_between_obs_and_next():
    from vgps.data.augment import augment_numpy
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    a1, a2 = augment_numpy([x, x], (0, 5), CFG)
    b1, = augment_numpy([x], (0, 5), CFG)
    c1, = augment_numpy([x], (0, 6), CFG)
    assert a1.shape == x.shape and a1.dtype == np.uint8
    np.testing.assert_array_equal(a1, a2)           # obs and next obs get the same parameters
    np.testing.assert_array_equal(a1, b1)
    assert not np.array_equal(a1, c1) and not np.array_equal(a1, x)


def test_augmentation_identity_and_grey_invariance():
    from dataclasses import replace
    from vgps.data.augment import augment_numpy
    x = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    ident = replace(CFG, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), brightness=0.0,
                    contrast=(1.0, 1.0), saturation=(1.0, 1.0), hue=0.0)
    out, = augment_numpy([x], (0, 0), ident)
    assert np.abs(out.astype(int) - x).max() <= 1          # identity up to rounding
    grey = np.repeat(x[..., :1], 3, axis=-1)
    hue_only = replace(ident, hue=0.5)
    out, = augment_numpy([grey], (0, 3), hue_only)
    assert np.abs(out.astype(int) - grey).max() <= 1       # hue/saturation keep grey pixels


def test_cached_statistics_are_refitted_when_the_data_are_rewritten(tmp_path):
    """A regenerated dataset must not reuse the statistics of the data it replaced."""
    import os

    from tests.data_helpers import write_raw_bridge
    from vgps.data.loader import dataset_statistics
    d = write_raw_bridge(tmp_path / "raw" / "1.0.0", [(5, "pick coke can"), (5, "pick coke can")])
    s1 = dataset_statistics(d)
    assert s1["num_transitions"] == 10
    assert dataset_statistics(d)["num_transitions"] == 10          # served from the cache
    shard = next(d.glob("raw-train.tfrecord*"))
    st = shard.stat()
    write_raw_bridge(d, [(4, "pick coke can"), (4, "open drawer"), (4, "pick coke can")])
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # even within one clock tick
    s2 = dataset_statistics(d)
    assert s2["num_transitions"] == 12 and s2["instructions"] == ["open drawer", "pick coke can"]


def test_loading_leaves_the_dataset_directory_untouched(tmp_path, artifacts_root):
    """Datasets may be read-only or someone else's (../shared): a load writes nothing there, and
    the statistics cached under artifacts/ are used by the next load (no refit)."""
    from unittest import mock

    from vgps.artifacts import fingerprint
    from vgps.data import loader
    d = copy_tiny(tmp_path, "bridge_tiny")
    before = _listing(d.parent)
    kw = dict(obs_keys=("state",), batch_size=8, backend="memory", encoder=HashEncoder())
    td = loader.load_training_data([d], None, DataConfig(), **kw)
    td.sample(0)
    assert _listing(d.parent) == before
    f = loader.statistics_cache_path(d, "train", fingerprint(d))
    assert f.is_relative_to(artifacts_root) and f.exists()
    assert not list(f.parent.glob("*.tmp"))                       # written atomically
    with mock.patch.object(loader, "iter_indexed_episodes",
                           side_effect=AssertionError("refitted instead of using the cache")):
        again = loader.load_training_data([d], None, DataConfig(), **kw)
    assert again.normalizer == td.normalizer
    assert _listing(d.parent) == before
