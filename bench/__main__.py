"""`python -m bench [name ...]`: run every bench/bench_*.py (or the named ones), print their tables,
and keep what each printed as ``figures/bench/<name>.md`` (the committed record the README's
Performance numbers are read from; ``--no-save`` only prints). Timings are measurements, not
reproducible artefacts: each record names its host and date, and ``figures/bench/`` is outside
the profile directories whose manifest must hash identically across reruns."""
from __future__ import annotations

import contextlib
import datetime
import importlib
import io
import os
import pkgutil
import platform
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "figures" / "bench"


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def record(name: str, text: str, out: Path = OUT) -> Path:
    """Write what bench ``name`` printed to ``out/<name>.md`` atomically, under a header naming
    the command, host and date."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.md"
    head = (f"# {name}\n\n`make bench BENCH={name.removeprefix('bench_')}` on {_cpu()}, "
            f"{os.cpu_count()} cores, {datetime.date.today().isoformat()}. Wall-clock measurements: "
            f"they vary between runs and machines; ratios were measured side by side in this run.\n\n")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(head + "```text\n" + text.rstrip("\n") + "\n```\n")
    os.replace(tmp, path)
    return path


def main(argv: list[str]) -> int:
    save = "--no-save" not in argv
    argv = [a for a in argv if a != "--no-save"]
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    wanted = [a if a.startswith("bench_") else f"bench_{a}" for a in argv] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {names}", file=sys.stderr)
        return 2
    if len(wanted) > 1:      # one process per benchmark: Mesa GL (envs) and TensorFlow (data) cannot share one
        codes = [subprocess.run([sys.executable, "-m", "bench", name, *([] if save else ["--no-save"])],
                                cwd=here.parent).returncode for name in wanted]
        failed = [n for n, c in zip(wanted, codes) if c]
        if failed:
            print(f"benchmark(s) failed: {failed}", file=sys.stderr)
        return 1 if failed else 0
    for name in wanted:
        print(f"\n=== {name} ===", flush=True)
        buf = io.StringIO()
        with contextlib.redirect_stdout(_Tee(sys.stdout, buf)):
            importlib.import_module(f"bench.{name}").main()
        if save:
            print(f"(kept as {record(name, buf.getvalue()).relative_to(OUT.parents[1])})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
