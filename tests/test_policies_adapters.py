"""The in-process adapters (vgps.policies.adapters) over the vgps_server backends.

The backends' behaviour against the real upstream code (Octo's sample_actions, tf_agents' RT-1-X
SavedModel path) is tested in the policies' own environments (tests/octo_checks.py,
tests/rt1x_checks.py under `make test-policies`). Here: what needs no framework — the action
post-processing formulas, the argument plumbing of OpenVLA (whose model code is hub-only), keys
and the embodiment field, and the errors that say what to do."""
import sys
import types

import numpy as np
import pytest

from tests._steer_fakes import keys
from vgps.policies.adapters import (BackendPolicy, MissingDependencyError, OctoAdapter,
                                    OpenVLAAdapter, RT1XAdapter)
from vgps_server import rt1x
from vgps_server.openvla import PROMPT, seed_of

B, K = 2, 3
OBS = {"image": np.zeros((B, 64, 64, 3), np.uint8), "state": np.zeros((B, 5), np.float32)}


def test_octo_under_our_pins_says_to_serve_it_from_its_own_environment():
    with pytest.raises(MissingDependencyError, match=r"octo.*make policy-env POLICY=octo.*RemotePolicy"):
        OctoAdapter("/nonexistent")
    with pytest.raises(MissingDependencyError, match="(transformers|checkpoint)"):
        OpenVLAAdapter("/nonexistent")
    with pytest.raises(MissingDependencyError, match="tf_agents.*POLICY=rt1x"):
        RT1XAdapter("/nonexistent")


class _Recorder:
    """A backend that records what it was sent."""
    name = "rec"

    def __init__(self):
        self.calls = []

    def reset(self, b):
        pass

    def sample_actions(self, obs, instr, k, rng):
        self.calls.append((obs, instr, k, rng))
        return np.zeros((len(instr), k, 7))


def test_backend_policy_sends_raw_keys_and_the_embodiment_and_validates():
    import jax
    be = _Recorder()
    pol = BackendPolicy(be, "rec", embodiment="google_robot")
    a = pol.sample_actions(OBS, ["x", "y"], K, jax.random.wrap_key_data(keys(0, B)))
    obs, instr, k, rng = be.calls[-1]
    assert a.shape == (B, K, 7) and a.dtype == np.float32 and k == K
    assert rng.dtype == np.uint32 and np.array_equal(rng, np.asarray(keys(0, B)))
    assert list(obs["embodiment"]) == ["google_robot"] * B
    pol.sample_actions({**OBS, "embodiment": np.asarray(["widowx", "widowx"])}, ["x", "y"], K, keys(0, B))
    assert list(be.calls[-1][0]["embodiment"]) == ["widowx", "widowx"]      # an explicit one wins
    with pytest.raises(ValueError, match="one PRNG key per row"):
        pol.sample_actions(OBS, ["x", "y"], K, keys(0, 1))
    with pytest.raises(ValueError, match="3 instructions for a batch of 2"):
        pol.sample_actions(OBS, ["x", "y", "z"], K, keys(0, B))


# ------------------------------------------------------------------------------------ RT-1-X
def test_rt1x_widowx_rescaling_and_inverted_gripper_as_simplerenv():
    raw = {"world_vector": [1.75, -0.875, 3.0], "rotation_delta": [1.4, 0.0, -2.0],
           "gripper_closedness_action": [0.3]}
    a, g = rt1x.to_bridge(raw, "widowx", prev_open=1.0)
    np.testing.assert_allclose(a[:3], [0.05, -0.025, 0.05], atol=1e-7)      # ±1.75 → ±0.05, clipped
    np.testing.assert_allclose(a[3:6], [0.25, 0.0, -0.25], atol=1e-7)       # ±1.4 → ±0.25, clipped
    assert a[6] == 0.0 and g == 0.0                                         # -0.3 <= 0 → close
    a, _ = rt1x.to_bridge({**raw, "gripper_closedness_action": [-0.2]}, "widowx", prev_open=0.0)
    assert a[6] == 1.0                                                      # -(-0.2) > 0 → open


def test_rt1x_google_gripper_is_relative_no_change_keeps_the_state():
    raw = {"world_vector": [0.01, 0, 0], "rotation_delta": [0, 0, 0.1]}
    state, seen = 1.0, []
    for closedness in (0.0, 1.0, 0.0, 0.005, -1.0, 0.0):
        a, state = rt1x.to_bridge({**raw, "gripper_closedness_action": [closedness]}, "google_robot", state)
        seen.append(a[6])
        np.testing.assert_allclose(a[:6], [0.01, 0, 0, 0, 0, 0.1], atol=1e-7)   # no rescaling
    assert seen == [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]      # open, close, keep, keep (|g|<0.01), open, keep
    with pytest.raises(KeyError, match="franka"):
        rt1x.to_bridge({**raw, "gripper_closedness_action": [0]}, "franka", 1.0)


def test_rt1x_needs_its_language_encoder():
    with pytest.raises(ValueError, match="USE-large"):
        rt1x.RT1XBackend(policy=object(), embed=None)


# ----------------------------------------------------------------------------------- OpenVLA
class _Inputs(dict):
    def to(self, device, dtype=None):
        self.moved = (device, dtype)
        return self


class _Processor:
    def __call__(self, prompt, image):
        assert image.size == (224, 224) and image.mode == "RGB"
        return _Inputs(prompt=prompt)


class _VLA:
    device, dtype = "cuda:0", "bfloat16"

    def __init__(self):
        self.calls = []

    def predict_action(self, **kw):
        self.calls.append(kw)
        return np.full(7, len(self.calls), np.float32)


@pytest.fixture
def fake_torch(monkeypatch):
    seeds = []
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(manual_seed=seeds.append))
    return seeds


def test_openvla_inputs_on_the_model_device_and_dtype_sampling_with_temperature(fake_torch):
    vla = _VLA()
    pol = OpenVLAAdapter(model=vla, processor=_Processor(), temperature=0.7, embodiment="widowx")
    a = pol.sample_actions(OBS, ["Put X", "y"], K, keys(0, B))
    assert a.shape == (B, K, 7) and len(vla.calls) == B * K                 # K passes per row
    np.testing.assert_array_equal(a[:, :, 0], np.arange(1, B * K + 1).reshape(B, K))
    c = vla.calls[0]
    assert c["prompt"] == PROMPT.format("put x") and c["prompt"].endswith("?\nOut:")
    assert c["do_sample"] is True and c["temperature"] == 0.7 and c["unnorm_key"] == "bridge_orig"
    assert len(set(fake_torch)) == B * K                                    # a seed per pass
    assert fake_torch[:K] == [(seed_of(np.asarray(keys(0, B))[0]) + k) % (2**63 - 1) for k in range(K)]
    greedy = OpenVLAAdapter(model=_VLA(), processor=_Processor(), do_sample=False)
    greedy.sample_actions({**OBS, "embodiment": np.asarray(["google_robot"] * B)}, ["a", "b"], 1, keys(0, B))
    c = greedy.backend.model.calls[0]
    assert c["do_sample"] is False and "temperature" not in c and c["unnorm_key"] == "fractal20220817_data"


def test_openvla_inputs_are_moved(fake_torch):
    moved = []

    class P(_Processor):
        def __call__(self, prompt, image):
            x = super().__call__(prompt, image)
            moved.append(x)
            return x
    OpenVLAAdapter(model=_VLA(), processor=P()).sample_actions(OBS, ["a", "b"], 1, keys(0, B))
    assert all(x.moved == ("cuda:0", "bfloat16") for x in moved) and len(moved) == B
