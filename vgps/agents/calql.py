"""Cal-QL (Nakamoto et al. 2023) as used by V-GPS (paper eq. 1, App. B.1), single file.

Critic loss per ensemble head e, averaged over heads and batch::

    td  = (Q_e(s, a) - y)^2,   y = r + γ · mask · max_j min_e' Q̄_e'(s', a'_j),  a'_j ~ π(·|s')
    cql = T · logsumexp_k( [Q_e(s, u_k) - log U,  max(Q_e(s, a^π'_k), G) - log π(a^π'_k|s'),
                            max(Q_e(s, a^π_k), G) - log π(a^π_k|s)] / T )  -  Q_e(s, a)
    loss = td + α · cql

``u_k`` uniform on ``[-b, b]^A`` (density ``U``), ``G`` the Monte-Carlo return-to-go (the Cal-QL
bound; off with ``calql_bound=False``), ``T`` the CQL temperature. As in the released code
(JaxCQL / jaxrl_m) the TD term is a plain mean-squared error, so α=5 weighs against it directly.

π is either a frozen behaviour model of the critic's data (``calql_policy="behavior"``, trained
by BC in a first phase) or a tanh-Gaussian SAC actor with automatic entropy tuning (``"sac"``,
the paper's released code). Which one steers better is measured, not assumed: notebook 05's
protocol chooses between the two on its tuning seeds.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vgps.agents import behavior
from vgps.agents.common import Agent, Phase, adam, polyak
from vgps.nets.critic import CriticNet
from vgps.nets.policy import sample_and_log_prob


# ---------------------------------------------------------------- pure loss pieces (tested)
def max_target_value(q_next):
    """``q_next [E, B, N]`` target-critic values of N next actions -> ``[B]``:
    clipped double Q (min over heads), then max over the sampled actions."""
    return jnp.max(jnp.min(q_next, axis=0), axis=-1)


def cql_regularizer(q_data, q_rand, q_pi, logp_pi, q_next_pi, logp_next_pi, mc_returns, *,
                    action_dim: int, bound: float, temperature: float, importance_sample: bool,
                    calql_bound: bool):
    """Conservative term per head and state.

    ``q_data [E, B]``; ``q_rand, q_pi, q_next_pi [E, B, N]``; ``logp_* [B, N]``; ``mc_returns [B]``.
    Returns ``(diff [E, B], bound_rate)`` where ``bound_rate`` is the fraction of policy-action
    values raised by the Cal-QL bound ``max(Q, G)``.
    """
    lower = mc_returns[None, :, None]
    bound_rate = 0.5 * (jnp.mean(q_pi < lower) + jnp.mean(q_next_pi < lower))
    if calql_bound:
        q_pi = jnp.maximum(q_pi, lower)
        q_next_pi = jnp.maximum(q_next_pi, lower)
    if importance_sample:
        log_u = -action_dim * np.log(2.0 * bound)
        cat = jnp.concatenate([q_rand - log_u, q_next_pi - logp_next_pi[None],
                               q_pi - logp_pi[None]], axis=-1)
    else:
        cat = jnp.concatenate([q_rand, q_data[..., None], q_next_pi, q_pi], axis=-1)
    ood = temperature * jax.nn.logsumexp(cat / temperature, axis=-1)
    return ood - q_data, bound_rate


# ---------------------------------------------------------------- agent
def make(cfg, bc_tx=None) -> Agent:
    """Cal-QL agent for a :class:`vgps.config.CriticConfig`."""
    qnet = CriticNet(cfg)
    pnet = behavior.make_net(cfg)
    n, bound, adim = cfg.cql_n_actions, cfg.action_bound, cfg.action_dim
    critic_tx = adam(cfg.lr, cfg.warmup_steps)
    actor_tx = adam(cfg.actor_lr, cfg.warmup_steps)
    # the released code steps the temperature with its own Adam (3e-4, no warm-up); ours by
    # default shares the actor's settings
    temp_tx = actor_tx if cfg.temperature_lr is None else optax.adam(cfg.temperature_lr)
    bc_tx = bc_tx or optax.adam(cfg.lr)
    target_entropy = -adim if cfg.sac_target_entropy is None else cfg.sac_target_entropy
    sac = cfg.calql_policy == "sac"
    if cfg.calql_policy not in ("behavior", "sac"):
        raise ValueError(f"calql_policy must be 'behavior' or 'sac', got {cfg.calql_policy!r}")

    def init(rng, batch):
        k_q, k_p, rng = jax.random.split(rng, 3)
        obs, lang, act = batch["observations"], batch["language"], batch["actions"]
        qp = qnet.init(k_q, obs, lang, act)
        pp = pnet.init(k_p, obs, lang)
        log_alpha = jnp.asarray(np.log(cfg.sac_init_temperature), jnp.float32)
        return {
            "step": jnp.zeros((), jnp.int32), "rng": rng,
            "critic": {"params": qp, "target_params": jax.tree.map(jnp.copy, qp),
                       "opt": critic_tx.init(qp)},
            "policy": {"params": pp, "opt": (actor_tx if sac else bc_tx).init(pp)},
            "log_alpha": {"params": log_alpha, "opt": temp_tx.init(log_alpha)},
        }

    def enc(params, obs, lang):
        return qnet.apply(params, obs, lang, method=CriticNet.encode)

    def qz(params, z, a):
        return qnet.apply(params, z, a, method=CriticNet.q_from_embedding)

    def update(state, batch):
        rng, k_pi, k_next, k_rand, k_actor = jax.random.split(state["rng"], 5)
        obs, nobs, lang = batch["observations"], batch["next_observations"], batch["language"]
        b = lang.shape[0]
        pp = state["policy"]["params"]
        mean, log_std = pnet.apply(pp, obs, lang)
        nmean, nlog_std = pnet.apply(pp, nobs, lang)
        a_pi, logp_pi = jax.lax.stop_gradient(sample_and_log_prob(k_pi, mean, log_std, n, bound))
        a_nx, logp_nx = jax.lax.stop_gradient(sample_and_log_prob(k_next, nmean, nlog_std, n, bound))
        a_rand = jax.random.uniform(k_rand, (b, n, adim), minval=-bound, maxval=bound)

        tp = state["critic"]["target_params"]
        n_backup = n if cfg.cql_max_target_backup else 1
        q_next = qz(tp, enc(tp, nobs, lang), a_nx[:, :n_backup])
        y = batch["rewards"] + cfg.gamma * batch["masks"] * max_target_value(q_next)
        y = jax.lax.stop_gradient(y)

        def loss_fn(qp):
            z = enc(qp, obs, lang)
            q_data = qz(qp, z, batch["actions"])                                 # [E, B]
            q_all = qz(qp, z, jnp.concatenate([a_rand, a_pi, a_nx], axis=1))    # [E, B, 3N]
            q_rand, q_pi, q_nx = q_all[..., :n], q_all[..., n:2 * n], q_all[..., 2 * n:]
            td = jnp.mean((q_data - y[None]) ** 2)
            diff, bound_rate = cql_regularizer(
                q_data, q_rand, q_pi, logp_pi, q_nx, logp_nx, batch["mc_returns"],
                action_dim=adim, bound=bound, temperature=cfg.cql_temperature,
                importance_sample=cfg.cql_importance_sample, calql_bound=cfg.calql_bound)
            cql = jnp.mean(diff)
            loss = td + cfg.cql_alpha * cql
            m = {"loss": loss, "td_loss": td, "cql_loss": cql, "q_data": jnp.mean(q_data),
                 "q_data_min": jnp.min(q_data), "q_pi": jnp.mean(q_pi), "q_rand": jnp.mean(q_rand),
                 "target": jnp.mean(y), "calql/bound_rate": bound_rate,
                 "logp_pi": jnp.mean(logp_pi)}
            return loss, (m, z)

        (_, (metrics, z)), g = jax.value_and_grad(loss_fn, has_aux=True)(state["critic"]["params"])
        c = state["critic"]
        upd, copt = critic_tx.update(g, c["opt"], c["params"])
        qp_new = optax.apply_updates(c["params"], upd)
        new = dict(state, rng=rng, step=state["step"] + 1)
        new["critic"] = {"params": qp_new, "target_params": polyak(c["target_params"], qp_new, cfg.tau),
                         "opt": copt}

        if sac:
            qp_sg, z_sg = jax.lax.stop_gradient((c["params"], z))
            alpha = jnp.exp(state["log_alpha"]["params"])

            def actor_loss(p):
                mu, ls = pnet.apply(p, obs, lang)
                a, logp = sample_and_log_prob(k_actor, mu, ls, 1, bound)
                q = jnp.min(qz(qp_sg, z_sg, a), axis=0)[:, 0]
                return jnp.mean(alpha * logp[:, 0] - q), logp[:, 0]

            (aloss, logp), ga = jax.value_and_grad(actor_loss, has_aux=True)(pp)
            upd, aopt = actor_tx.update(ga, state["policy"]["opt"], pp)
            new["policy"] = {"params": optax.apply_updates(pp, upd), "opt": aopt}
            ent = -jax.lax.stop_gradient(logp)
            la = state["log_alpha"]
            gt = jax.grad(lambda x: jnp.exp(x) * jnp.mean(ent - target_entropy))(la["params"])
            upd, topt = temp_tx.update(gt, la["opt"], la["params"])
            new["log_alpha"] = {"params": optax.apply_updates(la["params"], upd), "opt": topt}
            metrics.update({"actor_loss": aloss, "alpha": alpha, "entropy": jnp.mean(ent)})
        return new, metrics

    phases = [Phase("critic", cfg.num_steps, update)]
    if not sac and cfg.behavior_steps > 0:
        phases.insert(0, Phase("behavior", cfg.behavior_steps,
                               behavior.make_bc_update(pnet, bc_tx, bound, key="policy")))
    return Agent("calql", cfg, init, tuple(phases), qnet)
