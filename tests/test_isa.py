"""The instruction-set pin (vgps/isa.py): set where processes start, in effect in a notebook kernel
and in a dataset worker, and — the point of it — the probe hashes equal the x86-64-v3 reference."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vgps import isa
from vgps.paths import REPO, TEST_DATA

REFERENCE = TEST_DATA / "isa_probe_x86-64-v3.json"
STATUS = "import json, vgps.isa as i; print(json.dumps(i.status()))"


def _unpinned_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in isa.ENV and k != "VGPS_ISA"}
    env["XLA_FLAGS"] = "--xla_cpu_enable_fast_math=false"         # a user's own flag, kept
    env.update(extra)
    return env


def _python(code: str, env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args, "-c", code], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_pinned_environ_keeps_other_xla_flags_and_overrides_ours():
    env = isa.pinned_environ({"XLA_FLAGS": "--xla_cpu_max_isa=AVX512 --xla_dump_to=/tmp/x",
                              "OPENBLAS_CORETYPE": "SkylakeX"})
    assert env["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", *isa.XLA]
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and isa.unpinned(env) == []
    assert isa.unpinned({}) == [*isa.ENV, "XLA_FLAGS"]
    assert isa.pinned_environ({"VGPS_ISA": "native"}) == {"VGPS_ISA": "native"}


def test_import_vgps_pins_a_fresh_process_before_numpy():
    r = _python("import vgps, numpy; " + STATUS[STATUS.index("import json"):], _unpinned_env())
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout.splitlines()[-1])
    assert st["unpinned"] == [] and st["numpy"]["X86_V4"] is False and st["numpy"]["X86_V3"] in (True, False)
    assert "--xla_cpu_enable_fast_math=false" in st["XLA_FLAGS"] and "UnpinnedWarning" not in r.stderr


def test_numpy_imported_first_warns_naming_the_variables():
    r = _python("import numpy, vgps", _unpinned_env())
    assert r.returncode == 0
    assert "UnpinnedWarning" in r.stderr and "NPY_DISABLE_CPU_FEATURES" in r.stderr
    assert "numpy was imported before vgps" in r.stderr
    quiet = _python("import numpy, vgps", _unpinned_env(VGPS_ISA="native"))
    assert quiet.returncode == 0 and "UnpinnedWarning" not in quiet.stderr


def test_launcher_execs_the_command_pinned():
    r = subprocess.run([sys.executable, "-m", "vgps.pinned", "--", sys.executable, "-S", "-c",
                        "import os, json; print(json.dumps(dict(os.environ)))"],
                       env=_unpinned_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert isa.unpinned(json.loads(r.stdout)) == []


def test_notebook_kernel_is_pinned():
    """The kernel papermill, nbval and JupyterLab start (kernel spec ``python3`` of the venv)."""
    jupyter_client = pytest.importorskip("jupyter_client")
    km = jupyter_client.KernelManager(kernel_name="python3")
    if "env" not in km.kernel_spec.to_dict() or not km.kernel_spec.env:
        pytest.fail("the python3 kernel spec carries no pinned env: run `make setup`")
    km.start_kernel(env=_unpinned_env(), cwd=str(REPO / "notebooks"))
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        out = []
        kc.execute_interactive("import numpy\n" + STATUS, timeout=120,
                               output_hook=lambda m: out.append(m["content"].get("text", "")))
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    st = json.loads("".join(out).strip().splitlines()[-1])
    assert st["unpinned"] == [] and st["numpy"]["X86_V4"] is False


def test_dataset_worker_is_pinned():
    """The spawned pool of vgps.envs.generate: numpy is imported pinned in the worker too."""
    code = ("import json, multiprocessing as mp, vgps.envs.generate, vgps.isa as i\n"
            "with mp.get_context('spawn').Pool(1) as p: print(json.dumps(p.apply(i.status)))")
    r = _python(code, _unpinned_env())
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout.splitlines()[-1])
    assert st["unpinned"] == [] and st["numpy"]["X86_V4"] is False


def test_probe_matches_the_x86_64_v3_reference():
    """Every floating-point path a result goes through (numpy, OpenBLAS, MUSE, MuJoCo physics and
    rendering, TensorFlow, XLA, a few Cal-QL updates) hashes as on an AVX2 host."""
    from vgps import isa_probe
    ref = json.loads(REFERENCE.read_text())
    rows = isa_probe.compare(isa_probe.run(), ref)
    bad = [r for r in rows if r[3] == "DIFFERENT"]
    assert not bad, f"differs from the x86-64-v3 reference ({ref['isa']}): {bad}"
    assert sum(r[3] == "equal" for r in rows) >= 10
