#!/usr/bin/env python
"""CI: run every notebook under nbval on the ``smoke`` profile.

    python scripts/run_nbval.py [notebooks/XX_name.ipynb ...] [-- extra pytest args]

Runs ``pytest --nbval-lax --sanitize-with tests/nbval_sanitize.cfg`` on the notebooks in order
(later notebooks reuse models the earlier ones trained), with ``VGPS_PROFILE=smoke`` — nbval
cannot inject papermill parameters, so the parameters cell reads the environment. Models and
datasets go to ``artifacts/smoke/``; figures to ``artifacts/smoke/nbval-figures/smoke/`` so that
committed ``figures/`` are not touched. Under ``--nbval-lax`` only cells whose first line is
``# NBVAL_CHECK_OUTPUT`` have their output compared; every cell must run without error.

The notebooks must not be modified by the run (checked by hashing them before and after).
Exit status: pytest's, except that 5 ("no tests collected") and an empty notebooks/ count as
success, with a message.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SANITIZE = REPO / "tests" / "nbval_sanitize.cfg"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from strip_notebook import has_injected_cell  # noqa: E402


def _digest(paths):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    if argv:
        notebooks = [Path(a).resolve() for a in argv]
    else:
        notebooks = sorted(p for p in (REPO / "notebooks").glob("*.ipynb")
                           if ".ipynb_checkpoints" not in p.parts)
    if not notebooks:
        print("run_nbval: no notebooks under notebooks/; nothing to test")
        return 0

    import nbformat
    bad = [p for p in notebooks if has_injected_cell(nbformat.read(p, as_version=4))]
    if bad:
        print("run_nbval: these notebooks carry a papermill 'injected-parameters' cell, which "
              "would override VGPS_PROFILE=smoke under nbval:\n  "
              + "\n  ".join(str(p.relative_to(REPO)) for p in bad)
              + "\nremove it with: python scripts/strip_notebook.py --drop-injected <notebook>",
              file=sys.stderr)
        return 2

    env = dict(os.environ)
    env["VGPS_PROFILE"] = "smoke"
    env.setdefault("VGPS_FIGURES", str(REPO / "artifacts" / "smoke" / "nbval-figures"))
    env.setdefault("PYTHONHASHSEED", "0")
    env.setdefault("MUJOCO_GL", "osmesa")
    env.setdefault("PYOPENGL_PLATFORM", "osmesa")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("JAX_PLATFORMS", "cpu")
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--sanitize-with", str(SANITIZE),
           "--nbval-kernel-name", "python3", "--nbval-cell-timeout", "1800",
           "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=", "-rfE",
           "--durations=10", *extra, *[str(p) for p in notebooks]]
    print(f"run_nbval: {len(notebooks)} notebook(s), VGPS_PROFILE=smoke", flush=True)
    print("  $ " + " ".join(["pytest", *cmd[3:]]), flush=True)
    before = _digest(notebooks)
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, cwd=REPO, env=env).returncode
    dt = time.perf_counter() - t0
    modified = [p for p, h in _digest(notebooks).items() if before[p] != h]
    if modified:
        print("run_nbval: ERROR, the run modified " + ", ".join(p.name for p in modified),
              file=sys.stderr)
        rc = rc or 3
    if rc == 5:
        print("run_nbval: pytest collected no tests (notebooks without code cells); treating "
              "as success")
        rc = 0
    print(f"run_nbval: exit status {rc} after {dt:.0f}s", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
