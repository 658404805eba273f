#!/usr/bin/env python
"""``make reproduce``: regenerate every table and figure of a profile, then write its manifest.

    python scripts/reproduce.py --profile default|smoke|paper [--force] [--dry-run]

Stages, in order:

0. ``datasets``: ``python -m vgps.envs.generate --profile P`` (skipped if that module does not
   exist yet).
1. ``notebooks/01_*.ipynb``, ``02_*.ipynb`` … in number order (those that exist), run by papermill with
   ``-p profile P``, kernel ``python3``, working directory ``notebooks/``, and
   ``$VGPS_PROFILE=P``. For ``default`` the executed notebook replaces the committed one (so
   GitHub shows default results; papermill's injected-parameters cell is removed so nbval still
   reads ``$VGPS_PROFILE``); other profiles write executed copies to
   ``artifacts/P/notebooks/`` and leave the committed notebooks alone. Papermill's per-cell
   timing and nbclient's timestamps are stripped.

A stage is skipped when its key is unchanged and the files it wrote are still there. The key is
the SHA-256 of: the notebook's source cells (type + source; outputs, metadata and an injected
parameters cell excluded), every ``vgps/**/*.py``, every file in ``data/``, the profile's full
config, and the previous stage's key (so a change upstream re-runs everything after it). The
``datasets`` key covers ``vgps/envs``, ``vgps/data``, ``vgps/config.py``, ``vgps/paths.py`` and
the profile. The cache lives in ``artifacts/P/reproduce_cache.json`` and is saved after each
stage, so a failure loses nothing already done and a rerun resumes at the failed stage.

Notebooks 05 and 06 both read only what 04 and earlier left (critics, stand-ins, datasets), so with
``--jobs 2`` (the default) they run at the same time in two kernels — each is mostly one
single-threaded simulator loop, and the machine has two cores. Their keys both chain on 04's; 07
chains on the pair. Files a concurrent stage wrote are attributed to it by their ``NN_`` prefix;
anything else written meanwhile is attributed to every stage of the group.

Finally ``figures/P/MANIFEST.json`` and ``MANIFEST.md`` list every artefact under ``figures/P/``
with SHA-256 and size, the pinned library versions and instruction-set level and (outside the
hashed digest) the CPU and the wall time of each stage.

``--verify`` (``make verify``) re-runs stages into a scratch directory (``--scratch``, default a new
temporary one) and compares every artefact they write with the SHA-256 the committed manifest
holds, printing equal / DIFFERENT / missing per file (exit 1 on any difference); the committed
figures, notebooks and caches are not touched. Under ``default`` it re-runs the stages whose inputs
are cheap (datasets, 01–03, 07; ``--only`` chooses others), under ``smoke`` every stage.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from strip_notebook import INJECTED_TAG, strip  # noqa: E402

from vgps import manifest  # noqa: E402
from vgps.config import PROFILES, get_profile  # noqa: E402
from vgps.paths import artifacts_dir, figures_dir  # noqa: E402

NOTEBOOK_NUMBERS = range(1, 100)
CACHE_NAME = "reproduce_cache.json"
FULL_RUN = "_full_run"              # cache entry: end-to-end time of the last run of every stage
CONCURRENT = (("05", "06"),)        # stage-number prefixes that may run at the same time
# what `--verify` re-runs by default (None: every stage); the rest are minutes to an hour each
VERIFY_STAGES = {"smoke": None, "default": ("datasets", "01", "02", "03", "07"), "paper": ()}


def _rel(p: Path) -> str:
    p = Path(p)
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)


# ----------------------------------------------------------------------------- hashing
def _sha(*parts) -> str:
    return hashlib.sha256(manifest.canonical_json(list(parts))).hexdigest()


def tree_hash(paths: list[Path], suffixes: tuple[str, ...] | None = None) -> str:
    """SHA-256 over (relative path, content hash) of every file under ``paths``."""
    items = []
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            if "__pycache__" in p.parts or (suffixes and p.suffix not in suffixes):
                continue
            items.append((p.relative_to(root.parent).as_posix(), manifest.sha256_file(p)))
    return _sha(sorted(items))


def notebook_source_hash(path: Path) -> str:
    import nbformat
    nb = nbformat.read(path, as_version=4)
    cells = [(c.cell_type, c.source) for c in nb.cells
             if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    return _sha(cells)


def profile_hash(profile: str) -> str:
    return _sha(get_profile(profile).to_dict())


# ----------------------------------------------------------------------------- outputs
def snapshot(root: Path, exclude: tuple[Path, ...] = ()) -> dict:
    """{relative path: (mtime_ns, size)} of every file under ``root``."""
    out = {}
    if not root.exists():
        return out
    for p in root.rglob("*"):
        if not p.is_file() or any(p.is_relative_to(e) for e in exclude):
            continue
        st = p.stat()
        out[p.relative_to(root).as_posix()] = (st.st_mtime_ns, st.st_size)
    return out


def written(before: dict, after: dict) -> list[str]:
    """Files created or rewritten (even with identical bytes) between two snapshots."""
    return sorted(k for k, v in after.items() if before.get(k) != v)


class Outputs:
    """What a stage wrote under figures/P (by content) and artifacts/P (by size)."""

    def __init__(self, profile: str):
        self.fig = figures_dir(profile)
        self.art = artifacts_dir(profile)
        self.art_exclude = (self.art / "notebooks", self.art / CACHE_NAME)
        self.fig_exclude = (self.fig / manifest.MANIFEST_JSON, self.fig / manifest.MANIFEST_MD)

    def take(self) -> tuple[dict, dict]:
        return snapshot(self.fig, self.fig_exclude), snapshot(self.art, self.art_exclude)

    def record(self, before: tuple[dict, dict], after: tuple[dict, dict], owns) -> dict:
        """What was written between two snapshots and ``owns(rel)`` (see :func:`owner_filter`)."""
        return {"figures": {r: manifest.sha256_file(self.fig / r)
                            for r in written(before[0], after[0]) if owns(r)},
                "artifacts": {r: after[1][r][1] for r in written(before[1], after[1]) if owns(r)}}

    def remove_stale(self, previous: dict, current: dict) -> list[str]:
        """Delete the figures a stage's ``previous`` run wrote and its ``current`` run did not (a
        table the notebook no longer makes), so the manifest never hashes an orphan. Returns
        their paths."""
        gone = sorted(set(previous.get("figures", {})) - set(current.get("figures", {})))
        removed = []
        for rel in gone:
            p = self.fig / rel
            if p.is_file():
                p.unlink()
                removed.append(rel)
        return removed

    def still_there(self, rec: dict) -> bool:
        for rel, sha in rec.get("figures", {}).items():
            p = self.fig / rel
            if not p.is_file() or manifest.sha256_file(p) != sha:
                return False
        for rel, size in rec.get("artifacts", {}).items():
            p = self.art / rel
            if not p.is_file() or p.stat().st_size != size:
                return False
        return True


# ----------------------------------------------------------------------------- cache
def load_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def save_cache(path: Path, cache: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


# ----------------------------------------------------------------------------- stages
class StageFailed(RuntimeError):
    pass


def run_datasets(profile: str) -> None:
    cmd = [sys.executable, "-m", "vgps.envs.generate", "--profile", profile]
    print("    $ " + " ".join(cmd[1:]), flush=True)
    r = subprocess.run(cmd, cwd=REPO)
    if r.returncode != 0:
        raise StageFailed(f"dataset generation (python -m vgps.envs.generate --profile {profile}) "
                          f"exited with status {r.returncode}")


def run_notebook(nb_path: Path, profile: str, nb_out_dir: Path, in_place: bool,
                 log_output: bool) -> Path:
    import nbformat
    import papermill as pm

    running = nb_out_dir / ".running"
    running.mkdir(parents=True, exist_ok=True)
    tmp = running / nb_path.name
    try:
        pm.execute_notebook(str(nb_path), str(tmp), parameters={"profile": profile},
                            kernel_name="python3", cwd=str(nb_path.parent),
                            progress_bar=False, log_output=log_output)
    except BaseException as e:
        failed = nb_out_dir / "failed"
        failed.mkdir(parents=True, exist_ok=True)
        where = ""
        if tmp.exists():
            shutil.move(str(tmp), failed / nb_path.name)
            where = f"\n  partially executed copy: {_rel(failed / nb_path.name)}"
        what = getattr(e, "ename", type(e).__name__)
        msg = getattr(e, "evalue", str(e)).strip().splitlines()
        cell = getattr(e, "exec_count", None)
        raise StageFailed(
            f"notebook {_rel(nb_path)} failed"
            + (f" in cell [{cell}]" if cell is not None else "")
            + f": {what}: {msg[0] if msg else ''}{where}"
            + f"\n  the committed notebook was not modified") from e

    nb = strip(nbformat.read(tmp, as_version=4), drop_injected=in_place)
    dest = nb_path if in_place else nb_out_dir / nb_path.name
    staged = dest.with_name(f".{dest.name}.tmp")
    nbformat.write(nb, staged)
    staged.replace(dest)
    tmp.unlink()
    return dest


def _run_stage(spec: tuple) -> tuple[float, str | None]:
    """Run one stage (in this process or a worker) → ``(wall seconds, error message or None)``."""
    t0 = time.perf_counter()
    try:
        if spec[0] == "datasets":
            run_datasets(spec[1])
        else:
            _, nb, prof, out, in_place, log = spec
            run_notebook(Path(nb), prof, Path(out), in_place, log)
    except StageFailed as e:
        return round(time.perf_counter() - t0, 1), str(e)
    return round(time.perf_counter() - t0, 1), None


def run_group(items: list[tuple[str, tuple]]) -> dict[str, tuple[float, str | None]]:
    """Run stages ``[(name, spec)]``: one inline, several in spawned worker processes at once."""
    if len(items) == 1:
        return {items[0][0]: _run_stage(items[0][1])}
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(len(items), mp_context=mp.get_context("spawn")) as ex:
        futs = {name: ex.submit(_run_stage, spec) for name, spec in items}
        out = {}
        for name, f in futs.items():
            try:
                out[name] = f.result()
            except Exception as e:                      # worker died (e.g. killed, out of memory)
                out[name] = (0.0, f"worker running {name} died: {type(e).__name__}: {e}")
        return out


def owner_filter(name: str, group: list[str]):
    """For stage ``name`` run with ``group`` (itself included): a file belongs to it unless its
    path carries another group member's ``NN_`` prefix (alone: every file)."""
    others = [g.split("_")[0] + "_" for g in group if g != name]
    return lambda rel: not any(part.startswith(o) for o in others for part in rel.split("/"))


def group_stages(names: list[str], jobs: int) -> list[list[str]]:
    """Consecutive stage names → run groups (several names = run concurrently, ``jobs`` > 1)."""
    groups: list[list[str]] = []
    for n in names:
        prev = groups[-1] if groups else None
        together = jobs > 1 and prev is not None and any(
            n.split("_")[0] in c and all(p.split("_")[0] in c for p in prev) for c in CONCURRENT)
        if together and len(prev) < jobs:
            prev.append(n)
        else:
            groups.append([n])
    return groups


def discover_notebooks(nb_dir: Path) -> list[Path]:
    found = []
    for n in NOTEBOOK_NUMBERS:
        hits = sorted(nb_dir.glob(f"{n:02d}_*.ipynb"))
        if len(hits) > 1:
            raise SystemExit(f"error: several notebooks numbered {n:02d}: {[h.name for h in hits]}")
        found += hits
    return found


# ----------------------------------------------------------------------------- verify
def _committed_manifest(profile: str) -> dict:
    path = figures_dir(profile) / manifest.MANIFEST_JSON
    if not path.is_file():
        raise SystemExit(f"error: no committed manifest {_rel(path)} to verify against; run "
                         f"`make reproduce PROFILE={profile}` first")
    return json.loads(path.read_text())


def stage_of(rel: str) -> str | None:
    """The stage prefix that writes a figures/ file: '00_' is the datasets stage, 'NN_' notebook NN."""
    head = rel.split("/")[0].split("_")[0]
    if not (len(head) == 2 and head.isdigit()):
        return None
    return "datasets" if head == "00" else head


def report_verification(committed: dict, fig: Path, ran: list[str], written: set[str],
                        scratch: Path) -> int:
    """Table of every committed artefact: equal / DIFFERENT for the files the re-run stages wrote,
    MISSING for files with a re-run stage's prefix that it did not write, 'not re-run' for the
    others; files the run wrote that the manifest lacks are 'new'."""
    ran_prefixes = {"datasets" if n == "datasets" else n.split("_")[0] for n in ran}
    want = {a["path"]: a["sha256"] for a in committed["artifacts"]}
    got = {a["path"]: a["sha256"] for a in manifest.list_artifacts(fig)}
    rows = []
    for rel in sorted(set(want) | set(got)):
        st = stage_of(rel)
        if rel not in want:
            verdict = "new (not in the committed manifest)"
        elif rel not in written and st not in ran_prefixes:
            verdict = "not re-run"
        elif rel not in got:
            verdict = "MISSING"
        else:
            verdict = "equal" if got[rel] == want[rel] else "DIFFERENT"
        rows.append((rel, want.get(rel, "")[:12], got.get(rel, "")[:12], verdict))
    host = manifest.host_info()
    then = committed.get("host", {}).get("cpu") or committed.get("platform", {}).get("cpu", "?")
    pin_then = committed.get("platform", {}).get("isa")
    if not isinstance(pin_then, str):         # manifests before the pin listed the CPU's SIMD flags
        pin_then = f"none (predates the pin; SIMD {', '.join(pin_then or [])})"
    lines = [f"# Verification of `{committed['profile']}` against the committed manifest", "",
             f"- this run: {host['cpu']} (SIMD: {', '.join(host['simd'])}), "
             f"pin: {manifest.platform_info()['isa']}, caches {manifest.platform_info()['caches']}; "
             f"stages re-run: {', '.join(ran) or 'none'}",
             f"- committed: {then}, pin: {pin_then}"
             + (f", caches {committed['platform']['caches']}" if "caches" in committed.get("platform", {}) else ""),
             "", "| file | committed | regenerated | verdict |", "|---|---|---|---|"]
    lines += [f"| `{r}` | `{w}` | `{g}` | {v} |" for r, w, g, v in rows]
    counts = {v: sum(r[3] == v for r in rows) for v in dict.fromkeys(r[3] for r in rows)}
    lines += ["", "; ".join(f"{n} {v}" for v, n in counts.items())]
    text = "\n".join(lines) + "\n"
    (scratch / "verify.md").write_text(text)
    print("\n" + text + f"(also in {scratch / 'verify.md'})", flush=True)
    return 1 if any(r[3] in ("DIFFERENT", "MISSING") for r in rows) else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate every table and figure of a profile.")
    ap.add_argument("--profile", default=os.environ.get("VGPS_PROFILE", "default"),
                    choices=PROFILES)
    ap.add_argument("--notebooks", type=Path, default=REPO / "notebooks",
                    help="directory of the numbered notebooks (default: notebooks/)")
    ap.add_argument("--code", type=Path, default=REPO / "vgps", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, default=REPO / "data", help=argparse.SUPPRESS)
    ap.add_argument("--force", action="store_true", help="ignore the cache, run every stage")
    ap.add_argument("--skip-datasets", action="store_true", help="do not run stage 0")
    ap.add_argument("--dry-run", action="store_true", help="show which stages would run")
    ap.add_argument("--jobs", type=int, default=2,
                    help="run independent notebooks (05 and 06) concurrently when > 1 (default 2)")
    ap.add_argument("--log-output", action="store_true", help="stream notebook output")
    ap.add_argument("--only", nargs="+", metavar="STAGE",
                    help="run only these stages (e.g. datasets 07_real_robot_logs); the others "
                         "are neither run nor checked")
    ap.add_argument("--verify", action="store_true",
                    help="re-run stages in a scratch directory and compare their artefacts with "
                         "the committed manifest (nothing committed is touched)")
    ap.add_argument("--scratch", type=Path, help="scratch directory for --verify")
    a = ap.parse_args(argv)
    P = a.profile
    os.environ["VGPS_PROFILE"] = P
    os.environ.setdefault("PYTHONHASHSEED", "0")
    committed = None
    if a.verify:
        committed = _committed_manifest(P)
        scratch = (a.scratch or Path(tempfile.mkdtemp(prefix=f"vgps-verify-{P}-"))).resolve()
        os.environ["VGPS_ARTIFACTS"] = str(scratch / "artifacts")
        os.environ["VGPS_FIGURES"] = str(scratch / "figures")
        a.force = True
        if a.only is None:
            a.only = VERIFY_STAGES[P]
            if a.only == ():
                raise SystemExit(f"error: --verify has no cheap stages under {P!r}; name them with --only")
        print(f"verify: profile={P}, scratch {scratch}", flush=True)
    in_place = P == "default" and not a.verify
    nb_dir = a.notebooks.resolve()

    art = artifacts_dir(P)
    cache_path = art / CACHE_NAME
    cache = load_cache(cache_path)           # --force reruns stages; other stages keep their entry
    nb_out = art / "notebooks"
    outputs = Outputs(P)

    code = tree_hash([a.code], (".py",))          # --code/--data: for tests only
    data = tree_hash([a.data]) if a.data.exists() else _sha([])
    prof = profile_hash(P)

    names, runners = [], {}
    env_key = None
    if not a.skip_datasets:
        env_code = tree_hash([REPO / "vgps" / "envs", REPO / "vgps" / "data",
                              REPO / "vgps" / "config.py", REPO / "vgps" / "paths.py"], (".py",))
        env_key = _sha("datasets", env_code, prof)
        names.append("datasets")
        runners["datasets"] = ("datasets", P)
    notebooks = {nb.stem: nb for nb in discover_notebooks(nb_dir)}
    if not notebooks:
        print(f"note: no numbered notebooks in {nb_dir}")
    for stem, nb in notebooks.items():
        names.append(stem)
        runners[stem] = ("notebook", str(nb), P, str(nb_out), in_place, a.log_output)
    if a.only:
        unknown = [o for o in a.only if not any(n == o or n.startswith(o) for n in names)]
        if unknown:
            raise SystemExit(f"error: unknown stage(s) {', '.join(map(repr, unknown))} for --only; "
                             f"the stages are: {', '.join(names)} (a prefix such as 02 selects one)")
    groups = group_stages(names, a.jobs)
    keys, upstream = {}, ""
    for grp in groups:
        for name in grp:
            keys[name] = env_key if name == "datasets" else _sha(
                "notebook", notebooks[name].name, notebook_source_hash(notebooks[name]), code, data,
                prof, upstream)
        upstream = keys[grp[0]] if len(grp) == 1 else _sha("group", [keys[n] for n in grp])

    print(f"reproduce: profile={P}, {len(names)} stage(s); executed notebooks "
          + ("replace the committed ones" if in_place else f"go to {_rel(nb_out)}")
          + "".join(f"; {' and '.join(g)} run concurrently" for g in groups if len(g) > 1),
          flush=True)
    timing: dict[str, dict] = {}
    t_all = time.perf_counter()
    index = {n: i for i, n in enumerate(names, 1)}
    tag = lambda n: f"[{index[n]}/{len(names)}] {n}"  # noqa: E731
    for grp in groups:
        todo = []
        for name in grp:
            key = keys[name]
            if a.only and name not in a.only and not any(name.startswith(o) for o in a.only):
                rec = cache.get(name, {})
                print(f"{tag(name)}: not selected (--only)", flush=True)
                timing[name] = {"wall_time_s": rec.get("wall_time_s"), "cached": True}
                continue
            rec = cache.get(name)
            exec_copy_ok = (name == "datasets" or in_place or (nb_out / f"{name}.ipynb").exists())
            if (not a.force and rec and rec.get("key") == key and exec_copy_ok
                    and outputs.still_there(rec)):
                print(f"{tag(name)}: unchanged, skipped "
                      f"(last run {rec.get('wall_time_s', 0):.1f}s)", flush=True)
                timing[name] = {"wall_time_s": rec.get("wall_time_s"), "cached": True}
                continue
            why = ("never run" if not rec else "--force" if a.force else "inputs changed" if rec.get("key") != key
                   else "executed copy missing" if not exec_copy_ok else "outputs missing or changed")
            print(f"{tag(name)}: {'would run' if a.dry_run else 'running'} ({why})"
                  + ("" if a.dry_run else " ..."), flush=True)
            todo.append(name)
        if a.dry_run or not todo:
            continue
        before = outputs.take()
        results = run_group([(n, runners[n]) for n in todo])
        after = outputs.take()
        failed = None
        for name in todo:
            dt, err = results[name]
            if err is not None:
                failed = failed or (name, err)
                continue
            new = {"key": keys[name], "wall_time_s": dt,
                   **outputs.record(before, after, owner_filter(name, todo))}
            stale = outputs.remove_stale(cache.get(name, {}), new)
            if stale:
                print(f"{tag(name)}: removed {len(stale)} file(s) its previous run wrote and this "
                      f"run did not: {', '.join(stale)}", flush=True)
            cache[name] = new
            if len(todo) > 1:
                cache[name]["concurrent_with"] = [n for n in todo if n != name]
            timing[name] = {"wall_time_s": dt, "cached": False}
            print(f"{tag(name)}: done in {dt:.1f}s "
                  f"({len(cache[name]['figures'])} figure/table file(s) written)", flush=True)
        save_cache(cache_path, cache)
        if failed:
            print(f"\nFAILED at stage {tag(failed[0])}:\n  {failed[1]}\n"
                  f"Stages before it (and any that finished beside it) are cached; fix the problem "
                  f"and rerun to resume.", file=sys.stderr, flush=True)
            return 1

    if a.dry_run:
        return 0
    if a.verify:
        ran = [n for n, t in timing.items() if not t["cached"]]
        written = {r for n in ran for r in cache.get(n, {}).get("figures", {})}
        return report_verification(committed, figures_dir(P), ran, written, scratch)
    # end-to-end time of the run that produced every stage now cached (kept while keys match)
    if all(not t["cached"] for t in timing.values()) and len(timing) == len(names):
        cache[FULL_RUN] = {"elapsed_s": round(time.perf_counter() - t_all, 1), "keys": keys}
        save_cache(cache_path, cache)
    full = cache.get(FULL_RUN, {})
    elapsed = full.get("elapsed_s") if full.get("keys") == keys else None
    m = manifest.write_manifest(figures_dir(P), P, stages=timing, elapsed_s=elapsed)
    print(f"manifest: {_rel(figures_dir(P))}/{manifest.MANIFEST_JSON} — {len(m['artifacts'])} artefact(s), "
          f"digest {m['digest'][:16]}, total {time.perf_counter() - t_all:.1f}s this run",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
