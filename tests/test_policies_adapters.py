"""Adapter array plumbing with stand-in model objects that have the real call signatures."""
import numpy as np
import pytest

from tests._steer_fakes import HashEncoder, keys
from vgps.policies.adapters import MissingDependencyError, OctoAdapter, OpenVLAAdapter, RT1XAdapter

B, K, H = 2, 3, 4
OBS = {"image": np.zeros((B, 256, 256, 3), np.uint8), "state": np.zeros((B, 5), np.float32)}


class FakeOcto:
    """Octo's signature; one call per row (its own key): value = k*100 + row*10 + h, the row
    read from the instruction ("x" -> 0, "y" -> 1)."""
    dataset_statistics = {"bridge_dataset": {"action": {
        "mean": np.full(7, 0.5, np.float32), "std": np.full(7, 2.0, np.float32),
        "mask": np.array([True] * 6 + [False])}}}

    def __init__(self):
        self.keys = []

    def create_tasks(self, texts):
        return {"language_instruction": texts}

    def sample_actions(self, observations, tasks, sample_shape=(), rng=None, **kw):
        b = observations["image_primary"].shape[0]
        assert observations["image_primary"].shape == (b, 1, 256, 256, 3)
        self.keys.append(np.asarray(rng))
        k = sample_shape[0]
        rows = np.array(["xy".index(t) for t in tasks["language_instruction"]])
        v = (np.arange(k)[:, None, None] * 100 + rows[None, :, None] * 10
             + np.arange(H)[None, None, :]).astype(np.float32)
        a = np.repeat(v[..., None], 7, -1)
        a[..., -1] = 0.7
        return a


def test_octo_plumbing():
    model = FakeOcto()
    pol = OctoAdapter(model=model)
    a = pol.sample_actions(OBS, ["x", "y"], K, keys(0, B))
    np.testing.assert_array_equal(np.stack(model.keys), keys(0, B))   # row i: one call, key i
    assert a.shape == (B, K, 7)
    for b in range(B):
        for k in range(K):           # first action of the chunk (h = 0), un-normalized: x*2 + 0.5
            np.testing.assert_allclose(a[b, k, :6], (k * 100 + b * 10) * 2.0 + 0.5)
    assert (a[..., -1] == 1.0).all()  # gripper not un-normalized (mask), binarized


class FakeProcessor:
    def __call__(self, prompt, image):
        assert prompt.startswith("In: What action should the robot take to ")
        return {"prompt": prompt, "size": image.size}


class FakeVLA:
    def __init__(self):
        self.calls = 0

    def predict_action(self, prompt, size, unnorm_key, do_sample):
        assert unnorm_key == "bridge_orig" and do_sample and size == (224, 224)
        self.calls += 1
        return np.full(7, self.calls, np.float32)


def test_openvla_k_forward_passes():
    vla = FakeVLA()
    a = OpenVLAAdapter(model=vla, processor=FakeProcessor()).sample_actions(OBS, ["Put X", "y"], K,
                                                                            keys(0, B))
    assert a.shape == (B, K, 7) and vla.calls == B * K
    np.testing.assert_array_equal(a[:, :, 0], np.arange(1, B * K + 1).reshape(B, K))


class _Step:
    def __init__(self, action, state):
        self.action, self.state = action, state


class FakeRT1:
    def get_initial_state(self, batch_size):
        return np.zeros(batch_size)

    def action(self, time_step, state):
        b = time_step.observation["image"].shape[0]
        assert time_step.observation["natural_language_embedding"].shape == (b, 512)
        return _Step({"world_vector": np.ones((b, 3)), "rotation_delta": np.zeros((b, 3)),
                      "gripper_closedness_action": np.array([[1.0], [-1.0]])[:b],
                      "terminate_episode": np.zeros((b, 3))}, state + 1)


def test_rt1x_gripper_convention():
    pol = RT1XAdapter(policy=FakeRT1(), language_encoder=HashEncoder())
    pol.reset(B)
    a = pol.sample_actions(OBS, ["x", "y"], K, keys(0, B))
    assert a.shape == (B, K, 7)
    np.testing.assert_array_equal(a[0, :, -1], 0.0)   # closedness +1 → closed (0)
    np.testing.assert_array_equal(a[1, :, -1], 1.0)   # closedness −1 → open (1)
    np.testing.assert_array_equal(pol._state, 1)       # advanced once, not K times


def test_missing_packages_say_what_to_do():
    with pytest.raises(MissingDependencyError, match="octo"):
        OctoAdapter("/nonexistent")
    with pytest.raises(MissingDependencyError, match="(transformers|checkpoint)"):
        OpenVLAAdapter("/nonexistent")
