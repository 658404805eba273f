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
        return {"name": self.name, "action_dim": 7, "chunk_length": 1, "greedy": not self.do_sample,
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


def load(checkpoint, dtype: str = "float32", device: str = "cpu"):
    """``(model, processor)`` of OpenVLA from a local checkpoint directory, as ``deploy.py`` loads
    it (``AutoProcessor`` / ``AutoModelForVision2Seq`` with ``trust_remote_code``), offline
    (``local_files_only``). The directory is a copy of e.g. ``openvla/openvla-7b``: weights,
    ``config.json`` and the model and processor code it ships (``modeling_prismatic.py``,
    ``processing_prismatic.py``), which is not on PyPI. ``dtype``: ``bfloat16`` as deploy.py on a
    GPU; ``float32`` (default) on a CPU."""
    import json
    from pathlib import Path

    import torch
    from transformers import AutoModelForVision2Seq, AutoProcessor
    d = Path(checkpoint)
    if not (d / "config.json").is_file():
        raise FileNotFoundError(f"{d} is not a checkpoint directory (no config.json): pass a local "
                                "copy of an OpenVLA checkpoint, e.g. openvla/openvla-7b")
    auto = json.loads((d / "config.json").read_text()).get("auto_map", {})
    if "AutoModelForVision2Seq" not in auto:
        raise ValueError(f"{d / 'config.json'} maps no AutoModelForVision2Seq class (auto_map "
                         f"{sorted(auto)}): OpenVLA's model code (modeling_prismatic.py) must come "
                         "with the checkpoint")
    processor = AutoProcessor.from_pretrained(d, trust_remote_code=True, local_files_only=True)
    model = AutoModelForVision2Seq.from_pretrained(
        d, torch_dtype=getattr(torch, dtype), low_cpu_mem_usage=True, trust_remote_code=True,
        local_files_only=True).to(device)
    return model.eval(), processor


def tiny_openvla(seed: int = 0, image_size: int = 32, n_bins: int = 16, statistics: dict | None = None):
    """``(model, processor)``: a randomly initialised stand-in with OpenVLA's call surface, for tests
    only (nothing can be downloaded here, and OpenVLA's model code is not on PyPI). NOT OpenVLA: a
    one-layer ``transformers`` ``LlamaForCausalLM`` that also reads the image (mean pixel colour
    projected onto every token embedding), whose last ``n_bins`` token ids are action bins, with a
    ``predict_action(input_ids, unnorm_key, **generate_kwargs)`` that generates seven tokens through
    ``transformers``' own ``generate`` (so ``do_sample`` and ``temperature`` act as on OpenVLA),
    maps them to bin centres in [-1, 1] and un-normalises them with the ``unnorm_key``'s q01/q99
    statistics, masked dimensions (the gripper) left normalised. ``processor(prompt, image)``
    returns a ``BatchFeature`` (``input_ids``, ``attention_mask``, ``pixel_values``) from a real
    ``PreTrainedTokenizerFast`` and ``CLIPImageProcessor``. ``statistics``:
    ``{unnorm_key: {"q01", "q99", "mask"}}`` (default: Bridge-like ±0.05, Fractal-like ±0.5)."""
    import re

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (BatchFeature, CLIPImageProcessor, LlamaConfig, LlamaForCausalLM,
                              PreTrainedTokenizerFast)
    words = sorted(set(re.findall(r"\w+|[^\w\s]", PROMPT.lower() + " put pick move place stack the a "
                                  "on in near to of spoon towel carrot plate block eggplant basket "
                                  "coke can green yellow")))
    vocab = {"[unk]": 0, "[pad]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[unk]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[unk]", pad_token="[pad]",
                                        model_input_names=["input_ids", "attention_mask"])
    vocab_size = len(vocab) + n_bins
    stats = statistics or {
        "bridge_orig": {"q01": [-0.05] * 6 + [0.0], "q99": [0.05] * 6 + [1.0], "mask": [True] * 6 + [False]},
        "fractal20220817_data": {"q01": [-0.5] * 6 + [0.0], "q99": [0.5] * 6 + [1.0], "mask": [True] * 6 + [False]}}
    edges = np.linspace(-1.0, 1.0, n_bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2

    class TinyVLA(LlamaForCausalLM):
        def __init__(self, config):
            super().__init__(config)
            self.vision = torch.nn.Linear(3, config.hidden_size)

        def forward(self, input_ids=None, attention_mask=None, pixel_values=None, inputs_embeds=None,
                    **kwargs):
            if inputs_embeds is None:
                inputs_embeds = self.model.embed_tokens(input_ids)
            if pixel_values is not None:
                img = self.vision(pixel_values.float().mean((2, 3))).to(inputs_embeds.dtype)
                inputs_embeds = inputs_embeds + img[:, None]
            return super().forward(attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs)

        def prepare_inputs_for_generation(self, input_ids, pixel_values=None, **kwargs):
            return {**super().prepare_inputs_for_generation(input_ids, **kwargs), "pixel_values": pixel_values}

        def predict_action(self, input_ids=None, unnorm_key=None, **kwargs):
            ids = self.generate(input_ids, max_new_tokens=7, **kwargs)[0, -7:].cpu().numpy()
            normalised = centres[np.clip(vocab_size - 1 - ids, 0, n_bins - 1)]
            s = stats[unnorm_key]
            lo, hi = np.asarray(s["q01"]), np.asarray(s["q99"])
            return np.where(s["mask"], 0.5 * (normalised + 1) * (hi - lo) + lo, normalised)

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=1, bos_token_id=None, eos_token_id=None)
    model = TinyVLA(cfg).eval()
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 1, None
    images = CLIPImageProcessor(size={"shortest_edge": image_size},
                                crop_size={"height": image_size, "width": image_size})

    def processor(text, image):
        px = images(image, return_tensors="pt")["pixel_values"]
        return BatchFeature(data={**tokenizer(text, return_tensors="pt"), "pixel_values": px})
    return model, processor
