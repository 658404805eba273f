"""Octo behind the policy protocol, run the way SimplerEnv runs it (in Octo's own environment).

Follows ``simpler_env/policies/octo/octo_model.py`` (SimplerEnv, ``OctoInference``) and
``octo/model/octo_model.py`` (octo-models/octo; ``sample_actions``, ``create_tasks``):

- a history of ``window`` frames per row (SimplerEnv: 2), padded at the start of an episode with
  the first frame under a zero pad mask (octo's ``HistoryWrapper`` convention, so every call has
  the same shape); the mask is sent under both names Octo has used, ``timestep_pad_mask`` (HEAD)
  and ``pad_mask`` (octo 1.0, which SimplerEnv pins);
- frames resized to the model's size with lanczos3 + antialias and rounded to uint8, as
  SimplerEnv's ``_resize_image`` does (skipped when the size already matches);
- ``sample_actions(..., unnormalization_statistics=dataset_statistics[key]["action"])``: Octo's own
  un-normalisation (mean/std under the mask); ``key`` per embodiment (``unnorm_keys``:
  ``bridge_dataset`` for the WidowX, ``fractal20220817_data`` for the Google robot), chosen per
  request from the observation field ``embodiment`` (``"widowx"`` when absent);
- temporal ensembling over the action horizon (SimplerEnv's ``ActionEnsembler``, temperature 0:
  the mean of the predictions made for this step); with ``K`` samples per row, sample ``k`` is
  ensembled with the chunks sample ``k`` predicted at earlier steps (K chains side by side), our
  choice where SimplerEnv has one chain; the gripper is binarised at 0.5 after ensembling
  (1 = open, 0 = closed; SimplerEnv maps the same threshold to ±1 for the WidowX).

``scoring="raw_first"`` is the released V-GPS code's way (its SimplerEnv fork, ``get_vgps_action``):
the K candidates are the raw first actions of the K chunks, and only the chunk the steering layer
chose (``select(index)``, the protocol's feedback call) enters one temporal ensemble per row,
whose output is the action executed. The default ``"ensembled"`` scores K ensembled chains.

Each row is sampled with its own key (one call of batch 1 per row: Octo draws a whole batch's
noise from one key), so a row's actions depend on its own key and history only. The history and
the ensemble advance once per request: send one request per control step. Requires the ``octo``
package and its pins (envs/octo.txt); nothing here is imported by :mod:`vgps`.
"""
from __future__ import annotations

import hashlib

import numpy as np

UNNORM_KEYS = {"widowx": "bridge_dataset", "google_robot": "fractal20220817_data"}
SCORING = ("ensembled", "raw_first")


def hash_embedding(texts, dim: int = 512) -> np.ndarray:
    """A deterministic stand-in instruction embedding (sha256 of the text seeds a normal vector):
    for the randomly initialised test model only, which has no text encoder to download."""
    out = []
    for t in texts:
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
        out.append(np.random.default_rng(seed).standard_normal(dim).astype(np.float32))
    return np.stack(out)


def tiny_octo(seed: int = 0, image_size: int = 64, window: int = 2, action_horizon: int = 4,
              language_dim: int = 512, statistics: dict | None = None):
    """A randomly initialised ~60k-parameter OctoModel built from Octo's own config classes
    (SmallStem16 with FiLM, one transformer layer, a diffusion head with ``action_horizon``):
    the real ``OctoModel.sample_actions`` code path with nothing downloaded. ``statistics``:
    ``{key: {"action": {"mean", "std", "mask"}}}`` (default: Bridge-like mean 0, std 0.01)."""
    import jax
    from octo.model.components.action_heads import DiffusionActionHead
    from octo.model.components.tokenizers import ImageTokenizer, LanguageTokenizer
    from octo.model.components.vit_encoders import SmallStem16
    from octo.model.octo_model import OctoModel
    from octo.utils.spec import ModuleSpec

    model_cfg = dict(
        observation_tokenizers=dict(primary=ModuleSpec.create(
            ImageTokenizer, obs_stack_keys=["image_primary"], task_stack_keys=[],
            task_film_keys=["language_instruction"],
            encoder=ModuleSpec.create(SmallStem16, use_film=True, features=(32, 32, 32, 32),
                                      num_features=32))),
        task_tokenizers=dict(language=ModuleSpec.create(LanguageTokenizer, encoder=None)),
        heads=dict(action=ModuleSpec.create(DiffusionActionHead, readout_key="readout_action",
                                            action_horizon=action_horizon, action_dim=7,
                                            hidden_dim=32, num_blocks=1, diffusion_steps=5)),
        readouts=dict(action=1),
        token_embedding_size=32,
        transformer_kwargs=dict(num_layers=1, mlp_dim=64, num_attention_heads=2,
                                dropout_rate=0.0, attention_dropout_rate=0.0,
                                add_position_embedding=False),
        max_horizon=window, use_correct_attention=True)
    example = {
        "observation": {"image_primary": np.zeros((1, window, image_size, image_size, 3), np.uint8),
                        "timestep_pad_mask": np.ones((1, window), bool)},
        "task": {"language_instruction": np.zeros((1, language_dim), np.float32),
                 "pad_mask_dict": {"language_instruction": np.ones((1,), bool)}},
        "action": np.zeros((1, window, action_horizon, 7), np.float32),
    }
    if statistics is None:
        act = {"mean": np.zeros(7, np.float32), "std": np.full(7, 0.01, np.float32),
               "mask": np.asarray([True] * 6 + [False])}
        statistics = {k: {"action": act} for k in UNNORM_KEYS.values()}
    return OctoModel.from_config({"model": model_cfg, "text_processor": None}, example, text_processor=None,
                                 rng=jax.random.PRNGKey(seed), dataset_statistics=statistics)


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[-3:-1] == (size, size):
        return frames
    import tensorflow as tf
    out = tf.image.resize(frames, size=(size, size), method="lanczos3", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8).numpy()


class OctoBackend:
    """An ``OctoModel`` as a policy-server backend (module docstring). ``embed``: ``list[str] ->
    [B, D]`` instruction embeddings for models built without a text processor (the test model);
    default ``model.create_tasks(texts=...)``, the released checkpoints' own tokenizer."""

    def __init__(self, model, *, name: str = "octo", unnorm_keys: dict | None = None,
                 ensemble: bool = True, ensemble_temp: float = 0.0, embed=None,
                 image_key: str = "image_primary", scoring: str = "ensembled"):
        if scoring not in SCORING:
            raise ValueError(f"scoring must be one of {SCORING}, got {scoring!r}")
        self.scoring = scoring
        ex = model.example_batch["observation"]
        self.model, self.name, self.image_key, self.embed = model, name, image_key, embed
        self.window = int(ex["timestep_pad_mask"].shape[1])
        self.image_size = int(ex[image_key].shape[-2])
        self.unnorm_keys = dict(UNNORM_KEYS if unnorm_keys is None else unnorm_keys)
        missing = [k for k in self.unnorm_keys.values() if k not in model.dataset_statistics]
        if missing:
            raise KeyError(f"dataset_statistics of this checkpoint lack {missing}; it has "
                           f"{sorted(model.dataset_statistics)}")
        self.ensemble, self.ensemble_temp = bool(ensemble), float(ensemble_temp)
        self.horizon = None
        self.reset(1)

    def metadata(self) -> dict:
        return {"name": self.name, "action_dim": 7, "chunk_length": 1, "window": self.window,
                "image_size": self.image_size, "unnorm_keys": self.unnorm_keys,
                "temporal_ensembling": self.ensemble, "ensemble_temp": self.ensemble_temp,
                "scoring": self.scoring,
                "upstream": "octo-models/octo OctoModel.sample_actions"}

    def reset(self, batch_size: int) -> None:
        self._frames = None                       # [B, W, S, S, 3]
        self._filled = np.zeros(batch_size, np.int64)
        self._chunks: list[list[np.ndarray]] = [[] for _ in range(batch_size)]   # [K, H, 7] per step
        self._pending: list[np.ndarray | None] = [None] * batch_size   # raw_first: this step's chunks

    def _tasks(self, instructions):
        if self.embed is None:
            return self.model.create_tasks(texts=list(instructions))
        emb = np.asarray(self.embed(list(instructions)), np.float32)
        return {"language_instruction": emb,
                "pad_mask_dict": {"language_instruction": np.ones(len(instructions), bool)}}

    def _push(self, frames: np.ndarray) -> np.ndarray:
        b = frames.shape[0]
        if self._frames is None or self._frames.shape[0] != b:
            self.reset(b)
            self._frames = np.repeat(frames[:, None], self.window, axis=1)
        else:
            new = self._filled == 0                         # rows that start an episode now
            self._frames[new] = frames[new, None]
            self._frames = np.concatenate([self._frames[:, 1:], frames[:, None]], axis=1)
        self._filled = np.minimum(self._filled + 1, self.window)
        return (np.arange(self.window)[None] >= self.window - self._filled[:, None])

    def _ensemble(self, row: int, chunks: np.ndarray) -> np.ndarray:
        """``chunks [K, H, 7]`` of this step → ensembled first actions ``[K, 7]``."""
        hist = self._chunks[row]
        if hist and hist[-1].shape != chunks.shape:        # K changed: a new chain
            hist.clear()
        hist.append(chunks)
        del hist[:-chunks.shape[1]]
        preds = np.stack([c[:, i] for i, c in zip(range(len(hist) - 1, -1, -1), hist)])  # [n, K, 7]
        w = np.exp(-self.ensemble_temp * np.arange(len(hist)))
        return np.tensordot(w / w.sum(), preds, axes=1)

    def sample_actions(self, observations, instructions, num_samples, rng):
        import jax
        if "image" not in observations:
            raise KeyError(f"Octo needs observations['image'] (uint8 [B, H, W, 3]); got "
                           f"{sorted(observations)}")
        frames = np.asarray(observations["image"])
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"observations['image'] must be uint8 [B, H, W, 3], got "
                             f"{frames.dtype} {frames.shape}")
        embodiment = observations.get("embodiment")
        b = frames.shape[0]
        mask = self._push(_resize(frames, self.image_size))
        tasks = self._tasks(instructions)
        out = []
        for i in range(b):
            emb = "widowx" if embodiment is None else str(embodiment[i])
            if emb not in self.unnorm_keys:
                raise KeyError(f"no un-normalisation key for embodiment {emb!r}; have "
                               f"{sorted(self.unnorm_keys)}")
            stats = self.model.dataset_statistics[self.unnorm_keys[emb]]["action"]
            obs = {self.image_key: self._frames[i:i + 1], "timestep_pad_mask": mask[i:i + 1],
                   "pad_mask": mask[i:i + 1]}
            task = jax.tree_util.tree_map(lambda x: x[i:i + 1], tasks)
            a = self.model.sample_actions(obs, task, unnormalization_statistics=stats,
                                          rng=jax.numpy.asarray(rng[i]),
                                          sample_shape=(int(num_samples),))
            chunks = np.asarray(a, np.float32)[:, 0]            # [K, H, 7]
            if self.horizon is None:
                self.horizon = chunks.shape[1]
            if self.scoring == "raw_first":
                self._pending[i] = chunks
                first = chunks[:, 0].copy()
            else:
                first = self._ensemble(i, chunks) if self.ensemble else chunks[:, 0].copy()
            first[:, -1] = (first[:, -1] > 0.5).astype(np.float32)
            out.append(first)
        return np.stack(out).astype(np.float32)                   # [B, K, 7]

    def select(self, index) -> np.ndarray | None:
        """The steering layer's choice ``index [B]`` of this step's candidates. Under
        ``scoring="raw_first"`` the chosen chunk of each row enters that row's temporal ensemble
        and the ensembled, gripper-binarised action ``[B, 7]`` is returned (the action to execute);
        otherwise None (execute the candidate as sampled)."""
        if self.scoring != "raw_first":
            return None
        index = np.asarray(index)
        if index.shape != (len(self._pending),) or index.dtype.kind not in "iu":
            raise ValueError(f"select: index must be {len(self._pending)} integers (one per row), "
                             f"got dtype {index.dtype} shape {index.shape}")
        out = []
        for i, j in enumerate(index):
            chunks = self._pending[i]
            if chunks is None:
                raise RuntimeError(f"select: row {i} has no sampled chunks this step (sample first)")
            if not 0 <= int(j) < chunks.shape[0]:
                raise ValueError(f"select: index {int(j)} of row {i} outside 0..{chunks.shape[0] - 1}")
            chosen = chunks[int(j)][None]                                    # [1, H, 7]
            a = (self._ensemble(i, chosen) if self.ensemble else chosen[:, 0].copy())[0]
            a[-1] = float(a[-1] > 0.5)
            out.append(a)
            self._pending[i] = None
        return np.stack(out).astype(np.float32)
