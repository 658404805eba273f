"""IQL (Kostrikov et al. 2022) as in V-GPS App. A (eqs. 3-4), single file.

    L_V = E[ |τ - 1(u < 0)| u² ],  u = min_e Q̄_e(s, a) - V(s)            (expectile τ = 0.7)
    L_Q = E_e[ (r + γ · mask · V(s') - Q_e(s, a))² ]
    L_π = -E[ min(exp(β · (min_e Q̄_e(s, a) - V(s))), w_max) · log π(a|s) ]   (AWR)

β is ``awr_temperature`` used as an inverse temperature, as in the released code. Optionally a
fraction of each batch gets a mismatched instruction and a failure reward (released-code option).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from vgps.agents.common import Agent, Phase, adam, polyak, relabel_negatives
from vgps.nets.critic import CriticNet, ValueNet
from vgps.nets.policy import TanhGaussianPolicy, log_prob


def expectile_loss(diff, expectile: float):
    """``mean(|τ - 1(diff < 0)| · diff²)`` for ``diff = target - prediction``."""
    w = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return jnp.mean(w * diff ** 2)


def awr_weights(adv, beta: float, max_weight: float):
    """``min(exp(β · adv), max_weight)``."""
    return jnp.minimum(jnp.exp(adv * beta), max_weight)


def make(cfg, failure_reward: float = -1.0) -> Agent:
    """IQL agent for a :class:`vgps.config.CriticConfig` (``failure_reward`` for relabelling)."""
    qnet, vnet = CriticNet(cfg), ValueNet(cfg)
    pnet = TanhGaussianPolicy(cfg, tuple(cfg.behavior_hidden_dims))
    tx = adam(cfg.lr, cfg.warmup_steps, cfg.grad_clip)
    atx = adam(cfg.actor_lr, cfg.warmup_steps, cfg.grad_clip)
    bound = cfg.action_bound

    def init(rng, batch):
        kq, kv, kp, rng = jax.random.split(rng, 4)
        obs, lang = batch["observations"], batch["language"]
        qp = qnet.init(kq, obs, lang, batch["actions"])
        vp = vnet.init(kv, obs, lang)
        pp = pnet.init(kp, obs, lang)
        return {"step": jnp.zeros((), jnp.int32), "rng": rng,
                "critic": {"params": qp, "target_params": jax.tree.map(jnp.copy, qp),
                           "opt": tx.init(qp)},
                "value": {"params": vp, "opt": tx.init(vp)},
                "policy": {"params": pp, "opt": atx.init(pp)}}

    def update(state, batch):
        rng, k_rel = jax.random.split(state["rng"])
        if cfg.negative_relabel_fraction > 0:
            batch = relabel_negatives(k_rel, batch, cfg.negative_relabel_fraction,
                                      failure_reward, cfg.gamma)
        obs, nobs, lang, act = (batch["observations"], batch["next_observations"],
                                batch["language"], batch["actions"])
        c, v, p = state["critic"], state["value"], state["policy"]
        q_t = jnp.min(qnet.apply(c["target_params"], obs, lang, act), axis=0)      # [B]
        next_v = vnet.apply(v["params"], nobs, lang)
        y = jax.lax.stop_gradient(batch["rewards"] + cfg.gamma * batch["masks"] * next_v)

        def v_loss(vp):
            val = vnet.apply(vp, obs, lang)
            return expectile_loss(q_t - val, cfg.expectile), val

        (lv, val), gv = jax.value_and_grad(v_loss, has_aux=True)(v["params"])

        def q_loss(qp):
            q = qnet.apply(qp, obs, lang, act)
            return jnp.mean((q - y[None]) ** 2), q

        (lq, q), gq = jax.value_and_grad(q_loss, has_aux=True)(c["params"])
        adv = jax.lax.stop_gradient(q_t - val)
        w = awr_weights(adv, cfg.awr_temperature, cfg.awr_max_weight)

        def pi_loss(pp):
            mean, log_std = pnet.apply(pp, obs, lang)
            return -jnp.mean(w * log_prob(act, mean, log_std, bound))

        lp, gp = jax.value_and_grad(pi_loss)(p["params"])

        u, copt = tx.update(gq, c["opt"], c["params"])
        qp = optax.apply_updates(c["params"], u)
        u, vopt = tx.update(gv, v["opt"], v["params"])
        u2, popt = atx.update(gp, p["opt"], p["params"])
        new = {"step": state["step"] + 1, "rng": rng,
               "critic": {"params": qp, "target_params": polyak(c["target_params"], qp, cfg.tau),
                          "opt": copt},
               "value": {"params": optax.apply_updates(v["params"], u), "opt": vopt},
               "policy": {"params": optax.apply_updates(p["params"], u2), "opt": popt}}
        metrics = {"loss": lq + lv, "q_loss": lq, "value_loss": lv, "actor_loss": lp,
                   "q_data": jnp.mean(q), "q_data_min": jnp.min(q), "v": jnp.mean(val),
                   "adv": jnp.mean(adv), "awr_weight": jnp.mean(w), "target": jnp.mean(y)}
        return new, metrics

    return Agent("iql", cfg, init, (Phase("critic", cfg.num_steps, update),), qnet)
