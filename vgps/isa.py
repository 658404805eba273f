"""The instruction-set pin: every process that computes a result runs x86-64-v3 (AVX2 + FMA) code.

numpy, OpenBLAS, oneDNN (inside TensorFlow and XLA), XLA and Mesa's llvmpipe rasteriser pick SIMD
kernels by the CPU they find at run time, so the same code gave different floating point on AVX2 and
AVX-512 hosts, and one rounding difference can flip a contact, an episode and everything trained on
it. Each knob was measured on an AVX-512 host against the same computation under an emulated AVX2
CPU (``python -m vgps.pinned --probe``; reference in ``tests/data/isa_probe_x86-64-v3.json``):

=============================  ==========================================  =======================
variable                       pins                                        unpinned on AVX-512
=============================  ==========================================  =======================
``NPY_DISABLE_CPU_FEATURES``   numpy's dispatched loops                    float64 ufuncs differ
``OPENBLAS_CORETYPE``          OpenBLAS kernels (numpy ``@``, MUSE port)   float32 matmul differs
``ONEDNN_MAX_CPU_ISA``         oneDNN's JIT kernels (TF matmul, XLA GEMM)  TF matmul differs
``TF_ENABLE_ONEDNN_OPTS``      TensorFlow's oneDNN graph rewrites (off)    on only on AVX-512
``XLA_FLAGS``                  XLA's own codegen ISA; YNNPACK fusions off  XLA dots differ
``LP_NATIVE_VECTOR_WIDTH``     llvmpipe (OSMesa) vector width              (frames equal anyway)
=============================  ==========================================  =======================

YNNPACK picks its kernels through cpuinfo and honours no cap, hence off. What no variable pins: XLA's
dots and convolutions (Eigen with oneDNN's sgemm) block the contraction by the cache sizes CPUID
reports, so XLA-trained results also follow the L1d/L2 geometry (:func:`cache_geometry`), which the
manifest therefore hashes beside the level.

The pins must be in the environment before numpy is imported, so they are applied where processes
start: ``make`` runs every command through ``python -m vgps.pinned -- CMD`` (which sets them and execs
CMD), the Jupyter kernel spec carries them (``--write-kernelspec``), spawned workers inherit them,
and ``import vgps`` applies them itself when numpy, jax and TensorFlow are not loaded yet — or warns,
naming what is unpinned, when they are. ``VGPS_ISA=native`` turns the pin off (the manifest then
says so). This module imports nothing outside the standard library.
"""
from __future__ import annotations

import os
import platform
import sys
import warnings
from pathlib import Path

LEVEL = "x86-64-v3"
OFF = "native"                       # VGPS_ISA=native: no pin
# Plain variables: the pinned value. numpy 2.4 ignores the older names (AVX512F, AVX512_SKX…).
ENV = {
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "OPENBLAS_CORETYPE": "Haswell",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "LP_NATIVE_VECTOR_WIDTH": "256",
}
# XLA flags: merged into $XLA_FLAGS (the user's other flags are kept; ours win on the same name).
XLA = ("--xla_cpu_max_isa=AVX2", "--xla_cpu_experimental_ynn_fusion_type=")
# x86-64-v3 as defined by the psABI, in /proc/cpuinfo's names (lzcnt is 'abm')
_V3_FLAGS = ("avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave")
_HEAVY = ("numpy", "jax", "jaxlib", "tensorflow", "mujoco")


class UnpinnedWarning(RuntimeWarning):
    """A result-computing library was loaded without the instruction-set pin."""


def enabled(env=None) -> bool:
    return (os.environ if env is None else env).get("VGPS_ISA", LEVEL) != OFF


def _merge_xla(flags: str) -> str:
    ours = {f.split("=", 1)[0] for f in XLA}
    kept = [f for f in flags.split() if f.split("=", 1)[0] not in ours]
    return " ".join(kept + list(XLA))


def pinned_environ(env=None) -> dict:
    """A copy of ``env`` (default ``os.environ``) with the pins applied (unchanged if disabled)."""
    out = dict(os.environ if env is None else env)
    if enabled(out):
        out.update(ENV)
        out["XLA_FLAGS"] = _merge_xla(out.get("XLA_FLAGS", ""))
    return out


def unpinned(env=None) -> list[str]:
    """Names of the variables of ``env`` that do not hold their pinned value."""
    env = os.environ if env is None else env
    bad = [k for k, v in ENV.items() if env.get(k) != v]
    have = env.get("XLA_FLAGS", "").split()
    return bad + (["XLA_FLAGS"] if any(f not in have for f in XLA) else [])


def numpy_dispatch() -> dict | None:
    """numpy's enabled dispatch targets (None if numpy is not imported): X86_V4 and the AVX-512
    groups must read False under the pin, whatever the host has."""
    if "numpy" not in sys.modules:
        return None
    from numpy._core._multiarray_umath import __cpu_features__ as f
    return {k: bool(f.get(k)) for k in ("X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR")}


def status() -> dict:
    """This process: the variables not pinned, $XLA_FLAGS and numpy's dispatch (importing numpy,
    after the pin, if nothing has yet): for tests and ``python -m vgps.pinned``."""
    import numpy  # noqa: F401
    return {"unpinned": unpinned(), "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
            "numpy": numpy_dispatch()}


def apply() -> list[str]:
    """Pin this process (call before numpy is imported). Returns the names it had to set; warns
    with :class:`UnpinnedWarning` naming them when a library that reads them is already loaded."""
    if not enabled():
        return []
    missing = unpinned()
    if not missing:
        return []
    loaded = [m for m in _HEAVY if m in sys.modules]
    os.environ.update({k: v for k, v in pinned_environ().items() if k in missing})
    if loaded:
        warnings.warn(
            f"{', '.join(loaded)} {'was' if len(loaded) == 1 else 'were'} imported before vgps with "
            f"{', '.join(missing)} not pinned: SIMD kernels follow this CPU, so results may differ "
            f"from the committed ones. "
            f"Start Python through `python -m vgps.pinned -- CMD` (make does), or import vgps first. "
            f"VGPS_ISA=native silences this.", UnpinnedWarning, stacklevel=3)
    return missing


def read_cpuinfo() -> str:
    """``/proc/cpuinfo`` ('' where there is none)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def host_level(cpuinfo: str | None = None, machine: str | None = None) -> str:
    """The highest of x86-64-v3 / below-v3 this host runs: 'x86-64-v3' or an explanation."""
    machine = machine or platform.machine()
    if machine not in ("x86_64", "AMD64"):
        return f"{machine}: the {LEVEL} pin does not apply"
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    lacking = [f for f in _V3_FLAGS if f not in flags]
    return LEVEL if not lacking else f"below {LEVEL} (lacks {', '.join(lacking)}): pin not honoured"


def manifest_entry(cpuinfo: str | None = None, machine: str | None = None, env=None,
                   caches: str | None = None) -> dict:
    """What the manifest hashes: the pinned level (or why it is not in force) and the L1d/L2 sizes
    that XLA's GEMM blocking reads (:func:`cache_geometry`), never the CPU model."""
    machine = machine or platform.machine()
    caches = caches or ", ".join(c for c in cache_geometry().split(", ") if not c.startswith("L3"))
    if not enabled(env):
        return {"machine": machine, "isa": f"{OFF} (VGPS_ISA={OFF}: results follow this CPU)",
                "caches": caches}
    bad = unpinned(env)
    if bad:
        return {"machine": machine, "isa": f"{LEVEL} requested but unpinned: {', '.join(bad)}",
                "caches": caches}
    return {"machine": machine, "isa": host_level(cpuinfo, machine), "caches": caches}


def cache_geometry() -> str:
    """Data-cache sizes as Linux reports them, e.g. 'L1d 48K, L2 1024K, L3 32768K'. XLA's CPU GEMM
    and convolution kernels (Eigen with oneDNN's sgemm) block the contraction by the cache sizes
    that CPUID reports, so their floating point follows this geometry; no variable pins it."""
    out = []
    for idx in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind = (idx / "level").read_text().strip(), (idx / "type").read_text().strip()
            size = (idx / "size").read_text().strip()
        except OSError:
            continue
        if kind in ("Data", "Unified"):
            out.append(f"L{level}{'d' if kind == 'Data' else ''} {size}")
    return ", ".join(out) or "unknown"


def write_kernelspec(path) -> None:
    """Add the pins to a Jupyter ``kernel.json`` (its ``env``), so JupyterLab kernels are pinned."""
    import json
    path = Path(path)
    spec = json.loads(path.read_text())
    spec["env"] = {k: v for k, v in pinned_environ(spec.get("env", {})).items() if k != "VGPS_ISA"}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
