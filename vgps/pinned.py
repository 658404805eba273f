"""Run a command with the instruction-set pin of :mod:`vgps.isa`, or show and probe it.

    python -m vgps.pinned -- CMD [ARGS...]          exec CMD with the pins in its environment
    python -m vgps.pinned                           the pin in force here and numpy's dispatch
    python -m vgps.pinned --write-kernelspec FILE   add the pins to a Jupyter kernel.json
    python -m vgps.pinned --probe [--check REF]     hash every floating-point path (vgps.isa_probe)
"""
from __future__ import annotations

import os
import shutil
import sys

from vgps import isa


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        if len(argv) < 2:
            print("usage: python -m vgps.pinned -- CMD [ARGS...]", file=sys.stderr)
            return 2
        exe = shutil.which(argv[1]) or argv[1]
        os.execve(exe, argv[1:], isa.pinned_environ())          # does not return
    if argv[:1] == ["--write-kernelspec"] and len(argv) == 2:
        isa.write_kernelspec(argv[1])
        return 0
    if argv[:1] == ["--probe"]:
        from vgps import isa_probe
        return isa_probe.main(argv[1:])
    if argv:
        print("usage: python -m vgps.pinned [-- CMD ARGS... | --write-kernelspec KERNEL_JSON | "
              "--probe [--out FILE] [--check FILE]]", file=sys.stderr)
        return 2
    e = isa.manifest_entry()
    print(f"pin: {e['isa']} ({e['machine']})")
    for k in list(isa.ENV) + ["XLA_FLAGS"]:
        print(f"  {k}={os.environ.get(k, '')!r}")
    print(f"  numpy dispatch: {isa.status()['numpy']}")
    return 0




if __name__ == "__main__":
    sys.exit(main())
