"""Manifest hashing determinism, byte-identical figures, notebook stripping."""
from __future__ import annotations

import json
import sys

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest

from vgps import isa, manifest
from vgps.paths import REPO
from vgps.plotting import save_figure, save_table

sys.path.insert(0, str(REPO / "scripts"))
from strip_notebook import _is_progress, has_injected_cell, strip  # noqa: E402

VERSIONS = {"python": "3.11.0", "jax": "0.0"}


def _files(root):
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_text("x\n1\n")
    (root / "sub" / "b.png").write_bytes(b"\x89PNG fake")
    (root / ".hidden").write_text("ignored")
    return root


def test_same_files_same_manifest(tmp_path):
    r1, r2 = _files(tmp_path / "r1"), _files(tmp_path / "r2")
    m1 = manifest.build_manifest(r1, "smoke", versions=VERSIONS)
    m2 = manifest.build_manifest(r2, "smoke", versions=VERSIONS)
    assert m1 == m2
    assert [a["path"] for a in m1["artifacts"]] == ["a.csv", "sub/b.png"]
    assert m1["artifacts"][0]["size"] == 4
    assert m1["artifacts"][0]["sha256"] == manifest.sha256_bytes(b"x\n1\n")


def test_wall_times_are_not_hashed(tmp_path):
    r = _files(tmp_path / "r")
    m1 = manifest.write_manifest(r, "smoke", {"01_a": {"wall_time_s": 1.0, "cached": False}}, VERSIONS)
    m2 = manifest.write_manifest(r, "smoke", {"01_a": {"wall_time_s": 99.0, "cached": True}}, VERSIONS)
    assert m1["digest"] == m2["digest"] and m1["artifacts"] == m2["artifacts"]
    assert m1["timing"] != m2["timing"]
    # the manifest does not list itself, so rewriting it changes nothing hashed
    assert manifest.MANIFEST_JSON not in [a["path"] for a in m2["artifacts"]]
    on_disk = json.loads((r / manifest.MANIFEST_JSON).read_text())
    assert on_disk["digest"] == m2["digest"] and on_disk["timing"]["stages"]["01_a"]["wall_time_s"] == 99.0
    assert "99.0" in (r / manifest.MANIFEST_MD).read_text()
    hashed = {k: on_disk[k] for k in ("profile", "artifacts", "versions", "platform")}
    assert manifest.sha256_bytes(manifest.canonical_json(hashed)) == on_disk["digest"]


def test_digest_changes_with_content_profile_versions(tmp_path):
    r = _files(tmp_path / "r")
    d0 = manifest.build_manifest(r, "smoke", versions=VERSIONS)["digest"]
    assert manifest.build_manifest(r, "default", versions=VERSIONS)["digest"] != d0
    assert manifest.build_manifest(r, "smoke", versions={**VERSIONS, "jax": "1"})["digest"] != d0
    here = manifest.platform_info()
    other = {**here, "isa": "below x86-64-v3 (lacks avx2): pin not honoured"}
    assert manifest.build_manifest(r, "smoke", versions=VERSIONS, platform_=other)["digest"] != d0
    (r / "a.csv").write_text("x\n2\n")
    assert manifest.build_manifest(r, "smoke", versions=VERSIONS)["digest"] != d0


def test_library_versions_lists_pinned():
    v = manifest.library_versions()
    assert set(manifest.PINNED) | {"python"} == set(v)
    assert v["numpy"] == np.__version__


def _figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    x = np.linspace(0, 1, 50)
    ax.plot(x, x ** 2, label="q")
    ax.bar([0.2, 0.6], [0.3, 0.5], width=0.1)
    ax.set_title("V-GPS")
    ax.legend()
    return fig


def test_save_figure_is_byte_identical(tmp_path):
    fig = _figure()
    p1 = save_figure(fig, tmp_path / "a", "f", close=False)
    p2 = save_figure(fig, tmp_path / "b", "f")
    p3 = save_figure(_figure(), tmp_path / "c", "f")   # a fresh, identical figure
    for a, b, c in zip(p1, p2, p3):
        assert a.read_bytes() == b.read_bytes() == c.read_bytes(), a.name
    assert [p.suffix for p in p1] == [".png", ".svg"]
    assert b"Date" not in p1[1].read_bytes() and b"matplotlib.org" not in p1[0].read_bytes()


def test_an_interrupted_save_keeps_the_old_file_and_lists_no_temporary(tmp_path):
    """Figures are written atomically: a kill mid-write leaves the previous complete file, and the
    manifest never hashes a half-written one."""
    from pathlib import Path
    fig = _figure()
    save_figure(fig, tmp_path, "f", close=False)
    old = (tmp_path / "f.png").read_bytes()
    direct = tmp_path / "direct.png"                     # the bytes are plain matplotlib's
    fig.savefig(direct, dpi=100, metadata={"Software": None}, bbox_inches="tight")
    assert direct.read_bytes() == old
    direct.unlink()

    def killed(path, **kw):
        Path(path).write_bytes(b"half a png")
        raise KeyboardInterrupt
    fig.savefig = killed
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, tmp_path, "f")
    assert (tmp_path / "f.png").read_bytes() == old
    assert [a["path"] for a in manifest.list_artifacts(tmp_path)] == ["f.png", "f.svg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]


def test_save_table_is_byte_identical(tmp_path):
    import pandas as pd
    df = pd.DataFrame({"task": ["a", "b"], "rate": [0.15, 1 / 3]})
    a = save_table(df, tmp_path / "a", "t")
    b = save_table(df, tmp_path / "b", "t")
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))


def test_strip_notebook_removes_volatile_metadata():
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("profile = 'default'")
    p.metadata["tags"] = ["injected-parameters"]
    c = nbformat.v4.new_code_cell("print(1)")
    c.metadata["papermill"] = {"start_time": "2024-01-01T00:00:00", "duration": 1.0}
    c.metadata["execution"] = {"iopub.execute_input": "2024-01-01T00:00:00"}
    nb.cells = [p, c]
    nb.metadata["papermill"] = {"parameters": {"profile": "default"}, "start_time": "x",
                                "duration": 3.0, "input_path": "a", "output_path": "b"}
    strip(nb)
    assert has_injected_cell(nb)
    assert nb.metadata["papermill"] == {"parameters": {"profile": "default"}}
    assert "papermill" not in nb.cells[1].metadata and "execution" not in nb.cells[1].metadata
    strip(nb, drop_injected=True)
    assert not has_injected_cell(nb) and len(nb.cells) == 1


def test_strip_notebook_removes_the_checkout_path_from_outputs():
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell("save_figure(fig, d, 'f')")
    c.outputs = [nbformat.v4.new_output("stream", name="stderr", text="/co/vgps/.venv/x.py:21: Warn\n"),
                 nbformat.v4.new_output("execute_result", execution_count=1,
                                        data={"text/plain": "[PosixPath('/co/vgps/figures/default/f.png')]"})]
    nb.cells = [c]
    strip(nb, repo_prefix="/co/vgps/")
    assert c.outputs[0]["text"] == ".venv/x.py:21: Warn\n"
    assert c.outputs[1]["data"]["text/plain"] == "[PosixPath('figures/default/f.png')]"


def test_strip_notebook_drops_progress_bars_and_keeps_other_stderr():
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell("train(...)")
    bars = ("calql:   0%|          | 0/5000 [00:00<?, ?it/s]\rcalql:   2%|▏         | 99/5000 "
            "[00:08<07:07, 11.46it/s, loss=55, phase=critic]")
    c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="profile=default\n"),
                 nbformat.v4.new_output("stream", name="stderr", text=bars),
                 nbformat.v4.new_output("stream", name="stderr", text="\n"),
                 nbformat.v4.new_output("stream", name="stderr", text="episodes: 100%|##| 2400/2400 "
                                        "[02:35<00:00, 15.4ep/s]\n"),
                 nbformat.v4.new_output("stream", name="stderr", text="UserWarning: row 3 dropped\n"),
                 nbformat.v4.new_output("stream", name="stdout", text="50%|##| 1/2 [00:01<00:01]\n")]
    nb.cells = [c]
    strip(nb)
    assert [(o["name"], o["text"]) for o in c.outputs] == [
        ("stdout", "profile=default\n"), ("stderr", "UserWarning: row 3 dropped\n"),
        ("stdout", "50%|##| 1/2 [00:01<00:01]\n")]


@pytest.mark.parametrize("nb", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebooks_are_clean(nb):
    """No papermill timing, no injected parameters (nbval must read $VGPS_PROFILE), and the
    parameters cell is the one docs/design.md prescribes."""
    node = nbformat.read(nb, as_version=4)
    assert not has_injected_cell(node), "run scripts/strip_notebook.py --drop-injected"
    for c in node.cells:
        assert "papermill" not in c.metadata and "execution" not in c.metadata
        shown = nbformat.writes(nbformat.v4.new_notebook(cells=[c])) if c.cell_type == "code" else ""
        assert "PosixPath('/" not in shown, "an absolute checkout path in an output: strip it"
        assert not any(_is_progress(o) for o in c.get("outputs", [])), "progress bars: strip"
    code = [c for c in node.cells if c.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", [])
    assert 'profile = os.environ.get("VGPS_PROFILE", "default")' in code[0].source


AVX2_EPYC = ("processor\t: 0\nmodel name\t: AMD EPYC 7B12\n"
             "flags\t\t: fpu sse4_2 avx avx2 fma bmi1 bmi2 f16c abm movbe xsave\n")
AVX512_XEON = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\n"
               "flags\t\t: fpu sse4_2 avx avx2 fma bmi1 bmi2 f16c abm movbe xsave avx512f avx512bw\n\n"
               "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: fpu\n")
OLD_CPU = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) E5-2670\nflags\t\t: fpu sse4_2 avx\n"


def test_digest_does_not_change_with_the_cpu_model(tmp_path, monkeypatch):
    """Two machines of different micro-architecture that honour the pin hash the same platform;
    one that cannot honour it (no AVX2, or not x86) gets a platform entry that says so."""
    monkeypatch.setattr(isa.os, "environ", isa.pinned_environ())
    r = _files(tmp_path / "r")
    pf = {c: manifest.platform_info(c) for c in (AVX2_EPYC, AVX512_XEON, OLD_CPU)}
    assert pf[AVX2_EPYC] == pf[AVX512_XEON]
    assert pf[AVX2_EPYC]["isa"] == "x86-64-v3" and pf[AVX2_EPYC]["caches"].startswith("L1d")
    assert "not honoured" in pf[OLD_CPU]["isa"] and "avx2" in pf[OLD_CPU]["isa"]
    digests = {c: manifest.build_manifest(r, "smoke", versions=VERSIONS, platform_=p)["digest"]
               for c, p in pf.items()}
    assert digests[AVX2_EPYC] == digests[AVX512_XEON] != digests[OLD_CPU]
    # XLA's GEMM kernels block by cache size (no variable pins that): the geometry is hashed
    other_caches = {**pf[AVX2_EPYC], "caches": "L1d 1K, L2 2K"}
    assert manifest.build_manifest(r, "smoke", versions=VERSIONS,
                                   platform_=other_caches)["digest"] != digests[AVX2_EPYC]
    assert "pin does not apply" in isa.manifest_entry(AVX2_EPYC, machine="aarch64")["isa"]
    # the pin switched off, or missing from the environment, is named, never hidden
    assert "native" in isa.manifest_entry(AVX2_EPYC, env={"VGPS_ISA": "native"})["isa"]
    assert "OPENBLAS_CORETYPE" in isa.manifest_entry(AVX2_EPYC, env={})["isa"]


def test_host_info_reads_model_and_simd_flags():
    h = manifest.host_info(AVX512_XEON)
    assert h["cpu"] == "Intel(R) Xeon(R) Platinum 8481C"
    assert h["simd"] == ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw"]   # first CPU, fixed order
    assert manifest.host_info("")["simd"] == []


def test_figures_render_inline_in_a_notebook_kernel_and_save_the_same_bytes(tmp_path):
    """Importing vgps.plotting in a kernel used to force the Agg backend, so plt.show() drew
    nothing and notebooks 02-07 were committed without a single inline figure."""
    import nbclient
    code = ("import matplotlib.pyplot as plt\n"
            "from vgps.plotting import save_figure\n"
            "fig, ax = plt.subplots(figsize=(2, 2)); ax.plot([0, 1], [1, 0])\n"
            f"save_figure(fig, {str(tmp_path / 'nb')!r}, 'f', close=False)\n"
            "plt.show()\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    outs = nb.cells[0].outputs
    assert any("image/png" in o.get("data", {}) for o in outs), outs
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "script", "f")
    for ext in ("png", "svg"):
        assert (tmp_path / "nb" / f"f.{ext}").read_bytes() == (tmp_path / "script" / f"f.{ext}").read_bytes()
