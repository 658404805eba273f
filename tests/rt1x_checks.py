"""Run INSIDE the RT-1-X environment (scripts/policy_env.sh rt1x), by tests/test_policies_real.py:
RT1XBackend on a real tf_agents SavedModel, saved by tf_agents' PolicySaver with RT-1-X's
observation and action specs and loaded exactly as upstream loads the released checkpoint
(SavedModelPyTFEagerPolicy(load_specs_from_pbtxt=True)). The policy is a tiny deterministic
function of the padded image, the embedding and its state (the real weights cannot be downloaded).
Plain asserts; prints one line per check. ``--save DIR`` only writes the SavedModel."""
import sys
import tempfile

import numpy as np
import tensorflow as tf
from tf_agents.policies import policy_saver, tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts

from vgps_server import rt1x

OBS_SPEC = {
    "image": tensor_spec.TensorSpec([256, 320, 3], tf.uint8, "image"),
    "natural_language_embedding": tensor_spec.TensorSpec([512], tf.float32, "natural_language_embedding"),
    "natural_language_instruction": tensor_spec.TensorSpec([], tf.string, "natural_language_instruction"),
}
ACTION_SPEC = {
    "world_vector": tensor_spec.BoundedTensorSpec([3], tf.float32, -1.75, 1.75, "world_vector"),
    "rotation_delta": tensor_spec.BoundedTensorSpec([3], tf.float32, -1.4, 1.4, "rotation_delta"),
    "gripper_closedness_action": tensor_spec.BoundedTensorSpec([1], tf.float32, -1.0, 1.0,
                                                               "gripper_closedness_action"),
    "terminate_episode": tensor_spec.BoundedTensorSpec([3], tf.int32, 0, 1, "terminate_episode"),
}
STATE_SPEC = {"t": tensor_spec.TensorSpec([1], tf.float32, "t")}


class TinyRT1(tf_policy.TFPolicy):
    """Action = tanh(features @ W + 0.3 t) scaled to the spec, features = [mean colour of the
    padded image and of its top-left 32x32 corner, embedding]; state t counts the calls."""

    def __init__(self):
        super().__init__(ts.time_step_spec(OBS_SPEC), ACTION_SPEC, policy_state_spec=STATE_SPEC)
        w = np.random.default_rng(0).normal(0, 0.5, (6 + 512, 7)).astype(np.float32)
        self.w = tf.Variable(w, trainable=False)

    def _features(self, obs):
        img = tf.cast(obs["image"], tf.float32) / 255.0
        return tf.concat([tf.reduce_mean(img, [1, 2]), tf.reduce_mean(img[:, :32, :32], [1, 2]),
                          obs["natural_language_embedding"]], -1)

    def _action(self, time_step, policy_state, seed):
        out = tf.tanh(self._features(time_step.observation) @ self.w + 0.3 * policy_state["t"])
        b = tf.shape(out)[0]
        act = {"world_vector": 1.75 * out[:, :3], "rotation_delta": 1.4 * out[:, 3:6],
               "gripper_closedness_action": out[:, 6:7],
               "terminate_episode": tf.zeros([b, 3], tf.int32)}
        return policy_step.PolicyStep(act, {"t": policy_state["t"] + 1.0}, ())

    def _distribution(self, time_step, policy_state):
        raise NotImplementedError


def save(d):
    policy_saver.PolicySaver(TinyRT1(), batch_size=None).save(d)


def embed(texts):
    out = []
    for t in texts:
        rng = np.random.default_rng(sum(map(ord, t)))
        out.append(rng.standard_normal(512).astype(np.float32))
    return np.stack(out)


def check(name, ok):
    assert ok, name
    print("ok:", name)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--save":
    save(sys.argv[2])
    sys.exit(0)

with tempfile.TemporaryDirectory() as d:
    save(d)
    policy = rt1x.load_policy(d)                       # upstream's loading path
    check("the SavedModel loads with its specs from policy_specs.pbtxt",
          set(policy.time_step_spec.observation) == set(OBS_SPEC))
    ref = TinyRT1()
    rng = np.random.default_rng(1)
    frames = [rng.integers(1, 256, (2, 64, 64, 3), dtype=np.uint8) for _ in range(3)]
    instr = ["put the spoon on the towel", "pick coke can"]
    keys = np.zeros((2, 2), np.uint32)
    be = rt1x.RT1XBackend(policy, embed)
    outs = [be.sample_actions({"image": f, "embodiment": np.asarray(["widowx", "google_robot"])},
                              instr, 3, keys) for f in frames]
    check("shape [B, K, 7] float32", all(o.shape == (2, 3, 7) and o.dtype == np.float32 for o in outs))
    check("greedy: the K samples are identical", all(np.array_equal(o[:, 0], o[:, 2]) for o in outs))
    open_ = [1.0, 1.0]
    for t, f in enumerate(frames):
        for i, emb in enumerate(["widowx", "google_robot"]):
            img = tf.cast(tf.image.resize_with_pad(f[i], 256, 320), tf.uint8)[None]
            x = ref._features({"image": img, "natural_language_embedding": embed([instr[i]])})
            out = np.tanh(np.asarray(x @ ref.w) + 0.3 * t)[0]
            raw = {"world_vector": 1.75 * out[:3], "rotation_delta": 1.4 * out[3:6],
                   "gripper_closedness_action": out[6:7]}
            want, open_[i] = rt1x.to_bridge(raw, emb, open_[i])
            np.testing.assert_allclose(outs[t][i, 0], want, atol=2e-5)
    check("resize-with-pad to 256x320, state advanced once per request, post-processed per robot", True)
    pad = tf.image.resize_with_pad(frames[0][0], 256, 320).numpy()
    check("a square frame is padded to 256x320, not stretched (black side bars)",
          pad.shape == (256, 320, 3) and pad[:, :32].max() == 0 and pad[:, -32:].max() == 0
          and pad[:, 32:288].min() > 0)
    be.reset(2)
    again = be.sample_actions({"image": frames[0], "embodiment": np.asarray(["widowx", "google_robot"])},
                              instr, 3, keys)
    check("reset restarts the policy state", np.array_equal(again, outs[0]))
print("all RT-1-X checks passed")
