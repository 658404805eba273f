"""Behaviour-cloned generalist stand-ins: diffusion (Octo-like), 256-bin tokens (RT-1-X-like) and
autoregressive tokens sampled one action per forward pass (OpenVLA-like).

Each policy owns its action statistics (like Octo's ``dataset_statistics``) and language encoder;
to steering it is a black box with ``sample_actions(obs, instructions, K, rng) -> [B, K, 7]``,
``rng`` one PRNG key per row. Each row is sampled in a fixed-shape body (``jax.lax.map`` over the
rows: its observation, instruction and key), because XLA rounds a row's matmuls and elementwise
loops differently at different batch sizes; the networks have no batch statistics (LayerNorm).
So row ``i``'s samples are bit for bit the same whatever the other rows of the batch are.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vgps.policies import nets
from vgps.policies.base import (ACTION_DIM, batch_size_of, check_sampling_args, row_keys,
                                sampling_keys, split_rows)

KINDS = ("diffusion", "tokens", "ar_tokens")


@dataclass(frozen=True)
class PolicySpec:
    """Architecture and data recipe of one stand-in (hashed into the zoo's cache key)."""
    name: str
    kind: str                                   # one of KINDS
    trunk_dims: tuple[int, ...] = (256, 256)
    head_dims: tuple[int, ...] = (256, 256, 256)
    chunk: int = 1                              # action chunk length H (diffusion only)
    diffusion_steps: int = 20
    rephrase: bool = False                      # augment instructions with rephrasings (1.5-like)
    mix: tuple[tuple[str, float], ...] = (("bridge_like", 1.0), ("fractal_like", 1.0))
    seed_offset: int = 0
    steps_scale: float = 1.0                    # multiplies PolicyConfig.num_steps
    image_channels: tuple[int, ...] = ()        # diffusion only: image observations, conv encoder
    vit: tuple[int, ...] = ()                   # diffusion only: image observations, ViT trunk
                                                # (patch, width, depth, heads), e.g. Octo-small's
    recipe: int = 2                             # bump when training code changes (cache key)

    @property
    def obs_key(self) -> str:
        return "image" if (self.image_channels or self.vit) else "state"


@dataclass
class BCData:
    """Training arrays: ``state [N,S]``, ``lang_idx [N]`` into ``lang_table [U,D]``,
    ``actions [N,H,7]`` raw chunks (padded with the last action), ``weight [N]`` sampling weights."""
    state: np.ndarray
    lang_idx: np.ndarray
    lang_table: np.ndarray
    actions: np.ndarray
    weight: np.ndarray | None = None

    def __len__(self):
        return len(self.state)

    def subset(self, mask) -> "BCData":
        m = np.asarray(mask)
        return BCData(self.state[m], self.lang_idx[m], self.lang_table, self.actions[m],
                      None if self.weight is None else self.weight[m])


# ---------------------------------------------------------------------------------- statistics
def fit_stats(actions: np.ndarray) -> dict:
    """Per-dim statistics of raw actions ``[..., 7]`` (mean/std for diffusion, 1–99% bounds for bins)."""
    a = actions.reshape(-1, ACTION_DIM).astype(np.float64)
    lo, hi = np.quantile(a, 0.01, axis=0), np.quantile(a, 0.99, axis=0)
    lo[-1], hi[-1] = 0.0, 1.0
    hi = np.where(hi - lo < 1e-6, lo + 1e-6, hi)
    std = np.maximum(a.std(0), 1e-6)
    return {"mean": a.mean(0).astype(np.float32), "std": std.astype(np.float32),
            "low": lo.astype(np.float32), "high": hi.astype(np.float32)}


def _to_gauss(a, st):
    x = (a - st["mean"]) / st["std"]
    return x.at[..., -1].set(2 * a[..., -1] - 1) if isinstance(x, jax.Array) else \
        np.concatenate([x[..., :-1], 2 * a[..., -1:] - 1], -1)


def _from_gauss(x, st):
    a = x * st["std"] + st["mean"]
    g = (x[..., -1:] + 1) / 2
    return jnp.concatenate([a[..., :-1], (g > 0.5).astype(a.dtype)], -1)


def _to_tokens(a, st):
    u = (np.clip(a, st["low"], st["high"]) - st["low"]) / (st["high"] - st["low"])
    return np.rint(u * (nets.NUM_BINS - 1)).astype(np.int32)


def _from_tokens(tok, st):
    a = st["low"] + tok.astype(jnp.float32) / (nets.NUM_BINS - 1) * (st["high"] - st["low"])
    return jnp.concatenate([a[..., :-1], (a[..., -1:] > 0.5).astype(a.dtype)], -1)


def _norm_state(state, stats):
    if "state_mean" not in stats:
        return state
    return ((np.asarray(state, np.float32) - np.asarray(stats["state_mean"])) /
            np.asarray(stats["state_std"])).astype(np.float32)


# ---------------------------------------------------------------------------------- networks
def make_net(spec: PolicySpec):
    if spec.kind == "diffusion":
        return nets.DiffusionPolicyNet(spec.trunk_dims, spec.head_dims, spec.chunk * ACTION_DIM,
                                       spec.image_channels, spec.vit)
    if spec.kind == "tokens":
        return nets.TokenPolicyNet(spec.trunk_dims)
    if spec.kind == "ar_tokens":
        return nets.ARTokenPolicyNet(spec.trunk_dims, spec.head_dims)
    raise ValueError(f"unknown policy kind {spec.kind!r}; choose one of {KINDS}")


def init_params(spec: PolicySpec, state_dim, lang_dim: int, rng):
    """``state_dim``: S, or the image shape ``(H, W, 3)`` for image policies."""
    net = make_net(spec)
    obs_shape = tuple(state_dim) if isinstance(state_dim, (tuple, list)) else (state_dim,)
    s = jnp.zeros((1, *obs_shape), jnp.uint8 if spec.obs_key == "image" else jnp.float32)
    l = jnp.zeros((1, lang_dim))
    if spec.kind == "diffusion":
        return net.init(rng, s, l, jnp.zeros((1, spec.chunk * ACTION_DIM)), jnp.zeros((1,), jnp.int32))
    if spec.kind == "tokens":
        return net.init(rng, s, l)
    return net.init(rng, s, l, jnp.zeros((1, 7), jnp.int32))


def _loss_fn(spec: PolicySpec, net, stats):
    sch = nets.ddpm_schedule(spec.diffusion_steps)

    def loss(params, batch, rng):
        s, l = batch["state"], batch["lang"]
        if spec.kind == "diffusion":
            x0 = batch["target"]
            r1, r2 = jax.random.split(rng)
            t = jax.random.randint(r1, (x0.shape[0],), 0, spec.diffusion_steps)
            noise = jax.random.normal(r2, x0.shape)
            ab = sch["alpha_bars"][t][:, None]
            xt = jnp.sqrt(ab) * x0 + jnp.sqrt(1 - ab) * noise
            return jnp.mean((net.apply(params, s, l, xt, t) - noise) ** 2)
        tok = batch["target"]
        logits = net.apply(params, s, l) if spec.kind == "tokens" else net.apply(params, s, l, tok)
        return optax.softmax_cross_entropy_with_integer_labels(logits, tok).mean()
    return loss


def train_bc(spec: PolicySpec, data: BCData, num_steps: int, batch_size: int, lr: float, seed: int,
             log_every: int = 500, verbose: bool = True, init: tuple | None = None):
    """Behaviour cloning on ``data`` (any subset) → ``(params, stats, losses [num_steps])``.

    ``init=(params, stats)`` continues from a trained policy (fine-tuning) with its own action and
    state statistics, so the network's input and output scales are unchanged."""
    if len(data) == 0:
        raise ValueError(f"{spec.name}: empty training set")
    net = make_net(spec)
    rng = jax.random.PRNGKey(seed + spec.seed_offset)
    rng, r0 = jax.random.split(rng)
    if init is not None:
        params = jax.tree.map(jnp.asarray, init[0])
        stats = {k: np.asarray(v) for k, v in init[1].items()}
    else:
        stats = fit_stats(data.actions)
        if spec.obs_key == "state":              # z-score the state (positions, angles, opening)
            stats["state_mean"] = data.state.mean(0).astype(np.float32)
            stats["state_std"] = np.maximum(data.state.std(0), 1e-3).astype(np.float32)
        params = init_params(spec, data.state.shape[1:], data.lang_table.shape[1], r0)
    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adamw(optax.cosine_decay_schedule(lr, max(num_steps, 1), 0.1), 1e-4))
    opt = tx.init(params)
    loss = _loss_fn(spec, net, stats)

    @jax.jit
    def step(params, opt, batch, rng):
        l, g = jax.value_and_grad(loss)(params, batch, rng)
        upd, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, upd), opt, l

    if spec.kind == "diffusion":
        target = _to_gauss(data.actions[:, :spec.chunk], stats).reshape(len(data), -1)
    else:
        target = _to_tokens(data.actions[:, 0], stats)
    target = np.asarray(target, np.float32 if spec.kind == "diffusion" else np.int32)
    states = _norm_state(data.state, stats)
    p = None if data.weight is None else data.weight / data.weight.sum()
    np_rng = np.random.default_rng(seed + spec.seed_offset)
    losses = np.zeros(num_steps, np.float32)
    t0 = time.time()
    for i in range(num_steps):
        idx = np_rng.choice(len(data), batch_size, p=p) if p is not None else np_rng.integers(0, len(data), batch_size)
        batch = {"state": states[idx], "lang": data.lang_table[data.lang_idx[idx]], "target": target[idx]}
        rng, r = jax.random.split(rng)
        params, opt, l = step(params, opt, batch, r)
        losses[i] = float(l) if (i % log_every == 0 or i == num_steps - 1) else np.nan
        if verbose and (i % log_every == 0 or i == num_steps - 1):
            print(f"[{spec.name}] step {i:6d} loss {float(l):.4f} ({time.time() - t0:.0f}s)", flush=True)
    return params, stats, losses


def _inverse_cdf(keys, logits, k):
    """Draw ``k`` tokens per categorical: ``logits [B, D, 256]`` → ``[B, k, D]`` (one uniform each,
    row ``i``'s from ``keys[i]``)."""
    cdf = jnp.cumsum(jax.nn.softmax(logits, -1), -1)                       # [B, D, 256]
    u = jax.vmap(lambda key: jax.random.uniform(key, (k, logits.shape[1], 1)))(keys)
    return jnp.minimum(jnp.sum(cdf[:, None] < u, -1), nets.NUM_BINS - 1).astype(jnp.int32)


# ---------------------------------------------------------------------------------- the policy
class BCPolicy:
    """A trained stand-in. ``sample_actions(obs{"state":[B,S]}, instructions, K, rng) -> [B,K,7]``
    with ``rng`` one PRNG key per row (``[B, 2]``); sample ``j`` of row ``i`` uses the ``j``-th
    split of key ``i``, and rows are computed one at a time (``jax.lax.map``), see the module doc.

    Diffusion and token heads draw all K samples in one batched call; the autoregressive token
    policy runs one forward pass per sample (K passes), decoding its 7 dims one after another.
    """

    def __init__(self, spec: PolicySpec, params, stats: dict, language_encoder):
        self.spec, self.name = spec, spec.name
        self.params = params
        self.stats = {k: jnp.asarray(v) for k, v in stats.items()}
        self.language_encoder = language_encoder
        self.net = make_net(spec)
        self._lang: dict[str, np.ndarray] = {}
        self._build()

    def reset(self, batch_size: int) -> None:
        pass

    def _embed(self, instructions):
        missing = sorted({s for s in instructions if s not in self._lang})
        if missing:
            self._lang.update(zip(missing, np.asarray(self.language_encoder.encode(missing), np.float32)))
        return np.stack([self._lang[s] for s in instructions])

    def _build(self):
        spec, net, st = self.spec, self.net, self.stats
        if spec.kind == "diffusion":
            def chunks(params, state, lang, keys, k):
                def row(args):                                              # one observation
                    s, l, key = args
                    feat = net.apply(params, s[None], l[None], method=net.features)
                    eps = lambda f, x, t: net.apply(params, f, x, t, method=net.eps)  # noqa: E731
                    x = nets.ddpm_sample(eps, jnp.repeat(feat, k, axis=0), spec.chunk * ACTION_DIM,
                                         spec.diffusion_steps, jax.random.split(key, k))
                    return _from_gauss(x.reshape(k, spec.chunk, ACTION_DIM), st)
                return jax.lax.map(row, (state, lang, keys))
            self._chunks = jax.jit(chunks, static_argnums=4)
        elif spec.kind == "tokens":
            def sample(params, state, lang, keys, k):
                def row(args):
                    s, l, key = args
                    logits = net.apply(params, s[None], l[None])               # [1, 7, 256]
                    return _from_tokens(_inverse_cdf(key[None], logits, k)[0], st)
                return jax.lax.map(row, (state, lang, keys))
            self._sample = jax.jit(sample, static_argnums=4)
        else:
            def one_pass(params, state, lang, keys):                         # one action per pass
                def row(args):
                    s, l, key = args
                    tok = jnp.full((1, 7), nets.NUM_BINS, jnp.int32)
                    feat = net.apply(params, s[None], l[None], method=net.features)  # (a KV cache)
                    dim_keys = jax.random.split(key, 7)                     # one per dim
                    for d in range(7):                                      # autoregressive dims
                        logits = net.apply(params, feat, tok, method=net.logits)[:, d]
                        tok = tok.at[:, d].set(_inverse_cdf(dim_keys[d][None], logits[:, None], 1)[:, 0, 0])
                    return _from_tokens(tok, st)[0]
                return jax.lax.map(row, (state, lang, keys))
            self._one_pass = jax.jit(one_pass)

    def sample_chunks(self, observations, instructions, num_samples, rng):
        """``[B, K, H, 7]`` raw chunks (diffusion); other kinds return ``H = 1``."""
        check_sampling_args(num_samples)
        keys = row_keys(rng, batch_size_of(observations), self.name)
        state = _norm_state(np.asarray(observations[self.spec.obs_key]), self.stats)
        lang = self._embed(list(instructions))
        if self.spec.kind == "diffusion":
            return np.asarray(self._chunks(self.params, state, lang, keys, int(num_samples)))
        return self.sample_actions(observations, instructions, num_samples, rng)[:, :, None]

    def sample_actions(self, observations, instructions, num_samples, rng):
        keys = sampling_keys(self.name, observations, instructions, num_samples, rng)
        if self.spec.kind == "diffusion":
            return self.sample_chunks(observations, instructions, num_samples, keys)[:, :, 0]
        state = _norm_state(np.asarray(observations["state"], np.float32), self.stats)
        lang = self._embed(list(instructions))
        if self.spec.kind == "tokens":
            return np.asarray(self._sample(self.params, state, lang, keys, int(num_samples)))
        sample_keys = split_rows(keys, int(num_samples))                     # [B, K]
        return np.stack([np.asarray(self._one_pass(self.params, state, lang, sample_keys[:, j]))
                         for j in range(int(num_samples))], axis=1)

    def num_params(self) -> int:
        return int(sum(x.size for x in jax.tree_util.tree_leaves(self.params)))

    # -- persistence (msgpack, no pickle) -------------------------------------------------------
    def to_bytes(self) -> bytes:
        stats = {k: np.asarray(v) for k, v in self.stats.items()}
        return flax.serialization.msgpack_serialize({"params": jax.device_get(self.params), "stats": stats})

    @classmethod
    def from_bytes(cls, spec: PolicySpec, blob: bytes, language_encoder) -> "BCPolicy":
        d = flax.serialization.msgpack_restore(blob)
        return cls(spec, jax.tree_util.tree_map(jnp.asarray, d["params"]), d["stats"], language_encoder)


def spec_to_dict(spec: PolicySpec) -> dict:
    return dataclasses.asdict(spec)
