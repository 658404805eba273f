"""RLDS reading and writing: committed tiny datasets, the real octo debug Bridge, bad input."""
import numpy as np
import pytest

from tests.data_helpers import make_test_datasets_module, write_raw_bridge
from vgps.data.rlds import RLDSError, describe, fractal_gripper, load_episodes
from vgps.data.rlds_writer import write_rlds
from vgps.paths import BRIDGE_DEBUG, TEST_DATA

MK = make_test_datasets_module()


def test_bridge_tiny_reads_back_exactly():
    eps = load_episodes(TEST_DATA / "bridge_tiny")
    assert describe(TEST_DATA / "bridge_tiny")["layout"] == "bridge"
    assert [len(e["action"]) for e in eps] == [1, 2, 3, 4, 9, 12]
    assert [e["success"] for e in eps] == [True, True, True, False, True, False]
    for i, e in enumerate(eps):
        ref = MK.make_episode(i, len(e["action"]), success=e["success"], seed=1)
        np.testing.assert_array_equal(e["observation"]["image"], ref["observation"]["image"])
        np.testing.assert_array_equal(e["observation"]["state"], ref["observation"]["state"])
        np.testing.assert_array_equal(e["action"], ref["action"])
        assert e["instruction"] == ref["instruction"]
        assert e["metadata"]["task_id"] == ref["metadata"]["task_id"]
        assert e["metadata"]["seed"] == ref["metadata"]["seed"]
    assert len(load_episodes(TEST_DATA / "bridge_tiny", split="val")) == 2


def test_fractal_tiny_maps_to_bridge_convention():
    info = describe(TEST_DATA / "fractal_tiny")
    assert info["layout"] == "fractal" and info["image_key"] == "steps/observation/image"
    eps = load_episodes(TEST_DATA / "fractal_tiny")
    assert [len(e["action"]) for e in eps] == [5, 7, 8, 10]
    for i, e in enumerate(eps):
        ref = MK.make_episode(i, len(e["action"]), success=i != 2, seed=3)
        np.testing.assert_array_equal(e["action"], ref["action"])   # incl. gripper 1=open
        assert e["metadata"]["embodiment"] == "google_robot"
    assert eps[2]["success"] is False


def test_fractal_relative_gripper_commands():
    # +1 close, -1 open, 0 keep; first command is "close" so the gripper starts open
    np.testing.assert_array_equal(fractal_gripper([0, 0, 1, 0, 0, -1, 0]), [1, 1, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(fractal_gripper([0, -1, 0]), [0, 1, 1])
    np.testing.assert_array_equal(fractal_gripper([0, 0]), [1, 1])


def test_image_resize_on_load():
    e = load_episodes(TEST_DATA / "bridge_tiny", image_size=16, max_episodes=1)[0]
    assert e["observation"]["image"].shape == (1, 16, 16, 3)
    # background colour survives area resampling
    assert tuple(e["observation"]["image"][0, -1, -1]) == (40, 60, 80)


@pytest.mark.skipif(not BRIDGE_DEBUG.exists(), reason=f"octo debug Bridge not at {BRIDGE_DEBUG} "
                    "(needs the shared external data)")
def test_real_octo_debug_bridge():
    info = describe(BRIDGE_DEBUG)
    assert info["layout"] == "bridge" and info["image_key"] == "steps/observation/image_0"
    eps = load_episodes(BRIDGE_DEBUG)
    assert len(eps) == 25
    e = eps[0]
    assert e["observation"]["image"].shape == (10, 64, 64, 3)
    assert e["observation"]["state"].shape == (10, 7)
    assert e["action"].shape == (10, 7) and e["action"].dtype == np.float32
    assert e["instruction"] == "put cup from counter or drying rack into sink"
    assert e["success"] is None                          # real Bridge has no success flag
    grip = np.concatenate([ep["action"][:, 6] for ep in eps])
    assert grip.min() >= 0.0 and grip.max() <= 1.0 and grip.max() > 0.9   # 1 = open


def test_writer_is_deterministic_and_adds_splits(tmp_path):
    eps = [MK.make_episode(i, 3 + i) for i in range(3)]
    a = write_rlds(eps, tmp_path / "a", name="d", layout="bridge")
    b = write_rlds(iter(eps), tmp_path / "b", name="d", layout="bridge")
    name = "d-train.tfrecord-00000-of-00001"
    assert (a / name).read_bytes() == (b / name).read_bytes()
    write_rlds(eps[:1], tmp_path / "a", name="d", layout="bridge", split="val")
    assert describe(a)["splits"] == {"train": 3, "val": 1}


def test_missing_directory_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found.*nowhere"):
        load_episodes(tmp_path / "nowhere")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="no dataset_info.json"):
        load_episodes(tmp_path / "empty_dir")


def test_empty_dataset_error(tmp_path):
    d = write_raw_bridge(tmp_path / "raw" / "1.0.0", [])
    with pytest.raises(RLDSError, match=r"raw/1\.0\.0: split 'train' is empty"):
        load_episodes(d)
    with pytest.raises(RLDSError, match="no split 'test'"):
        load_episodes(TEST_DATA / "bridge_tiny", split="test")


def test_missing_instruction_error(tmp_path):
    d = write_raw_bridge(tmp_path / "raw" / "1.0.0", [(3, "pick up the cube"), (2, "")])
    with pytest.raises(RLDSError, match=r"raw/1\.0\.0 \[train\] episode 1: episode without a "
                                        "language instruction"):
        load_episodes(d)
    eps = load_episodes(d, skip_missing_instruction=True)
    assert [e["instruction"] for e in eps] == ["pick up the cube"]


def test_wrong_action_size_error(tmp_path):
    d = write_raw_bridge(tmp_path / "raw" / "1.0.0", [(3, "x")], action_dim=6)
    with pytest.raises(RLDSError, match=r"features.json: steps/action has shape \(6,\)"):
        load_episodes(d)


def test_writer_rejects_bad_episodes(tmp_path):
    good = MK.make_episode(0, 3)
    bad_act = {**good, "action": np.zeros((3, 6), np.float32)}
    with pytest.raises(ValueError, match=r"episode 1: action must be float32\[T, 7\]"):
        write_rlds([good, bad_act], tmp_path, name="w", layout="bridge")
    with pytest.raises(ValueError, match="episode 0: episode without an instruction"):
        write_rlds([{**good, "instruction": ""}], tmp_path, name="w2", layout="bridge")
    with pytest.raises(ValueError, match="no episodes to write"):
        write_rlds([], tmp_path, name="w3", layout="bridge")
    with pytest.raises(ValueError, match="layout must be one of"):
        write_rlds([good], tmp_path, name="w4", layout="droid")
