"""scripts/reproduce.py on a throw-away notebook: runs, caches, writes a stable manifest, strips
papermill timing, and stops with a clear message (losing nothing) when a notebook fails."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from vgps.paths import REPO

PARAMS = 'import os\nprofile = os.environ.get("VGPS_PROFILE", "default")'


def _nb(path, body):
    p = new_code_cell(PARAMS)
    p.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[p, new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _tiny(more_tables: str = "", end: str = "print(profile)") -> str:
    """A one-stage notebook body: table ``t`` (plus ``more_tables``), a model file, then ``end``."""
    return ("import pandas as pd\nfrom vgps.paths import figures_dir, artifacts_dir\n"
            "from vgps.plotting import save_table\n"
            "save_table(pd.DataFrame({'profile': [profile], 'x': [0.5]}), figures_dir(profile), 't')\n"
            + more_tables + "(artifacts_dir(profile, 'models') / 'm.txt').write_text('model')\n" + end)


def _stages(tmp_path, bodies: dict) -> None:
    """Throw-away numbered notebooks ``{stem: cell source}`` under ``tmp_path/nbs``."""
    (tmp_path / "nbs").mkdir()
    (tmp_path / "code").mkdir()
    for stem, body in bodies.items():
        _nb(tmp_path / "nbs" / f"{stem}.ipynb", body)


def _run(tmp_path, *extra):
    env = {**os.environ, "VGPS_ARTIFACTS": str(tmp_path / "art"),
           "VGPS_FIGURES": str(tmp_path / "fig"), "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, str(REPO / "scripts" / "reproduce.py"), "--profile",
                           "smoke", "--skip-datasets", "--notebooks", str(tmp_path / "nbs"),
                           # hash a frozen stand-in for vgps/ and data/, which others may be editing
                           "--code", str(tmp_path / "code"), "--data", str(tmp_path / "data"), *extra],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_reproduce_cache_manifest_and_failure(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "m.py").write_text("X = 1\n")
    _nb(nbs / "01_tiny.ipynb", _tiny())
    (nbs / "notes.ipynb").write_text("not a numbered stage; ignored")
    src1 = (nbs / "01_tiny.ipynb").read_bytes()

    r1 = _run(tmp_path)
    assert r1.returncode == 0, r1.stdout + r1.stderr
    assert "[1/1] 01_tiny: running (never run)" in r1.stdout and "done in" in r1.stdout
    man = tmp_path / "fig" / "smoke" / "MANIFEST.json"
    m1 = json.loads(man.read_text())
    assert [a["path"] for a in m1["artifacts"]] == ["t.csv", "t.md"]
    assert m1["profile"] == "smoke" and "jax" in m1["versions"]
    assert m1["timing"]["stages"]["01_tiny"]["cached"] is False
    # executed copy: outside notebooks/, profile injected, no papermill timing
    ex = nbformat.read(tmp_path / "art" / "smoke" / "notebooks" / "01_tiny.ipynb", as_version=4)
    assert "smoke" in "".join(o.get("text", "") for o in ex.cells[-1].outputs)
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in ex.cells)
    assert set(ex.metadata.get("papermill", {})) <= {"parameters"}
    assert (nbs / "01_tiny.ipynb").read_bytes() == src1     # non-default: never in place

    # unchanged inputs: skipped; same digest; the recorded wall time is kept, marked cached
    before = man.read_bytes()
    r2 = _run(tmp_path)
    assert r2.returncode == 0 and "01_tiny: unchanged, skipped" in r2.stdout, r2.stdout + r2.stderr
    m2 = json.loads(man.read_text())
    assert {k: v for k, v in m2.items() if k != "timing"} == {k: v for k, v in m1.items() if k != "timing"}
    assert m2["timing"]["stages"]["01_tiny"] == {**m1["timing"]["stages"]["01_tiny"], "cached": True}
    before = man.read_bytes()
    # a deleted output re-runs the stage
    (tmp_path / "art" / "smoke" / "models" / "m.txt").unlink()
    r3 = _run(tmp_path, "--dry-run")
    assert "01_tiny: would run (outputs missing or changed)" in r3.stdout
    assert json.loads(man.read_text())["digest"] == m1["digest"]

    # a notebook that no longer writes a table: the table is removed, and leaves the manifest
    _nb(nbs / "01_tiny.ipynb", _tiny("save_table(pd.DataFrame({'y': [1]}), figures_dir(profile), 'u')\n"))
    assert _run(tmp_path).returncode == 0
    assert [a["path"] for a in json.loads(man.read_text())["artifacts"]] == ["t.csv", "t.md", "u.csv", "u.md"]
    _nb(nbs / "01_tiny.ipynb", _tiny(end="print(profile + ' ')"))      # 'u' no longer written
    r5 = _run(tmp_path)
    assert r5.returncode == 0 and "removed 2 file(s)" in r5.stdout and "u.csv, u.md" in r5.stdout, r5.stdout
    assert not (tmp_path / "fig" / "smoke" / "u.csv").exists()
    assert [a["path"] for a in json.loads(man.read_text())["artifacts"]] == ["t.csv", "t.md"]
    before = man.read_bytes()

    # a failing notebook: clear message naming it, exit 1, nothing already written is lost
    (tmp_path / "art" / "smoke" / "models" / "m.txt").write_text("model")
    _nb(nbs / "02_broken.ipynb", "raise RuntimeError('critic diverged')")
    src = (nbs / "02_broken.ipynb").read_bytes()
    r4 = _run(tmp_path)
    assert r4.returncode == 1
    assert "02_broken.ipynb failed" in r4.stderr and "critic diverged" in r4.stderr
    assert "01_tiny: unchanged, skipped" in r4.stdout
    assert (nbs / "02_broken.ipynb").read_bytes() == src
    assert (tmp_path / "art" / "smoke" / "notebooks" / "failed" / "02_broken.ipynb").exists()
    assert man.read_bytes() == before and (tmp_path / "fig" / "smoke" / "t.csv").exists()


_RENDEZVOUS = (
    "import time\nfrom pathlib import Path\nimport pandas as pd\n"
    "from vgps.paths import figures_dir, artifacts_dir\nfrom vgps.plotting import save_table\n"
    "d = artifacts_dir(profile, 'meet')\n(d / '{me}').write_text('here')\n"
    "t0 = time.time()\n"
    "while not (d / '{other}').exists():\n"
    "    assert time.time() - t0 < 120, 'the other notebook never started: not concurrent'\n"
    "    time.sleep(0.1)\n"
    "save_table(pd.DataFrame({{'x': [1]}}), figures_dir(profile), '{me}_table')\n"
    "(artifacts_dir(profile, 'eval') / '{me}_cache.csv').write_text('x')\n")


@pytest.mark.slow
def test_reproduce_runs_05_and_06_concurrently(tmp_path):
    """05 and 06 wait for each other (a rendezvous), so the run only passes if they overlap; each
    stage's record keeps its own files; 07 chains on both; --jobs 1 runs them one after another."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "m.py").write_text("X = 1\n")
    _nb(nbs / "05_a.ipynb", _RENDEZVOUS.format(me="05", other="06"))
    _nb(nbs / "06_b.ipynb", _RENDEZVOUS.format(me="06", other="05"))
    _nb(nbs / "07_c.ipynb", "print('last')")
    r = _run(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "05_a and 06_b run concurrently" in r.stdout
    cache = json.loads((tmp_path / "art" / "smoke" / "reproduce_cache.json").read_text())
    assert set(cache["05_a"]["figures"]) == {"05_table.csv", "05_table.md"}
    assert set(cache["06_b"]["figures"]) == {"06_table.csv", "06_table.md"}
    assert "eval/05_cache.csv" in cache["05_a"]["artifacts"] and "eval/06_cache.csv" not in cache["05_a"]["artifacts"]
    assert cache["05_a"]["concurrent_with"] == ["06_b"]
    m = json.loads((tmp_path / "fig" / "smoke" / "MANIFEST.json").read_text())
    assert set(m["timing"]["stages"]) == {"05_a", "06_b", "07_c"} and m["timing"]["elapsed_s"] > 0
    # a rerun with everything cached keeps the end-to-end time of the run that produced it
    assert _run(tmp_path).returncode == 0
    m_again = json.loads((tmp_path / "fig" / "smoke" / "MANIFEST.json").read_text())
    assert m_again["timing"]["elapsed_s"] == m["timing"]["elapsed_s"]
    assert all(s["cached"] for s in m_again["timing"]["stages"].values())
    # editing 05 re-runs 05 and 07 (which chains on the pair), not 06
    _nb(nbs / "05_a.ipynb", _RENDEZVOUS.format(me="05", other="06") + "print('edited')")
    r2 = _run(tmp_path, "--dry-run")
    assert "05_a: would run (inputs changed)" in r2.stdout
    assert "06_b: unchanged, skipped" in r2.stdout
    assert "07_c: would run (inputs changed)" in r2.stdout
    # one job: sequential, so the rendezvous fails in the first notebook with a clear message
    import shutil
    shutil.rmtree(tmp_path / "art" / "smoke" / "meet")
    r3 = _run(tmp_path, "--jobs", "1", "--force")
    assert r3.returncode == 1 and "05_a.ipynb failed" in r3.stderr and "not concurrent" in r3.stderr


@pytest.mark.slow
def test_verify_compares_with_the_committed_manifest_and_touches_nothing(tmp_path):
    _stages(tmp_path, {n: "import pandas as pd\nfrom vgps.paths import figures_dir\n"
                          "from vgps.plotting import save_table\n"
                          f"save_table(pd.DataFrame({{'x': [0.5]}}), figures_dir(profile), '{n}_t')"
                       for n in ("01_a", "02_b")})
    assert _run(tmp_path).returncode == 0
    fig = tmp_path / "fig" / "smoke"
    committed = {p.name: p.read_bytes() for p in fig.iterdir()}

    r = _run(tmp_path, "--verify", "--scratch", str(tmp_path / "s1"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| `01_a_t.csv` |" in r.stdout and r.stdout.count("| equal |") == 4
    assert (tmp_path / "s1" / "verify.md").is_file()
    assert {p.name: p.read_bytes() for p in fig.iterdir()} == committed   # nothing committed touched

    # a committed artefact that the code no longer produces byte for byte: DIFFERENT, exit 1;
    # a stage not selected is reported as not re-run
    (fig / "02_b_t.md").write_text("edited\n")
    man = json.loads((fig / "MANIFEST.json").read_text())
    for a in man["artifacts"]:
        if a["path"] == "02_b_t.md":
            a["sha256"] = "0" * 64
    (fig / "MANIFEST.json").write_text(json.dumps(man))
    r = _run(tmp_path, "--verify", "--scratch", str(tmp_path / "s2"))
    assert r.returncode == 1 and "| `02_b_t.md` |" in r.stdout and "DIFFERENT" in r.stdout
    r = _run(tmp_path, "--verify", "--scratch", str(tmp_path / "s3"), "--only", "01")
    assert r.returncode == 0 and "not re-run" in r.stdout


def test_unknown_stage_is_an_error_that_lists_the_stages(tmp_path):
    _stages(tmp_path, {"01_a": "print(1)"})
    r = _run(tmp_path, "--only", "99_nothing")
    assert r.returncode != 0 and "unknown stage(s) '99_nothing'" in r.stderr and "01_a" in r.stderr
    assert not (tmp_path / "fig" / "smoke" / "MANIFEST.json").exists()


@pytest.mark.slow
def test_force_only_keeps_the_other_stages_cached(tmp_path):
    _stages(tmp_path, {"01_a": "print(1)", "02_b": "print(2)"})
    assert _run(tmp_path).returncode == 0
    r = _run(tmp_path, "--force", "--only", "02")
    assert r.returncode == 0 and "02_b: running (--force)" in r.stdout
    r = _run(tmp_path)
    assert "01_a: unchanged, skipped" in r.stdout and "02_b: unchanged, skipped" in r.stdout
