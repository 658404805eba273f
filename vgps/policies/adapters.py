"""Adapters giving the real generalists the black-box :class:`~vgps.policies.base.Policy` interface.

Each imports its framework lazily; with the package or the local checkpoint missing, it raises
:class:`MissingDependencyError` saying what to install and where the weights go. Every adapter
also accepts an already-built model object (``model=``), which is how the tests check the array
plumbing with stand-ins that have the same call signatures.

Output everywhere: float32 ``[B, K, 7]`` raw actions in the Bridge convention
``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` with gripper 1 = open, 0 = closed. ``rng`` is one
PRNG key per row (:func:`~vgps.policies.base.row_keys`), and each row's samples are drawn from its
own key, so a robot's actions do not depend on the other rows of the batch.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import jax
import numpy as np

from vgps.policies.base import (batch_size_of, check_sampling_args, row_keys, split_rows,
                                validate_actions)


class MissingDependencyError(ImportError):
    """A real-policy package or checkpoint is not available on this machine."""


def _require(module: str, install: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(f"the {module!r} package is not installed ({e}); install it "
                                     f"with: {install}") from e


def _require_dir(path, what: str, where: str) -> Path:
    p = Path(path) if path is not None else None
    if p is None or not p.exists():
        raise MissingDependencyError(f"{what} checkpoint not found at {path!r}: download it and "
                                     f"pass its local directory ({where})")
    return p


def _seed_from(rng: jax.Array) -> int:
    return int(jax.random.randint(rng, (), 0, 2**31 - 1))


# ------------------------------------------------------------------------------------------ Octo
class OctoAdapter:
    """Octo (``octo`` package): ``OctoModel.load_pretrained(local_dir)``; K samples in one call via
    ``sample_actions(obs, task, sample_shape=(K,), rng=rng)`` → ``[K, B, H, 7]`` normalized;
    un-normalized here with ``model.dataset_statistics[unnorm_key]["action"]`` (mean/std under its
    mask), the first action of each chunk kept, and the gripper binarized at 0.5 as Octo's own
    SIMPLER/WidowX deployment does. Octo draws the noise of a whole batch from one key, so each
    row is one call with its own key (B calls of batch 1 per step): row ``i``'s samples then
    depend on key ``i`` alone."""

    def __init__(self, checkpoint_dir=None, unnorm_key: str = "bridge_dataset", model=None,
                 image_key: str = "image_primary", image_size: int = 256, name: str = "octo"):
        if model is None:
            octo_model = _require("octo.model.octo_model",
                                  "pip install git+https://github.com/octo-models/octo.git")
            d = _require_dir(checkpoint_dir, "Octo", "e.g. a snapshot of hf://rail-berkeley/octo-small-1.5")
            model = octo_model.OctoModel.load_pretrained(str(d))
        self.model, self.name = model, name
        self.image_key, self.image_size = image_key, image_size
        stats = model.dataset_statistics
        if unnorm_key not in stats:
            raise KeyError(f"unnorm_key {unnorm_key!r} not in the checkpoint's dataset statistics "
                           f"({sorted(stats)})")
        st = stats[unnorm_key]["action"]
        self.mean, self.std = np.asarray(st["mean"], np.float32), np.asarray(st["std"], np.float32)
        self.mask = np.asarray(st.get("mask", [True] * 6 + [False]), bool)

    def reset(self, batch_size: int) -> None:
        pass

    def unnormalize(self, a: np.ndarray) -> np.ndarray:
        return np.where(self.mask, a * self.std + self.mean, a).astype(np.float32)

    def sample_actions(self, observations, instructions, num_samples, rng):
        check_sampling_args(num_samples)
        b = batch_size_of(observations)
        keys = row_keys(rng, b, self.name)
        img = np.asarray(observations["image"], np.uint8)                  # [B, H, W, 3]
        if img.shape[1] != self.image_size:
            import tensorflow as tf
            img = tf.image.resize(img, (self.image_size, self.image_size), method="lanczos3",
                                  antialias=True).numpy().clip(0, 255).astype(np.uint8)
        rows = []
        for i in range(b):                                       # one call (and key) per row
            obs = {self.image_key: img[i:i + 1, None], "timestep_pad_mask": np.ones((1, 1), bool)}
            task = self.model.create_tasks(texts=[instructions[i]])
            out = np.asarray(self.model.sample_actions(obs, task, sample_shape=(num_samples,),
                                                       rng=keys[i]))
            if out.ndim != 4 or out.shape[:2] != (num_samples, 1):
                raise ValueError(f"Octo returned {out.shape}; expected [K={num_samples}, B=1, H, 7]")
            rows.append(out[:, 0, 0])                                     # first of chunk → [K, 7]
        a = self.unnormalize(np.stack(rows))                              # [B, K, 7]
        a[..., -1] = (a[..., -1] > 0.5).astype(np.float32)
        return validate_actions(a, b, num_samples, self.name)


# --------------------------------------------------------------------------------------- OpenVLA
class OpenVLAAdapter:
    """OpenVLA (``transformers``, local checkpoint such as ``openvla/openvla-7b``): no batched
    sampling, so K samples are K forward passes per observation of
    ``predict_action(**inputs, unnorm_key=..., do_sample=True)`` (as the paper had to loop it);
    pass ``k`` of row ``i`` seeds torch from the ``k``-th split of key ``i``."""

    PROMPT = "In: What action should the robot take to {}?\nOut:"

    def __init__(self, checkpoint_dir=None, unnorm_key: str = "bridge_orig", model=None,
                 processor=None, image_size: int = 224, name: str = "openvla"):
        if model is None or processor is None:
            tr = _require("transformers", "pip install transformers timm tokenizers torch")
            d = _require_dir(checkpoint_dir, "OpenVLA", "e.g. a snapshot of hf://openvla/openvla-7b")
            processor = tr.AutoProcessor.from_pretrained(str(d), trust_remote_code=True)
            model = tr.AutoModelForVision2Seq.from_pretrained(str(d), trust_remote_code=True)
        self.model, self.processor, self.unnorm_key = model, processor, unnorm_key
        self.image_size, self.name = image_size, name

    def reset(self, batch_size: int) -> None:
        pass

    def _seed(self, seed: int) -> None:
        try:
            import torch
            torch.manual_seed(seed)
        except ImportError:
            pass

    def sample_actions(self, observations, instructions, num_samples, rng):
        check_sampling_args(num_samples)
        from PIL import Image
        b = batch_size_of(observations)
        imgs = np.asarray(observations["image"], np.uint8)
        out = np.zeros((b, num_samples, 7), np.float32)
        keys = split_rows(row_keys(rng, b, self.name), num_samples)            # [B, K]
        for i in range(b):
            image = Image.fromarray(imgs[i]).resize((self.image_size, self.image_size))
            inputs = self.processor(self.PROMPT.format(instructions[i].lower()), image)
            for k in range(num_samples):                                    # one action per pass
                self._seed(_seed_from(keys[i, k]))
                out[i, k] = np.asarray(self.model.predict_action(**inputs, unnorm_key=self.unnorm_key,
                                                                 do_sample=True), np.float32)
        return validate_actions(out, b, num_samples, self.name)


# ----------------------------------------------------------------------------------------- RT-1-X
class RT1XAdapter:
    """RT-1-X (TF SavedModel from open_x_embodiment, tf_agents policy): ``action(time_step,
    policy_state)`` → ``{"world_vector", "rotation_delta", "gripper_closedness_action"}``; the
    Fractal gripper (+1 close, −1 open) is mapped to Bridge's (1 open, 0 closed). Its head
    decodes tokens greedily, so the K proposals come from K passes that share the pre-step state
    (identical unless the checkpoint samples); the state is advanced with the first sample. The
    keys (one per row) are checked but unused: a tf_agents policy takes no seed."""

    def __init__(self, saved_model_dir=None, language_encoder=None, policy=None, image_size: int = 300,
                 name: str = "rt1x"):
        if policy is None:
            tf = _require("tensorflow", "pip install tensorflow tf-agents")
            _require("tf_agents", "pip install tf-agents")
            d = _require_dir(saved_model_dir, "RT-1-X", "the rt_1_x_tf_trained_for_002272480_step "
                             "SavedModel from the open_x_embodiment release")
            policy = tf.saved_model.load(str(d))
        self.policy, self.language_encoder = policy, language_encoder
        self.image_size, self.name = image_size, name
        self._state = None

    def reset(self, batch_size: int) -> None:
        self._state = self.policy.get_initial_state(batch_size=batch_size)

    def sample_actions(self, observations, instructions, num_samples, rng):
        check_sampling_args(num_samples)
        b = batch_size_of(observations)
        row_keys(rng, b, self.name)
        if self._state is None:
            self.reset(b)
        emb = np.asarray(self.language_encoder.encode(list(instructions)), np.float32)
        obs = {"image": np.asarray(observations["image"], np.uint8), "natural_language_embedding": emb}
        out, first_state = [], None
        for _ in range(num_samples):
            step = self.policy.action(_TimeStep(obs, b), self._state)
            first_state = step.state if first_state is None else first_state
            act = {k: np.asarray(v, np.float32) for k, v in step.action.items()}
            grip = (1.0 - act["gripper_closedness_action"].reshape(b, 1)) / 2.0
            out.append(np.concatenate([act["world_vector"], act["rotation_delta"], grip], -1))
        self._state = first_state
        return validate_actions(np.stack(out, 1), b, num_samples, self.name)


class _TimeStep:
    """Minimal tf_agents-style TimeStep (step_type MID, reward 0, discount 1)."""

    def __init__(self, observation, batch_size):
        self.observation = observation
        self.step_type = np.ones(batch_size, np.int32)
        self.reward = np.zeros(batch_size, np.float32)
        self.discount = np.ones(batch_size, np.float32)
