"""The reproduction manifest: every artefact under ``figures/<profile>/`` with its SHA-256 and
size, the profile, and the versions of the pinned libraries — plus, outside the hashed part, the
wall time of each pipeline stage.

``MANIFEST.json`` layout::

    {"profile": "smoke",
     "artifacts": [{"path": "fig.png", "sha256": "…", "size": 1234}, …],   # sorted by path
     "versions": {"python": "3.11.x", "jax": "…", …},
     "platform": {"machine": "x86_64", "isa": "x86-64-v3", "caches": "L1d 48K, L2 1024K"},
     "digest": "<sha256 of the canonical JSON of profile + artifacts + versions + platform>",
     "host": {"cpu": "AMD EPYC", "simd": ["avx2", "avx512f", …]},          # not hashed
     "timing": {"note": "…", "stages": {"01_x": {"wall_time_s": 12.3, "cached": false}, …}}}

``digest`` covers exactly the deterministic part, so two reproductions with the same code,
profile and library versions give the same digest (and the same per-artefact hashes) however long
they took and whatever CPU ran them. Floating point is portable across micro-architectures only
because every process runs with the instruction-set pin of :mod:`vgps.isa` (x86-64-v3): the
platform part hashes that level, or says that the pin was off or could not be honoured (no AVX2,
not x86), and the L1d/L2 sizes, which XLA's GEMM and convolution kernels block by (no variable pins
that: see :mod:`vgps.isa`); never the CPU model, which is recorded beside the digest for the reader.
``MANIFEST.json`` / ``MANIFEST.md`` themselves and dot-files are not listed.
"""
from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

from vgps import isa

PINNED = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-cpu",
          "tensorflow-datasets", "mujoco", "numpy")
MANIFEST_JSON = "MANIFEST.json"
MANIFEST_MD = "MANIFEST.md"
_EXCLUDE = {MANIFEST_JSON, MANIFEST_MD}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def list_artifacts(root: str | Path) -> list[dict]:
    """Every regular file under ``root`` (recursively, POSIX relative paths, sorted), except the
    manifest files at the top level and anything whose name starts with a dot."""
    root = Path(root)
    out = []
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if len(rel.parts) == 1 and rel.name in _EXCLUDE:
            continue
        out.append({"path": rel.as_posix(), "sha256": sha256_file(p), "size": p.stat().st_size})
    out.sort(key=lambda a: a["path"])
    return out


def library_versions(packages: tuple[str, ...] = PINNED) -> dict[str, str]:
    """Installed versions of the pinned libraries (``"not installed"`` if absent) and Python."""
    v = {"python": platform.python_version()}
    for name in packages:
        try:
            v[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            v[name] = "not installed"
    return v


ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl",
             "avx512_bf16", "amx_tile")


def platform_info(cpuinfo: str | None = None) -> dict:
    """The hashed platform: machine type and the instruction-set level in force (:mod:`vgps.isa`)."""
    return isa.manifest_entry(isa.read_cpuinfo() if cpuinfo is None else cpuinfo)


def host_info(cpuinfo: str | None = None) -> dict:
    """The CPU that ran the reproduction (not hashed): model name and its SIMD extensions."""
    cpuinfo = isa.read_cpuinfo() if cpuinfo is None else cpuinfo
    fields = {}
    for line in cpuinfo.splitlines():
        k, _, v = line.partition(":")
        fields.setdefault(k.strip(), v.strip())
    flags = set(fields.get("flags", "").split())
    return {"cpu": fields.get("model name") or platform.processor() or "unknown",
            "simd": [f for f in ISA_FLAGS if f in flags]}


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def build_manifest(root: str | Path, profile: str, stages: dict | None = None,
                   versions: dict | None = None, elapsed_s: float | None = None,
                   platform_: dict | None = None) -> dict:
    """The manifest dict. ``stages``: ``{name: {"wall_time_s": float, "cached": bool}}``, kept in
    ``timing`` and excluded from ``digest``; ``elapsed_s``: end-to-end time of a run that executed
    every stage (less than the sum when stages ran concurrently)."""
    hashed = {"profile": profile, "artifacts": list_artifacts(root),
              "versions": versions if versions is not None else library_versions(),
              "platform": platform_ if platform_ is not None else platform_info()}
    m = dict(hashed)
    m["digest"] = sha256_bytes(canonical_json(hashed))
    m["host"] = host_info()
    m["timing"] = {
        "note": "wall times vary between runs and are not part of digest; 'cached' stages were "
                "skipped and show the time of the run that produced their outputs",
        "stages": {k: stages[k] for k in (stages or {})},
        "total_wall_time_s": round(sum(float(s.get("wall_time_s") or 0.0)
                                       for s in (stages or {}).values()), 1),
    }
    if elapsed_s is not None:
        m["timing"]["elapsed_s"] = round(float(elapsed_s), 1)
    return m


def render_markdown(m: dict) -> str:
    lines = [f"# Reproduction manifest — profile `{m['profile']}`", "",
             f"Digest (profile + artefacts + versions): `{m['digest']}`", "",
             "## Artefacts", "", "| file | bytes | sha256 |", "|---|---:|---|"]
    lines += [f"| `{a['path']}` | {a['size']} | `{a['sha256']}` |" for a in m["artifacts"]]
    lines += ["", "## Library versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in m["versions"].items()]
    if "platform" in m:
        pf = m["platform"]
        lines += ["", "## Platform (hashed: the instruction-set level every process was pinned to)", "",
                  f"{pf['machine']}, {pf['isa']}" + (f"; caches {pf['caches']}" if "caches" in pf else "")]
    if "host" in m:
        hs = m["host"]
        lines += ["", "## Host (not hashed: any CPU that honours the pin gives the same bytes)", "",
                  f"{hs['cpu']}; SIMD: {', '.join(hs['simd']) or 'none listed'}"]
    stages = m.get("timing", {}).get("stages", {})
    if stages:
        lines += ["", "## Wall time per stage (not hashed)", "", "| stage | seconds | cached |",
                  "|---|---:|---|"]
        for k, s in stages.items():
            wt = s.get("wall_time_s")
            lines.append(f"| {k} | {'' if wt is None else f'{wt:.1f}'} | "
                         f"{'yes' if s.get('cached') else 'no'} |")
        lines.append(f"| **sum of stages** | {m['timing']['total_wall_time_s']:.1f} | |")
        if "elapsed_s" in m["timing"]:
            lines.append(f"| **end to end** (concurrent stages overlap) | "
                         f"{m['timing']['elapsed_s']:.1f} | |")
    return "\n".join(lines) + "\n"


def write_manifest(root: str | Path, profile: str, stages: dict | None = None,
                   versions: dict | None = None, elapsed_s: float | None = None) -> dict:
    """Build the manifest of ``root`` and write ``MANIFEST.json`` and ``MANIFEST.md`` into it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    m = build_manifest(root, profile, stages, versions, elapsed_s)
    (root / MANIFEST_JSON).write_text(json.dumps(m, indent=2, sort_keys=False) + "\n")
    (root / MANIFEST_MD).write_text(render_markdown(m))
    return m
