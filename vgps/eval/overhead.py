"""Paper Table 9 analogue (:func:`measure`, run by ``bench/bench_overhead.py`` and notebook 06):
per-step latency at B = 1 of a policy alone and + V-GPS at K = 10, 30, 50, 100, interleaved
repetitions, median. Pairs (:data:`MODALITIES`): ``octo-scale`` (a 22M-parameter ViT-S/16
diffusion policy on 256-px images, Octo-small's proportions; the conv critic reads the frame at
64 px), ``octo-scale-256`` (the critic on the full frame), ``image`` (64-px conv stand-in and
critic), ``state``. Rows: the policy alone; + V-GPS encoding once per observation (before the
policy samples, so the two overlap; or after it, no overlap); + V-GPS re-encoding K times (the
released code's cost model, the paper's 1.28×–2.12×); the policy's own K samples, no critic.
``critic_share`` = (V-GPS − K samples) / base. Fresh weights: latency does not depend on them."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from vgps.steer import ValueGuidedPolicy

KS = (10, 30, 50, 100)
MODALITIES = ("octo-scale", "octo-scale-256", "image", "state")
PAPER_ROWS = ("base", "V-GPS (re-encode K×)")    # the paper's critic re-encodes per candidate
PAPER = {1: (0.0752, 1.00), 10: (0.0963, 1.28), 30: (0.1096, 1.46), 50: (0.1196, 1.59),
         100: (0.1596, 2.12)}


class FixedEncoder:
    """Fixed instruction embedding (the real encoder is cached per instruction anyway)."""
    def encode(self, texts):
        return np.stack([np.random.default_rng(len(t)).standard_normal(512).astype(np.float32)
                         for t in texts])


class EncodeAfter(ValueGuidedPolicy):
    """V-GPS without the early embedding: the encoder runs after the policy sampled (no overlap)."""

    def embedding(self, observations, instructions):
        return None


def interleaved_times(agents: dict, observations: dict, instructions: list[str], reps: int,
                      warmup: int = 2) -> dict:
    """Seconds per ``act`` call of every agent, ``{key: [reps floats]}``, measured side by side:
    each repetition times every agent once in turn, so they share the machine's load. ``warmup``
    untimed calls first (compilation); repetition ``r`` acts with key ``fold_in(0, r)`` per row."""
    b = len(instructions)
    key0 = jax.random.PRNGKey(0)
    for a in agents.values():
        a.reset(b)
        for _ in range(warmup):
            a.act(observations, instructions, jnp.repeat(key0[None], b, axis=0))
    times = {key: [] for key in agents}
    for r in range(reps):
        keys = jnp.repeat(jax.random.fold_in(key0, r)[None], b, axis=0)
        for key, a in agents.items():
            t0 = time.perf_counter()
            a.act(observations, instructions, keys)
            times[key].append(time.perf_counter() - t0)
    return times


def build(modality: str):
    from vgps.agents.critic import Critic
    from vgps.config import CriticConfig
    from vgps.data.normalize import ActionNormalizer
    from vgps.nets.critic import CriticNet
    from vgps.policies.bc import BCPolicy, PolicySpec, fit_stats, init_params
    rng = np.random.default_rng(0)
    acts = np.concatenate([0.01 * rng.standard_normal((1000, 6)), rng.integers(0, 2, (1000, 1))], 1)
    if modality.startswith("octo-scale"):
        # Octo-small's proportions: ViT-S/16 on a 256-px image, 3-layer 256-wide diffusion head,
        # 20 denoising steps, chunk 4; the critic's conv encoder runs once on the same frame, read
        # at 64 px (or at the full 256 px for "octo-scale-256")
        spec = PolicySpec("octo-small-vit", "diffusion", (384,), (256, 256, 256), chunk=4,
                          diffusion_steps=20, vit=(16, 384, 12, 6))
        obs = {"image": rng.integers(0, 255, (1, 256, 256, 3), dtype=np.uint8)}
        cfg = CriticConfig(obs_modality="image", encoder="conv_small",
                           input_image_size=None if modality == "octo-scale-256" else 64)
    elif modality == "image":
        spec = PolicySpec("octo-small-img", "diffusion", (256, 256), (128, 128), chunk=4,
                          diffusion_steps=10, image_channels=(32, 64, 64, 128))
        obs = {"image": rng.integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)}
        cfg = CriticConfig(obs_modality="image", encoder="conv_small")
    else:
        spec = PolicySpec("octo-small", "diffusion", (128, 128), (128, 128), chunk=4, diffusion_steps=10)
        obs = {"state": rng.standard_normal((1, 32)).astype(np.float32)}
        cfg = CriticConfig(obs_modality="state", encoder="mlp")
    obs_shape = obs[spec.obs_key].shape[1:]
    params = init_params(spec, obs_shape, 512, jax.random.PRNGKey(0))
    policy = BCPolicy(spec, params, fit_stats(acts.astype(np.float32)), FixedEncoder())
    cparams = CriticNet(cfg).init(jax.random.PRNGKey(1), obs, jnp.zeros((1, 512)), jnp.zeros((1, 7)))
    critic = Critic(cfg, cparams, ActionNormalizer.fit(acts))
    return policy, critic, obs


def measure(modality: str, reps: int = 15) -> pd.DataFrame:
    policy, critic, obs = build(modality)
    instr = ["put eggplant into yellow basket"]
    agents = {("base", 1): ValueGuidedPolicy(policy, mode="policy")}
    for k in KS:
        agents[("V-GPS (encode once)", k)] = ValueGuidedPolicy(policy, critic, K=k, beta=0.0,
                                                              language_encoder=FixedEncoder())
        agents[("V-GPS (encode once, after the policy)", k)] = EncodeAfter(
            policy, critic, K=k, beta=0.0, language_encoder=FixedEncoder())
        agents[("V-GPS (re-encode K×)", k)] = ValueGuidedPolicy(policy, critic, K=k, beta=0.0,
                                                               language_encoder=FixedEncoder(), reencode=True)
    for k in KS:                              # the policy's own cost of K proposals, no critic
        agents[("policy K samples, no critic", k)] = ValueGuidedPolicy(policy, K=k, mode="random_select")
    times = interleaved_times(agents, obs, instr, reps)
    base = float(np.median(times[("base", 1)]))
    sampling = {k: float(np.median(times[("policy K samples, no critic", k)])) for k in KS}
    rows = []
    for (method, k), ts in times.items():
        med = float(np.median(ts))
        rows.append({"modality": modality, "method": method, "K": k, "latency_ms": 1e3 * med,
                     "overhead": med / base,
                     # what the critic adds on top of the policy's own K samples, in base steps
                     "critic_share": (med - sampling[k]) / base if method.startswith("V-GPS") else np.nan,
                     "paper_s": PAPER[k][0] if method in PAPER_ROWS else np.nan,
                     "paper_overhead": PAPER[k][1] if method in PAPER_ROWS else np.nan})
    return pd.DataFrame(rows)


def read_record(path) -> pd.DataFrame:
    """The table :func:`measure` gave in a committed bench record (``figures/bench/bench_overhead.md``,
    written by ``make bench BENCH=overhead``): the markdown table back as the frame, numbers as
    floats (``nan`` where the record has none)."""
    from pathlib import Path

    from vgps.plotting import from_markdown
    try:
        df = from_markdown(Path(path).read_text())
    except ValueError as e:
        raise ValueError(f"{path}: no markdown table of vgps.eval.overhead.measure() in it ({e})") from None
    head = list(df.columns)
    expected = ["modality", "method", "K", "latency_ms", "overhead", "critic_share", "paper_s", "paper_overhead"]
    if head != expected:
        raise ValueError(f"{path}: columns {head}, expected {expected}")
    for c in expected[2:]:
        df[c] = df[c].astype(float)            # "nan" included; anything else not a number raises
    return df.astype({"K": int})
