"""nbval, as CI runs it (``--nbval-lax`` + our sanitizers), fails when a checked output drifts
and passes when it matches — volatile parts (addresses, durations) sanitised."""
from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from vgps.paths import REPO

SANITIZE = REPO / "tests" / "nbval_sanitize.cfg"


def _cell(source, stored_text):
    c = new_code_cell(source, execution_count=1)
    c.outputs = [new_output("stream", name="stdout", text=stored_text)]
    return c


def _notebook(path, checked_stored):
    nb = new_notebook(cells=[
        _cell("import os\nprofile = os.environ.get('VGPS_PROFILE', 'default')", ""),
        # checked: must match (after sanitising)
        _cell("# NBVAL_CHECK_OUTPUT\nprint('success 7/20 -> 14/20')", checked_stored),
        _cell("# NBVAL_CHECK_OUTPUT\nprint(object())", "<object object at 0x7f3a2b1c9d40>\n"),
        _cell("# NBVAL_CHECK_OUTPUT\nprint('trained in 12.5s')", "trained in 3.1s\n"),
        # not checked under --nbval-lax: any output is fine
        _cell("print(profile)", "default\n"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def _nbval(nb, tmp_path):
    env = {**os.environ, "VGPS_PROFILE": "smoke", "PYTHONHASHSEED": "0"}
    before = nb.read_bytes()
    r = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--sanitize-with",
                        str(SANITIZE), "--nbval-kernel-name", "python3", "-p", "no:cacheprovider",
                        "-p", "no:xdist", "-o", "addopts=", "-q", str(nb)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert nb.read_bytes() == before, "nbval must not modify the notebook"
    return r


@pytest.mark.slow
def test_nbval_passes_when_checked_output_matches(tmp_path):
    nb = _notebook(tmp_path / "ok.ipynb", "success 7/20 -> 14/20\n")
    r = _nbval(nb, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "5 passed" in r.stdout


@pytest.mark.slow
def test_nbval_fails_when_checked_output_drifts(tmp_path):
    nb = _notebook(tmp_path / "drift.ipynb", "success 7/20 -> 13/20\n")
    r = _nbval(nb, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 failed, 4 passed" in r.stdout
    assert "13/20" in r.stdout and "14/20" in r.stdout   # the diff shows both
