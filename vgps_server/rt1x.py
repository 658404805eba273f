"""RT-1-X behind the policy protocol, run the way SimplerEnv runs it (in a TF 2.15 + tf_agents env).

Follows ``simpler_env/policies/rt1/rt1_model.py`` (SimplerEnv, ``RT1Inference``) and the
open_x_embodiment release notebook:

- the checkpoint is a tf_agents SavedModel, loaded as
  ``py_tf_eager_policy.SavedModelPyTFEagerPolicy(path, load_specs_from_pbtxt=True,
  use_tf_function=True)``; the observation is ``zero_spec_nest`` of its observation spec with
  ``image`` (``tf.image.resize_with_pad`` to 256×320, uint8), ``natural_language_embedding``
  (USE-large, 512-d) and ``natural_language_instruction``, wrapped by ``ts.transition(obs,
  reward=0)``; one policy state per row, advanced once per request (with the first sample);
- WidowX (``policy_setup="widowx_bridge"``): world vector rescaled from [−1.75, 1.75] to
  [−0.05, 0.05] and rotation from [−1.4, 1.4] to [−0.25, 0.25] (clipped), the gripper inverted
  and thresholded at 0 (open when ``-closedness > 0``);
- Google robot: no rescaling, ``|closedness| < 0.01`` → 0, and closedness is *relative* (+1 close,
  −1 open, 0 keep): converted to our absolute gripper (1 open, 0 closed) with the row's last
  gripper state, so "no change" keeps the gripper as it is (starting open).

Output: ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` with gripper 1 = open (the Bridge
convention of our suite); SimplerEnv converts the rotation to axis-angle for its simulator, which
the environment does, not the policy. **RT-1-X decodes its action tokens greedily**: the released
SavedModel exposes no temperature or seed, so its K samples are K identical calls from the same
state and steering cannot change its action (``metadata()["greedy"]``); the keys are checked but
unused. Requires tensorflow and tf_agents (envs/rt1x.txt); nothing here is imported by :mod:`vgps`.
"""
from __future__ import annotations

import numpy as np

IMAGE_HW = (256, 320)
WIDOWX_BOUNDS = {"world_vector": (1.75, 0.05), "rotation_delta": (1.4, 0.25)}


def rescale(x, bound: float, out: float) -> np.ndarray:
    """``[-bound, bound]`` → ``[-out, out]``, clipped (SimplerEnv's ``_rescale_action_with_bound``)."""
    x = np.asarray(x, np.float64)
    return np.clip((x + bound) / (2 * bound) * (2 * out) - out, -out, out)


def to_bridge(raw: dict, embodiment: str, prev_open: float) -> tuple[np.ndarray, float]:
    """One RT-1-X action dict → ``([7], gripper state)`` in our convention (module docstring)."""
    wv = np.asarray(raw["world_vector"], np.float64).reshape(3)
    rot = np.asarray(raw["rotation_delta"], np.float64).reshape(3)
    g = float(np.asarray(raw["gripper_closedness_action"]).reshape(-1)[0])
    if embodiment == "widowx":
        wv, rot = rescale(wv, *WIDOWX_BOUNDS["world_vector"]), rescale(rot, *WIDOWX_BOUNDS["rotation_delta"])
        grip = 1.0 if -g > 0 else 0.0
    elif embodiment == "google_robot":
        g = 0.0 if abs(g) < 1e-2 else g
        grip = 0.0 if g > 0.5 else (1.0 if g < -0.5 else prev_open)
    else:
        raise KeyError(f"RT-1-X: unknown embodiment {embodiment!r} (widowx, google_robot)")
    return np.concatenate([wv, rot, [grip]]).astype(np.float32), grip


def load_policy(saved_model_dir: str):
    """The released checkpoint as upstream loads it."""
    from tf_agents.policies import py_tf_eager_policy
    return py_tf_eager_policy.SavedModelPyTFEagerPolicy(model_path=str(saved_model_dir),
                                                        load_specs_from_pbtxt=True,
                                                        use_tf_function=True)


class RT1XBackend:
    """A tf_agents RT-1-X policy (``load_policy``) as a policy-server backend. ``embed``:
    ``list[str] -> [N, 512]`` instruction embeddings (USE-large for the released checkpoint,
    required: RT-1-X was trained on them). The embodiment comes per row from the observation field
    ``embodiment`` (default ``default_embodiment``)."""

    def __init__(self, policy, embed, *, name: str = "rt1x", default_embodiment: str = "widowx"):
        if embed is None:
            raise ValueError("RT-1-X needs embed= (USE-large instruction embeddings, 512-d, as it "
                             "was trained on): e.g. a local TF-Hub universal-sentence-encoder-large/5")
        self.policy, self.embed, self.name = policy, embed, name
        self.default_embodiment = default_embodiment
        self.reset(1)

    def metadata(self) -> dict:
        return {"name": self.name, "action_dim": 7, "chunk_length": 1, "greedy": True,
                "image_size": list(IMAGE_HW),
                "upstream": "simpler_env/policies/rt1/rt1_model.py RT1Inference"}

    def reset(self, batch_size: int) -> None:
        self._states = [None] * batch_size
        self._open = np.ones(batch_size, np.float32)

    def _observation(self, image, emb, text):
        import tensorflow as tf
        import tf_agents
        obs = tf_agents.specs.zero_spec_nest(tf_agents.specs.from_spec(
            self.policy.time_step_spec.observation))
        img = tf.image.resize_with_pad(image, target_height=IMAGE_HW[0], target_width=IMAGE_HW[1])
        obs["image"] = tf.cast(img, tf.uint8)
        obs["natural_language_embedding"] = emb
        if "natural_language_instruction" in obs:
            obs["natural_language_instruction"] = tf.constant(text)
        return obs

    def sample_actions(self, observations, instructions, num_samples, rng):
        from tf_agents.trajectories import time_step as ts
        frames = np.asarray(observations["image"])
        b = frames.shape[0]
        if len(self._states) != b:
            self.reset(b)
        emb = np.asarray(self.embed(list(instructions)), np.float32)
        if emb.shape != (b, 512):
            raise ValueError(f"RT-1-X needs 512-d instruction embeddings, got {emb.shape}")
        embodiment = observations.get("embodiment")
        out = np.zeros((b, num_samples, 7), np.float32)
        for i in range(b):
            emb_i = self.default_embodiment if embodiment is None else str(embodiment[i])
            if self._states[i] is None:
                self._states[i] = self.policy.get_initial_state(batch_size=1)
            step = ts.transition(self._observation(frames[i], emb[i], instructions[i]),
                                 reward=np.zeros((), np.float32))
            first = None
            for k in range(num_samples):            # greedy: K identical calls from one state
                ps = self.policy.action(step, self._states[i])
                raw = {key: np.asarray(v) for key, v in ps.action.items()}
                out[i, k], grip = to_bridge(raw, emb_i, float(self._open[i]))
                first = (ps.state, grip) if first is None else first
            self._states[i], self._open[i] = first
        return out
