"""OpenVLA behind the policy protocol (in a torch + transformers environment).

Follows ``vla-scripts/deploy.py`` and ``prismatic/extern/hf/modeling_prismatic.py``
(openvla/openvla): the prompt ``"In: What action should the robot take to {instruction}?\\nOut:"``,
``processor(prompt, image)`` moved to the model's device and dtype (deploy.py: ``.to(device,
dtype=torch.bfloat16)``), ``predict_action(**inputs, unnorm_key=..., do_sample=...)``, whose extra
keyword arguments go to ``generate``: ``do_sample=True, temperature=T`` samples, ``do_sample=False``
is upstream's greedy default. The un-normalisation key per embodiment (``bridge_orig`` for the
WidowX, ``fractal20220817_data`` for the Google robot), chosen per row from the observation field
``embodiment``. OpenVLA has no batched sampling: K samples are K forward passes; pass ``k`` of row
``i`` seeds torch from its key (``seed_of``). The gripper comes back in [0, 1], 1 = open
(OpenVLA's Bridge un-normalisation), as our suite expects.
"""
from __future__ import annotations

import numpy as np

PROMPT = "In: What action should the robot take to {}?\nOut:"
UNNORM_KEYS = {"widowx": "bridge_orig", "google_robot": "fractal20220817_data"}


def seed_of(key) -> int:
    """A torch seed from one raw PRNG key ``uint32[2]`` (and a sample index folded in)."""
    k = np.asarray(key, np.uint64).reshape(-1)
    return int((k[0] << np.uint64(32)) | k[1]) % (2**63 - 1)


class OpenVLABackend:
    def __init__(self, model, processor, *, name: str = "openvla", temperature: float = 1.0,
                 do_sample: bool = True, unnorm_keys: dict | None = None, image_size: int = 224,
                 dtype=None):
        self.model, self.processor, self.name = model, processor, name
        self.temperature, self.do_sample = float(temperature), bool(do_sample)
        self.unnorm_keys = dict(UNNORM_KEYS if unnorm_keys is None else unnorm_keys)
        self.image_size = int(image_size)
        self.device = getattr(model, "device", "cpu")
        self.dtype = dtype if dtype is not None else getattr(model, "dtype", None)

    def metadata(self) -> dict:
        return {"name": self.name, "action_dim": 7, "chunk_length": 1,
                "temperature": self.temperature, "do_sample": self.do_sample,
                "unnorm_keys": self.unnorm_keys, "upstream": "openvla vla-scripts/deploy.py"}

    def reset(self, batch_size: int) -> None:
        pass

    def _inputs(self, image, instruction):
        from PIL import Image
        img = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
        img = img.resize((self.image_size, self.image_size))
        inputs = self.processor(PROMPT.format(instruction.lower()), img)
        return inputs.to(self.device, dtype=self.dtype) if self.dtype is not None \
            else inputs.to(self.device)

    def sample_actions(self, observations, instructions, num_samples, rng):
        import torch
        frames = np.asarray(observations["image"])
        embodiment = observations.get("embodiment")
        b = frames.shape[0]
        out = np.zeros((b, num_samples, 7), np.float32)
        gen = {"do_sample": self.do_sample}
        if self.do_sample:
            gen["temperature"] = self.temperature
        for i in range(b):
            emb = "widowx" if embodiment is None else str(embodiment[i])
            if emb not in self.unnorm_keys:
                raise KeyError(f"no un-normalisation key for embodiment {emb!r}; have "
                               f"{sorted(self.unnorm_keys)}")
            inputs = self._inputs(frames[i], instructions[i])
            base = seed_of(rng[i])
            for k in range(num_samples):
                torch.manual_seed((base + k) % (2**63 - 1))
                out[i, k] = np.asarray(self.model.predict_action(
                    **inputs, unnorm_key=self.unnorm_keys[emb], **gen), np.float32)
        return out
