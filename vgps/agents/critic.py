"""The trained value function as steering sees it: :class:`Critic` and :func:`load_critic`."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vgps.agents import checkpoint as ckpt
from vgps.config import CriticConfig
from vgps.nets.critic import CriticNet


class Critic:
    """Q(s, a, l) with its action normalizer.

    ``encode(obs, lang [B, D]) -> [B, Z]``; ``q_from_embedding(z, actions_norm [B, K, A]) -> [E, B, K]``;
    ``score(obs, lang, raw_actions [B, K, A]) -> [B, K]`` (normalise, min over heads).
    Observations are raw env observations (``{"state": [B, S]}`` or ``{"image": uint8[B, H, W, 3]}``);
    the state normalizer, if the checkpoint has one, is applied inside ``encode``.
    """

    def __init__(self, cfg: CriticConfig, params, normalizer, state_normalizer=None):
        self.cfg, self.params = cfg, params
        self.normalizer, self.state_normalizer = normalizer, state_normalizer
        self.obs_modality, self.num_qs = cfg.obs_modality, cfg.num_qs
        self.language_dim, self.action_dim = cfg.language_dim, cfg.action_dim
        self.net = CriticNet(cfg)
        self._encode = jax.jit(lambda p, o, l: self.net.apply(p, o, l, method=CriticNet.encode))
        self._qz = jax.jit(lambda p, z, a: self.net.apply(p, z, a, method=CriticNet.q_from_embedding))

    def _obs(self, observations):
        key = "state" if self.obs_modality == "state" else "image"
        if key not in observations:
            raise KeyError(f"{self.obs_modality} critic needs observations[{key!r}]")
        x = np.asarray(observations[key])
        if key == "state":
            x = x.astype(np.float32)
            if self.state_normalizer is not None:
                x = np.asarray(self.state_normalizer.normalize(x), np.float32)
        return {key: x}

    def _check_lang(self, language):
        language = np.asarray(language, np.float32)
        if language.ndim != 2 or language.shape[-1] != self.language_dim:
            raise ValueError(f"language embedding must be [B, {self.language_dim}] for this critic, "
                             f"got shape {language.shape}")
        return language

    def _check_actions(self, actions):
        actions = np.asarray(actions, np.float32)
        if actions.shape[-1] != self.action_dim:
            raise ValueError(f"actions have dimension {actions.shape[-1]}, the critic checkpoint "
                             f"expects {self.action_dim}")
        return actions

    def encode(self, observations, language):
        """``-> [B, Z]``; the encoder runs once per state."""
        return self._encode(self.params, self._obs(observations), self._check_lang(language))

    def q_from_embedding(self, z, actions_norm):
        """``z [B, Z]``, normalised actions ``[B, K, A]`` -> ``[E, B, K]``."""
        a = self._check_actions(actions_norm)
        if a.ndim == 2:
            a = a[:, None]
        return self._qz(self.params, z, a)

    def score(self, observations, language, raw_actions):
        """Raw env-scale actions ``[B, K, A]`` -> ``min_e Q_e [B, K]`` (numpy)."""
        a = self._check_actions(raw_actions)
        a_norm = np.asarray(self.normalizer.normalize(a) if self.normalizer is not None else a,
                            np.float32)
        z = self.encode(observations, language)
        return np.asarray(jnp.min(self.q_from_embedding(z, a_norm), axis=0))


def config_from_dict(d: dict) -> CriticConfig:
    names = {f.name for f in dataclasses.fields(CriticConfig)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
    return CriticConfig(**kw)


def example_inputs(meta: dict, batch: int = 1):
    """Zero observations / language / actions with the shapes recorded in ``meta``."""
    obs = {k: np.zeros((batch, *v["shape"]), v["dtype"]) for k, v in meta["obs_spec"].items()}
    return obs, np.zeros((batch, meta["language_dim"]), np.float32), \
        np.zeros((batch, meta["action_dim"]), np.float32)


def load_critic(path) -> Critic:
    """Load ``critic.msgpack`` (or the newest full checkpoint) from a run directory: the
    parameters ``CriticConfig.steer_params`` names (online, or the target copy)."""
    path = Path(path)
    meta = ckpt.load_meta(path)
    cfg = config_from_dict(meta["config"])
    obs, lang, act = example_inputs(meta)
    template = jax.eval_shape(lambda: CriticNet(cfg).init(jax.random.PRNGKey(0), obs, lang, act))
    template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)
    if (path / "critic.msgpack").exists():
        params = ckpt.restore_bytes(path / "critic.msgpack", template)
    else:
        cks = ckpt.list_checkpoints(path)
        if not cks:
            raise ckpt.CheckpointError(f"no critic.msgpack or checkpoints in {path}")
        from flax import serialization
        try:
            raw = serialization.msgpack_restore(cks[-1].read_bytes())["critic"][
                ckpt.steer_params_key(cfg)]
        except Exception as e:
            raise ckpt.CheckpointError(f"corrupt checkpoint {cks[-1]}: {e}") from e
        ckpt.check_shapes(template, raw, f"{cks[-1]} (critic params)")
        params = serialization.from_state_dict(template, raw)
    params = jax.tree.map(jnp.asarray, params)
    where = path / "meta.json"
    norm = ckpt.from_jsonable_normalizer(meta.get("normalizer"), f"{where}: normalizer")
    snorm = ckpt.from_jsonable_normalizer(meta.get("state_normalizer"),
                                          f"{where}: state_normalizer")
    _check_dim(norm, cfg.action_dim, f"{where}: normalizer", "action_dim")
    if "state" in meta["obs_spec"]:
        _check_dim(snorm, meta["obs_spec"]["state"]["shape"][-1], f"{where}: state_normalizer",
                   "obs_spec state size")
    return Critic(cfg, params, norm, snorm)


def _check_dim(normalizer, dim: int, where: str, what: str) -> None:
    got = getattr(normalizer, "dim", None)
    if got is not None and got != dim:
        raise ckpt.CheckpointError(f"{where} has dimension {got} but the critic's {what} is {dim}")
