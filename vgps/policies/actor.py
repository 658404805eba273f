"""The tanh-Gaussian actor of a Cal-QL / IQL training run (IQL's AWR actor, Cal-QL's SAC actor or
its frozen behaviour π) behind the :class:`~vgps.policies.base.Policy` protocol (paper Table 11)."""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np


class ActorPolicy:
    """The tanh-Gaussian actor of a Cal-QL / IQL run as a black-box policy.

    Observations are standardised with the run's state normalizer, actions come out in the
    critic's normalised space (``bound · tanh``) and are mapped back with the run's action
    normalizer (the gripper dimension is not normalised: the env opens it when > 0.5).
    ``deterministic=True`` returns the mode ``bound · tanh(mean)`` for every sample.
    """

    def __init__(self, name: str, cfg, params, normalizer, state_normalizer, encoder,
                 deterministic: bool = True):
        from vgps.nets.policy import TanhGaussianPolicy, mode, sample_and_log_prob
        self.name, self.cfg, self.params = name, cfg, params
        self.normalizer, self.state_normalizer = normalizer, state_normalizer
        self.encoder, self.deterministic = encoder, bool(deterministic)
        self.net = TanhGaussianPolicy(cfg, tuple(cfg.behavior_hidden_dims))
        bound = float(cfg.action_bound)
        net = self.net

        def _sample(params, state, lang, keys, k):
            def row(args):          # one row at a time: bit-identical in any batch (bc.py's doc)
                s, l, key = args
                mean, log_std = net.apply(params, {"state": s[None]}, l[None])
                if self.deterministic:
                    return jnp.repeat(mode(mean, bound), k, axis=0)
                return sample_and_log_prob(key, mean, log_std, k, bound)[0][0]
            return jax.lax.map(row, (state, lang, keys))
        self._sample = jax.jit(_sample, static_argnums=4)
        self._lang: dict[str, np.ndarray] = {}

    def reset(self, batch_size: int) -> None:
        pass

    def sample_actions(self, observations, instructions, num_samples, rng):
        """``[B, K, 7]`` raw actions; ``rng``: one PRNG key per row (row ``i``'s from key ``i``)."""
        from vgps.policies.base import sampling_keys
        keys = sampling_keys(self.name, observations, instructions, num_samples, rng)
        s = np.asarray(observations["state"], np.float32)
        if self.state_normalizer is not None:
            s = np.asarray(self.state_normalizer.normalize(s), np.float32)
        missing = sorted({t for t in instructions if t not in self._lang})
        if missing:
            self._lang.update(zip(missing, np.asarray(self.encoder.encode(missing), np.float32)))
        lang = np.stack([self._lang[t] for t in instructions])
        a = np.asarray(self._sample(self.params, s, lang, keys, int(num_samples)), np.float32)
        return self.normalizer.unnormalize(a) if self.normalizer is not None else a


def load_actor(run_dir, encoder, *, name: str | None = None, deterministic: bool = True) -> ActorPolicy:
    """The actor of the finished training run in ``run_dir`` (its newest full checkpoint):
    IQL's AWR actor, Cal-QL's SAC actor (``calql_policy="sac"``) or its frozen behaviour π."""
    from vgps.agents import checkpoint as ckpt
    from vgps.agents.critic import config_from_dict, example_inputs
    from vgps.agents.train import make_agent
    run_dir = Path(run_dir)
    meta = ckpt.load_meta(run_dir)
    cfg = config_from_dict(meta["config"])
    if cfg.obs_modality != "state":
        raise ValueError(f"{run_dir}: ActorPolicy supports state observations, got {cfg.obs_modality}")
    cks = ckpt.list_checkpoints(run_dir)
    if not cks:
        raise ckpt.CheckpointError(f"{run_dir}: no full checkpoint holding the actor")
    agent = make_agent(cfg)
    obs, lang, act = example_inputs(meta)
    batch = {"observations": obs, "language": lang, "actions": act}
    template = jax.eval_shape(lambda: agent.init(jax.random.PRNGKey(0), batch))
    template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)
    state = ckpt.restore_bytes(cks[-1], template)
    if int(state["step"]) != agent.total_steps:
        raise ckpt.CheckpointError(f"{run_dir}: newest checkpoint is at step {int(state['step'])} "
                                   f"of {agent.total_steps} (unfinished run)")
    params = jax.tree.map(jnp.asarray, state["policy"]["params"])
    return ActorPolicy(name or f"{run_dir.name} actor", cfg, params,
                       ckpt.from_jsonable_normalizer(meta.get("normalizer")),
                       ckpt.from_jsonable_normalizer(meta.get("state_normalizer")), encoder,
                       deterministic=deterministic)
