"""The five generalist stand-ins of the paper's Table 2, trained once per profile and cached.

``train_or_load(name, profile)`` → :class:`~vgps.policies.bc.BCPolicy`, stored as msgpack under
``artifacts/<profile>/policies/<name>/`` with a JSON sidecar; the cache key (:mod:`vgps.artifacts`)
hashes the spec, the ``PolicyConfig`` and the datasets' fingerprints, so later notebooks reuse it.
``train_or_load(..., episodes_filter=...)`` trains on a subset (e.g. one embodiment, Table 7);
``finetune_or_load`` continues a cached stand-in's training on a subset (Table 7).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from vgps import artifacts
from vgps.config import get_profile
from vgps.paths import artifacts_dir
from vgps.policies.bc import BCData, BCPolicy, PolicySpec, spec_to_dict, train_bc

SPECS: dict[str, PolicySpec] = {
    # diffusion heads (Octo-like); small and base differ in width/depth
    "octo-small": PolicySpec("octo-small", "diffusion", (128, 128), (128, 128), chunk=4,
                             diffusion_steps=10),
    "octo-base": PolicySpec("octo-base", "diffusion", (256, 256), (256, 256, 256), chunk=4,
                            diffusion_steps=10, seed_offset=1),
    # re-trained small: rephrased instructions and another data mix (fractal-heavy), fewer steps
    "octo-small-1.5": PolicySpec("octo-small-1.5", "diffusion", (128, 128), (128, 128), chunk=4,
                                 diffusion_steps=10, rephrase=True, seed_offset=2,
                                 mix=(("bridge_like", 0.5), ("fractal_like", 1.0)), steps_scale=0.5),
    # 256-bin discretised tokens, all dims at once (RT-1-X-like)
    "rt1x": PolicySpec("rt1x", "tokens", (256, 256), seed_offset=3),
    # autoregressive 256-bin tokens, one action per forward pass (OpenVLA-like)
    "openvla": PolicySpec("openvla", "ar_tokens", (256, 256), (128, 128), seed_offset=4),
}
NAMES = tuple(SPECS)
DATASETS = ("bridge_like", "fractal_like")
WEIGHTS, META = "policy.msgpack", "policy.json"    # in artifacts/<profile>/policies/<name>/

_REPHRASE = [(r"^put (.+?) on (.+)$", ["place {0} on {1}", "move {0} onto {1}", "set {0} on top of {1}"]),
             (r"^put (.+?) into (.+)$", ["place {0} into {1}", "drop {0} in {1}"]),
             (r"^pick (.+)$", ["grasp {0} and lift it", "pick up {0}"]),
             (r"^stack (.+?) on (.+)$", ["place {0} on top of {1}", "put {0} on {1}"]),
             (r"^move (.+?) near (.+)$", ["bring {0} next to {1}", "put {0} close to {1}"])]


def rephrasings(instruction: str) -> list[str]:
    """Template rephrasings (the stand-in for Octo-1.5's GPT-3.5 rephrased instructions)."""
    out = [instruction]
    for pat, templates in _REPHRASE:
        m = re.match(pat, instruction)
        if m:
            out += [t.format(*m.groups()) for t in templates]
            break
    return out


def dataset_roots(profile: str, datasets=DATASETS) -> list[Path]:
    """``artifacts/<profile>/datasets/<name>`` of each dataset (an error says how to make one)."""
    roots = [artifacts_dir(profile, "datasets", name) for name in datasets]
    for path in roots:
        if not any(path.iterdir()):
            raise FileNotFoundError(f"no dataset at {path}; generate it first: "
                                    f"python -m vgps.envs.generate --profile {profile}")
    return roots


def load_dataset_episodes(profile: str, datasets=DATASETS, keys=("state",)) -> dict[str, list[dict]]:
    """Training-split episodes of ``artifacts/<profile>/datasets/<name>`` (images not decoded
    unless ``"image" in keys``)."""
    from vgps.data.rlds import load_episodes
    return {name: load_episodes(path, keys=tuple(keys))
            for name, path in zip(datasets, dataset_roots(profile, datasets))}


def bc_data_from_episodes(episodes_by_set: dict[str, list[dict]], spec: PolicySpec, encoder,
                          episodes_filter: Callable[[str, dict], bool] | None = None) -> BCData:
    """Flatten episodes into chunked :class:`BCData` with the spec's mix weights and rephrasings."""
    mix = dict(spec.mix)
    states, idx, acts, weights, texts = [], [], [], [], {}
    rng = np.random.default_rng(spec.seed_offset)
    for set_name, eps in episodes_by_set.items():
        w = mix.get(set_name, 0.0)
        kept = [e for e in eps if episodes_filter is None or episodes_filter(set_name, e)]
        if w <= 0 or not kept:
            continue
        n_steps = sum(len(e["action"]) for e in kept)
        for e in kept:
            a, T = np.asarray(e["action"], np.float32), len(e["action"])
            pad = np.concatenate([a, np.repeat(a[-1:], spec.chunk - 1, 0)], 0)
            acts.append(np.stack([pad[t:t + spec.chunk] for t in range(T)]))
            states.append(np.asarray(e["observation"]["state"][:T], np.float32))
            options = rephrasings(e["instruction"]) if spec.rephrase else [e["instruction"]]
            ids = [texts.setdefault(s, len(texts)) for s in options]
            idx.append(np.asarray(ids)[rng.integers(0, len(ids), T)])
            weights.append(np.full(T, w / n_steps, np.float64))
    if not states:
        raise ValueError(f"{spec.name}: the filter/mix left no training episodes")
    table = np.asarray(encoder.encode(list(texts)), np.float32)
    return BCData(np.concatenate(states), np.concatenate(idx), table, np.concatenate(acts),
                  np.concatenate(weights))


def data_fingerprints(profile: str) -> list[str]:
    """:func:`vgps.artifacts.fingerprint` of each of the profile's datasets."""
    return [artifacts.fingerprint(root) for root in dataset_roots(profile)]


def policy_key(spec: PolicySpec, policy_cfg, fingerprints: list[str], tag: str = "") -> str:
    return artifacts.cache_key({"spec": spec_to_dict(spec), "cfg": dataclasses.asdict(policy_cfg),
                                "data": fingerprints, "tag": tag})


def save_policy(out: Path, policy: BCPolicy, meta: dict) -> None:
    """Weights, then the JSON sidecar holding the cache key, each written atomically."""
    artifacts.write_atomic(out / WEIGHTS, policy.to_bytes())
    artifacts.write_atomic(out / META, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())


def train_or_load(name: str, profile: str, *, episodes_filter: Callable[[str, dict], bool] | None = None,
                  tag: str = "", language_encoder=None, policy_cfg=None,
                  verbose: bool = True) -> BCPolicy:
    """Load the cached stand-in ``name`` for ``profile`` or train it (``episodes_filter`` + ``tag``
    select a subset, stored under ``policies/<name>[-tag]``)."""
    if name not in SPECS:
        raise KeyError(f"unknown policy {name!r}; choose one of {NAMES}")
    spec = SPECS[name]
    cfg = policy_cfg or get_profile(profile).policy
    if language_encoder is None:
        from vgps.data.language import get_encoder
        language_encoder = get_encoder(get_profile(profile).data.language_encoder)
    fps = data_fingerprints(profile)
    key = policy_key(spec, cfg, fps, tag)
    out = artifacts_dir(profile, "policies", name + (f"-{tag}" if tag else ""))

    def fit():
        data = bc_data_from_episodes(_disk_episodes(profile), spec, language_encoder,
                                     episodes_filter)
        steps = max(1, int(round(cfg.num_steps * spec.steps_scale)))
        t0 = time.time()
        params, stats, losses = train_bc(spec, data, steps, cfg.batch_size, cfg.lr, cfg.seed,
                                         log_every=max(steps // 5, 1), verbose=verbose)
        pol = BCPolicy(spec, params, stats, language_encoder)
        save_policy(out, pol, {"cache_key": key, "spec": spec_to_dict(spec),
                               "policy_cfg": dataclasses.asdict(cfg), "data_fingerprint": fps,
                               "tag": tag, "num_transitions": len(data), "num_steps": steps,
                               "num_params": pol.num_params(),
                               "train_seconds": round(time.time() - t0, 1),
                               "final_loss": float(losses[~np.isnan(losses)][-1])})
        return pol
    load = lambda: BCPolicy.from_bytes(spec, (out / WEIGHTS).read_bytes(), language_encoder)  # noqa: E731
    return artifacts.train_or_load(out, key, fit, load, artefact=WEIGHTS, meta=META)[0]


@functools.lru_cache(maxsize=None)
def _disk_episodes(profile: str) -> dict:
    """Load the profile's datasets once per process (only when something must be trained)."""
    return load_dataset_episodes(profile)


def load_all(profile: str, names=NAMES, **kw) -> dict[str, BCPolicy]:
    """Every stand-in; episodes are read (once) only if some policy is not cached yet."""
    return {n: train_or_load(n, profile, **kw) for n in names}


def saved_key(profile: str, name: str) -> str:
    """Cache key of the policy saved as ``artifacts/<profile>/policies/<name>``, ``""`` if none."""
    return artifacts.saved_key(artifacts_dir(profile, "policies", name) / META)


def is_cached(name: str, profile: str) -> bool:
    """True when ``train_or_load(name, profile)`` would load without training."""
    key = policy_key(SPECS[name], get_profile(profile).policy, data_fingerprints(profile))
    return (saved_key(profile, name) == key
            and (artifacts_dir(profile, "policies", name) / WEIGHTS).exists())


def finetune_bc(policy, data, num_steps: int, batch_size: int, lr: float, seed: int):
    """Continue behaviour cloning of a trained :class:`~vgps.policies.bc.BCPolicy` on ``data``
    (a :class:`~vgps.policies.bc.BCData`), from its weights and with its own action statistics
    (input and output scales unchanged) through :func:`~vgps.policies.bc.train_bc`.
    Returns ``(BCPolicy, losses)``."""
    params, stats, losses = train_bc(policy.spec, data, num_steps, batch_size, lr, seed,
                                     log_every=1, verbose=False, init=(policy.params, policy.stats))
    return BCPolicy(policy.spec, params, stats, policy.language_encoder), losses


def finetune_or_load(base_name: str, profile: str, *, episodes_filter, tag: str, language_encoder,
                     num_steps: int, lr: float, batch_size: int, seed: int = 0,
                     episodes_fn: Callable | None = None):
    """Load or make ``<base_name>-<tag>``: the cached stand-in ``base_name`` fine-tuned on the
    episodes ``episodes_filter(set_name, episode)`` keeps. Cached under
    ``artifacts/<profile>/policies/<base_name>-<tag>/`` keyed on the base policy's key, the
    datasets on disk and the fine-tuning settings; ``episodes_fn()`` (default:
    :func:`load_dataset_episodes`) is called only to fine-tune. Returns ``(policy, status)``."""
    base = train_or_load(base_name, profile, language_encoder=language_encoder, verbose=False)
    base_key = saved_key(profile, base_name)
    key = artifacts.cache_key({"recipe": 2, "base": base_key, "data": data_fingerprints(profile),
                               "steps": num_steps, "lr": lr, "batch": batch_size, "seed": seed,
                               "tag": tag})
    out = artifacts_dir(profile, "policies", f"{base_name}-{tag}")

    def fit():
        episodes = episodes_fn() if episodes_fn is not None else load_dataset_episodes(profile)
        data = bc_data_from_episodes(episodes, base.spec, language_encoder, episodes_filter)
        t0 = time.time()
        pol, losses = finetune_bc(base, data, num_steps, batch_size, lr, seed)
        secs = time.time() - t0
        save_policy(out, pol, {"cache_key": key, "base": base_name, "base_key": base_key,
                               "tag": tag, "num_steps": num_steps, "lr": lr,
                               "batch_size": batch_size, "num_transitions": len(data),
                               "train_seconds": round(secs, 1), "final_loss": float(losses[-1])})
        return pol, f"fine-tuned now ({secs:.0f} s)"
    load = lambda: (BCPolicy.from_bytes(base.spec, (out / WEIGHTS).read_bytes(),  # noqa: E731
                                        language_encoder), "reused")
    return artifacts.train_or_load(out, key, fit, load, artefact=WEIGHTS, meta=META)[0]


# seconds per BC step of each stand-in relative to octo-small (measured, default profile, 2 cores):
# what ensure_trained balances its worker processes by
TRAIN_COST = {"octo-small": 1.0, "octo-base": 2.2, "octo-small-1.5": 1.1, "rt1x": 2.6, "openvla": 4.8}


def training_groups(names, jobs: int) -> list[list[str]]:
    """``names`` split into at most ``jobs`` groups of about equal cost (:data:`TRAIN_COST` times
    the spec's step scale; longest first into the lightest group). Groups keep registry order."""
    cost = {n: TRAIN_COST.get(n, 1.0) * SPECS[n].steps_scale for n in names}
    k = max(1, min(jobs, len(names)))
    groups, load = [[] for _ in range(k)], [0.0] * k
    for n in sorted(names, key=lambda n: (-cost[n], NAMES.index(n))):
        i = load.index(min(load))
        groups[i].append(n)
        load[i] += cost[n]
    return [sorted(g, key=NAMES.index) for g in groups if g]


def ensure_trained(profile: str, names=NAMES, jobs: int = 2) -> None:
    """Train missing stand-ins in child processes (``python -m vgps.policies.zoo``), ``jobs`` at
    once (:func:`training_groups`): two small networks train faster side by side on two cores
    than one after the other, and each result depends on its own seeds alone. Reading the
    datasets imports TensorFlow, which cannot share a process with MuJoCo's OSMesa renderer here.
    Each child's log goes to ``policies/train-<first name>.log``; one line per finished stand-in
    is printed (a notebook shows no training log)."""
    import subprocess
    import sys
    missing = [n for n in names if not is_cached(n, profile)]
    runs = []
    for group in training_groups(missing, jobs):
        log = artifacts_dir(profile, "policies") / f"train-{group[0]}.log"
        with open(log, "w") as f:
            runs.append((group, log, subprocess.Popen(
                [sys.executable, "-m", "vgps.policies.zoo", "--profile", profile, *group],
                stdout=f, stderr=subprocess.STDOUT)))
    shown, failed = set(), []
    while runs:
        for run in list(runs):
            group, log, proc = run
            done = proc.poll() is not None
            for line in log.read_text(errors="replace").splitlines():
                if line.endswith(")") and ": ready (" in line and line not in shown:
                    shown.add(line)
                    print(f"stand-in {line}", flush=True)
            if done:
                runs.remove(run)
                if proc.returncode:
                    failed.append(f"{group} (exit {proc.returncode}; log {log})")
        if runs:
            time.sleep(1.0)
    if failed:
        raise RuntimeError(f"training the stand-ins failed: {'; '.join(failed)}; what finished is "
                           f"cached under {artifacts_dir(profile, 'policies')}")


def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description="train (or load) the generalist stand-ins")
    ap.add_argument("--profile", default=None)
    ap.add_argument("names", nargs="*", default=list(NAMES))
    a = ap.parse_args(argv)
    from vgps.config import get_profile as _gp
    prof = _gp(a.profile).name
    for n in a.names:
        t0 = time.time()
        train_or_load(n, prof)
        print(f"{n}: ready ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
