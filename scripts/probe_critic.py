"""A critic probe on the TUNING seeds only (issue 16): train (or reuse) a registry critic under
``default``, run notebook 02's held-out diagnostics, and steer the five stand-ins with it on
``EvalConfig.tuning_seeds`` beside the base policies. Writes ``figures/history/probe_<critic>.md``:
the committed record the README quotes for results that are not yet part of ``make reproduce``.

    python scripts/probe_critic.py calql_sac_image [--episodes 20] [--settings 10:1,10:0.1]

Evaluation seeds are never touched: a probe may inform a choice, so it sees only tuning seeds.
Needs the ``default`` datasets and stand-ins (``make reproduce`` through notebook 04, or copies in
``artifacts/default``). Everything is cached (critic by its config and data, episodes per seed).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def train_and_diagnose(args, prof, v, keys, dirs, run_dir) -> None:
    """Child process: train (or reuse) the critic and write notebook 02's diagnostics of it."""
    from vgps.agents import diagnostics, runs
    from vgps.data.language import get_encoder
    from vgps.data.loader import load_training_data
    data = load_training_data(dirs, profile=v, obs_keys=keys, batch_size=v.critic.batch_size,
                              seed=v.critic.seed, backend="memory")
    critic, rows, fresh, _ = runs.train_cached(v.critic, data, run_dir, progress=False)
    per_step = runs.seconds_per_step(rows)
    print(f"{args.critic}: {'trained' if fresh else 'cached'}; {per_step:.3f} s per critic step "
          "(wall clock of its training run)", flush=True)
    diag = diagnostics.run_diagnostics(critic, runs.heldout_episodes(dirs, keys=keys),
                                       get_encoder(prof.data.language_encoder), labels=v.data, seed=0)
    table = diagnostics.summary_table({args.critic: diag})
    diagnostics_file(args.profile, args.critic).write_text(
        json.dumps({"per_step": per_step, "table": table.to_dict("list")}))


def diagnostics_file(profile: str, critic: str) -> Path:
    from vgps.paths import artifacts_dir
    return artifacts_dir(profile, "eval", "probes") / f"{critic}_diagnostics.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("critic", help="a name of vgps.config.CRITIC_VARIANTS")
    ap.add_argument("--episodes", type=int, default=20, help="episodes per task and tuning seed")
    ap.add_argument("--settings", default="10:1,10:0.1", help="K:beta pairs, comma-separated")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    import pandas as pd

    import vgps.envs as envs
    from vgps.agents import load_critic, runs
    from vgps.config import CRITIC_VARIANTS, get_profile
    from vgps.data.language import get_encoder
    from vgps.eval import RunConfig, make_evaluator, summary
    from vgps.paths import artifacts_dir
    from vgps.plotting import atomic_path, to_markdown
    from vgps.policies import zoo

    if args.critic not in CRITIC_VARIANTS:
        ap.error(f"unknown critic {args.critic!r}; choose one of {sorted(CRITIC_VARIANTS)}")
    settings = []
    for s in args.settings.split(","):
        k, b = s.split(":")
        settings.append((int(k), float(b)))
    prof = get_profile(args.profile)
    v = runs.critic_variant(prof, args.critic)
    keys = ("image",) if v.critic.obs_modality == "image" else ("state",)
    ds = artifacts_dir(args.profile, "datasets")
    dirs = [ds / "bridge_like", ds / "fractal_like"]
    if not (ds / "generation_summary.json").exists():
        sys.exit(f"no {args.profile} datasets in {ds}: run make reproduce (or make datasets) first")
    run_dir = artifacts_dir(args.profile, "critics", args.critic)
    if args.train_only:
        train_and_diagnose(args, prof, v, keys, dirs, run_dir)
        return 0
    # training loads TensorFlow (augmentation), and Mesa's GL cannot render beside it: train in a
    # child process, render and steer in this one
    subprocess.run([sys.executable, __file__, args.critic, "--profile", args.profile, "--train-only"],
                   check=True)
    critic = load_critic(run_dir)
    saved = json.loads(diagnostics_file(args.profile, args.critic).read_text())
    per_step, dtab = saved["per_step"], pd.DataFrame(saved["table"])
    enc = get_encoder(prof.data.language_encoder)

    policies = zoo.load_all(args.profile, names=prof.eval.policies, language_encoder=enc, verbose=False)
    pol_keys = [zoo.saved_key(args.profile, n) for n in policies]
    cache = artifacts_dir(args.profile, "eval", "probes")
    pool: dict = {}
    ev_base = make_evaluator(cache, "base", policies, num_envs=prof.eval.num_envs, key_parts=pol_keys,
                             env_pool=pool)
    ev = make_evaluator(cache, args.critic, policies, critic=critic, encoder=enc,
                        num_envs=prof.eval.num_envs, render=keys == ("image",),
                        key_parts=[runs.saved_key(run_dir)] + pol_keys, env_pool=pool)
    tasks, seeds = list(envs.EVAL_TASKS), prof.eval.tuning_seeds
    res, t0 = [], time.perf_counter()
    for p in policies:
        res.append(ev_base.run(RunConfig(p), tasks, seeds, args.episodes))
        res += [ev.run(RunConfig(p, "vgps", k, b), tasks, seeds, args.episodes) for k, b in settings]
        print(f"  {p}: {time.perf_counter() - t0:.0f} s", flush=True)
    df = pd.concat(res, ignore_index=True)
    steer = pd.concat([summary(df, {p: (k, b) for p in policies}, f"K={k}, beta={b:g}")
                       for k, b in settings], ignore_index=True)
    cols = ["protocol", "policy", "base", "vgps", "improvement", "impr_lo", "impr_hi"]
    steer = steer[cols].round(3)
    means = steer.groupby("protocol", sort=False)[["base", "vgps", "improvement"]].mean().round(3).reset_index()

    dtab = dtab.set_index("critic").T.reset_index().rename(columns={"index": "diagnostic"})
    text = "\n\n".join([
        f"# Probe: critic `{args.critic}` on the tuning seeds",
        f"{CRITIC_VARIANTS[args.critic].description}; profile `{args.profile}`, {v.critic.num_steps} "
        f"critic steps at batch {v.critic.batch_size} ({per_step:.3f} s per step in its training run). "
        f"Steering on the tuning seeds {list(seeds)} only, {args.episodes} episodes per task and seed, "
        f"{len(tasks)} tasks; 95% intervals (stratified bootstrap; paired for the change). "
        "Written by `scripts/probe_critic.py`.",
        "## Held-out diagnostics (notebook 02's)", to_markdown(dtab),
        "## Steering the stand-ins", to_markdown(steer),
        "## Means over the five stand-ins (success rates and change)", to_markdown(means)]) + "\n"
    path = REPO / "figures" / "history" / f"probe_{args.critic}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
