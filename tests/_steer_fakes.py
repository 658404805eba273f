"""Small stand-ins with the signatures of docs/design.md (critic, encoder, policy) for tests."""
from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from vgps.policies.base import row_keys


def keys(seed: int, b: int) -> jax.Array:
    """``b`` PRNG keys, one per row, as the policy protocol takes them."""
    return jax.random.split(jax.random.PRNGKey(seed), b)


class HashEncoder:
    """``encode(list[str]) -> [N, D]`` deterministic from a hash of the text; counts calls."""

    def __init__(self, dim: int = 512):
        self.dim, self.calls = dim, 0

    def encode(self, texts):
        self.calls += 1
        out = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
            out.append(np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32))
        return np.stack(out)


class AffineNormalizer:
    """Like ActionNormalizer: ``(a - mean) / std`` on the first 6 dims, gripper left as is."""

    def __init__(self, mean, std):
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def normalize(self, a):
        a = np.asarray(a, np.float32)
        out = (a - self.mean) / self.std
        out[..., -1] = a[..., -1]
        return out

    def unnormalize(self, a):
        a = np.asarray(a, np.float32)
        out = a * self.std + self.mean
        out[..., -1] = a[..., -1]
        return out


class QuadraticCritic:
    """Q = -|a_norm - target(state)|² per ensemble member (+ member offset), records its inputs."""

    def __init__(self, num_qs: int = 2, state_dim: int = 4):
        self.normalizer = AffineNormalizer([0.01] * 6 + [0.0], [0.02] * 6 + [1.0])
        self.obs_modality, self.num_qs = "state", num_qs
        self.encode_calls, self.encoded_rows, self.seen_actions = 0, 0, []

    def encode(self, observations, language):
        self.encode_calls += 1
        s = np.asarray(observations["state"], np.float32)
        self.encoded_rows += len(s)
        return np.concatenate([s[:, :1] * np.ones((1, 7), np.float32), language[:, :1]], -1)

    def q_from_embedding(self, z, actions_norm):
        self.seen_actions.append(np.asarray(actions_norm))
        target = jnp.asarray(z)[:, None, :7]                       # [B, 1, 7]
        q = -jnp.sum((jnp.asarray(actions_norm) - target) ** 2, -1)  # [B, K]
        return jnp.stack([q + i for i in range(self.num_qs)])       # [E, B, K]

    def score(self, observations, language, raw_actions):
        z = self.encode(observations, language)
        return np.asarray(self.q_from_embedding(z, self.normalizer.normalize(raw_actions)).min(0))


class GaussPolicy:
    """Raw actions ~ N(0.01, 0.02²) per dim (gripper Bernoulli). Options to misbehave for tests."""

    def __init__(self, name="gauss", action_dim=7, nan=False):
        self.name, self.action_dim, self.nan = name, action_dim, nan

    def reset(self, batch_size):
        pass

    def sample_actions(self, observations, instructions, num_samples, rng):
        """``rng``: one key per row; row i's samples come from key i alone."""
        keys = row_keys(rng, np.shape(observations["state"])[0], self.name)

        def row(key):
            r1, r2 = jax.random.split(key)
            return (jax.random.normal(r1, (num_samples, self.action_dim)),
                    jax.random.bernoulli(r2, 0.5, (num_samples,)))
        noise, grip = jax.vmap(row)(keys)
        a = 0.01 + 0.02 * np.asarray(noise)
        a[..., -1] = np.asarray(grip, np.float32)
        if self.nan:
            a[0, 0, 0] = np.nan
        return a.astype(np.float32)
