"""``vgps`` command line.

    vgps log-trial --log trials.csv --scene A --task "Green pepper in pot" \\
        --instruction "put the green pepper in the pot" --policy octo-small-1.5 \\
        --critic calql-v1 --K 50 --beta 0 --success 1 [--date 2024-10-01] [--notes ...]
    vgps check-log trials.csv          # validate a whole log, list every problem
    vgps table1 trials.csv             # Table 1 from a log, with Wilson intervals and tests
    vgps manifest --profile smoke      # (re)write figures/<profile>/MANIFEST.json and .md
    vgps serve-policy --policy octo-small --port 8000     # a stand-in over HTTP (docs/serving.md)
    vgps steer-proxy --policy http://127.0.0.1:8000 --critic DIR --K 10 --beta 1 --port 8001

Exit status: 0 ok, 2 invalid input (the message names the row and field).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys

from vgps import robot_logs
from vgps_server.client import RemotePolicyError


def _log_trial(a) -> int:
    fields = {f: getattr(a, f) for f in robot_logs.FIELDS}
    if fields["date"] is None:
        fields["date"] = _dt.date.today().isoformat()
    row = robot_logs.append_trial(a.log, **{k: v for k, v in fields.items() if v is not None})
    print(f"appended to {a.log}: {robot_logs.arm_label(row['policy'], row['critic'], row['K'], row['beta'])}"
          f" | scene {row['scene']} | {row['task']} | success={row['success']}")
    return 0


def _check_log(a) -> int:
    df = robot_logs.read_trials(a.log)
    df = robot_logs.with_arms(df)
    print(f"{a.log}: {len(df)} valid trials")
    print(df.groupby(["scene", "task", "arm"], sort=False)["success"].agg(["sum", "count"])
          .rename(columns={"sum": "successes", "count": "trials"}).to_string())
    return 0


def _table1(a) -> int:
    t = robot_logs.table1_from_log(a.log, baseline=a.baseline, steered=a.steered)
    print(f"baseline: {t.baseline}\nsteered:  {t.steered}\n")
    print(t.paper_style().to_string(index=False))
    print()
    print(t.with_intervals().to_string(index=False))
    return 0


def _manifest(a) -> int:
    from vgps import manifest
    from vgps.paths import figures_dir
    import json
    out = figures_dir(a.profile)
    try:  # keep the wall times a previous reproduction recorded
        stages = json.loads((out / manifest.MANIFEST_JSON).read_text())["timing"]["stages"]
    except (FileNotFoundError, KeyError, ValueError):
        stages = None
    m = manifest.write_manifest(out, a.profile, stages=stages)
    print(f"wrote {out / manifest.MANIFEST_JSON} ({len(m['artifacts'])} artefacts, "
          f"digest {m['digest'][:12]})")
    return 0


def _serve_policy(a) -> int:
    from vgps_server import PolicyServer
    if a.policy == "random":
        from vgps.policies.base import RandomPolicy
        policy = RandomPolicy()
    else:
        from vgps.policies import zoo
        if a.policy not in zoo.NAMES:
            raise ValueError(f"unknown policy {a.policy!r}; choose 'random' or one of {list(zoo.NAMES)}")
        policy = zoo.load_all(a.profile, names=(a.policy,), verbose=False)[a.policy]
    return PolicyServer(policy, host=a.host, port=a.port).run(f"policy {policy.name!r}")


def _steer_proxy(a) -> int:
    from vgps.remote import steer_proxy
    server = steer_proxy(a.policy, a.critic, K=a.K, beta=a.beta, host=a.host, port=a.port,
                         timeout=a.timeout)
    return server.run(f"V-GPS (K={a.K}, beta={a.beta}) over {a.policy}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vgps", description="V-GPS companion tools")
    sub = p.add_subparsers(dest="cmd", required=True)

    lt = sub.add_parser("log-trial", help="validate one real-robot trial and append it to a log")
    lt.add_argument("--log", required=True, help="log file (.csv or .jsonl); created if missing")
    lt.add_argument("--date", help="YYYY-MM-DD (default: today)")
    for f in ("scene", "task", "instruction", "policy"):
        lt.add_argument(f"--{f}", required=True)
    lt.add_argument("--critic", default=robot_logs.NO_CRITIC,
                    help="critic id used for steering, or 'none' (default)")
    lt.add_argument("--K", "-K", dest="K", help="candidate actions per step (steered runs)")
    lt.add_argument("--beta", help="softmax temperature; 0 = greedy (steered runs)")
    lt.add_argument("--success", required=True, help="1 or 0")
    lt.add_argument("--trial", help="trial index within (task, arm)")
    lt.add_argument("--pair-id", dest="pair_id", help="matched initial configuration id")
    lt.add_argument("--notes", default="")
    lt.set_defaults(func=_log_trial)

    ck = sub.add_parser("check-log", help="validate a trial log")
    ck.add_argument("log")
    ck.set_defaults(func=_check_log)

    t1 = sub.add_parser("table1", help="the paper's Table 1 from a trial log")
    t1.add_argument("log")
    t1.add_argument("--baseline", help="arm label of the unsteered arm (if several)")
    t1.add_argument("--steered", help="arm label of the steered arm (if several)")
    t1.set_defaults(func=_table1)

    mf = sub.add_parser("manifest", help="write figures/<profile>/MANIFEST.json and .md")
    mf.add_argument("--profile", default="default")
    mf.set_defaults(func=_manifest)

    sp = sub.add_parser("serve-policy", help="serve a stand-in policy over HTTP (docs/serving.md)")
    sp.add_argument("--policy", required=True, help="'random' or a stand-in name (octo-small, ...)")
    sp.add_argument("--profile", default="default", help="which trained stand-ins (default)")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8000, help="0 = any free port (printed)")
    sp.set_defaults(func=_serve_policy)

    px = sub.add_parser("steer-proxy", help="serve V-GPS over a served policy: same protocol, "
                                            "steered actions")
    px.add_argument("--policy", required=True, help="URL of the policy server, http://HOST:PORT")
    px.add_argument("--critic", required=True, help="critic run directory (meta.json + weights)")
    px.add_argument("--K", "-K", dest="K", type=int, default=10, help="candidates per step")
    px.add_argument("--beta", type=float, default=1.0, help="softmax temperature; 0 = greedy")
    px.add_argument("--host", default="127.0.0.1")
    px.add_argument("--port", type=int, default=8001, help="0 = any free port (printed)")
    px.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the policy")
    px.set_defaults(func=_steer_proxy)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.func(a)
    except robot_logs.TrialLogError as e:
        print("error: invalid trial log input:\n  " + "\n  ".join(e.errors), file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RemotePolicyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `vgps table1 log.csv | head`
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
