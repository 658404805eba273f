#!/usr/bin/env python
"""``make lab``: the notebook series in JupyterLab, with the project's kernel.

    python scripts/lab.py [--port N] [--ip ADDR] [extra jupyter-lab arguments...]

Serves ``notebooks/`` on ``http://127.0.0.1:8888`` (the next free port if 8888 is taken; ``--port``
or ``LAB_PORT`` to choose) with a fresh token, prints the URL to open, and runs JupyterLab in the
foreground (Ctrl-C stops it and its kernels). The kernel is the ``python3`` spec that ``make setup``
writes into ``.venv/share/jupyter/kernels/python3``: the venv's Python with the instruction-set pin
in its environment (``vgps/isa.py``), the same kernel papermill and nbval use.
``JUPYTER_PREFER_ENV_PATH=1`` makes Jupyter find that spec before any ``python3`` spec in the user's
own Jupyter directory.

``tests/test_lab_browser.py`` starts JupyterLab through :func:`lab_command` and :func:`lab_env`, so
the browser test runs the server this command runs.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
KERNEL_NAME = "python3"


def kernel_dir(prefix: str | os.PathLike = sys.prefix) -> Path:
    return Path(prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME


def check_kernel(prefix: str | os.PathLike = sys.prefix) -> dict:
    """The project's kernel spec, or SystemExit naming ``make setup`` if it is missing."""
    path = kernel_dir(prefix) / "kernel.json"
    if not path.is_file():
        raise SystemExit(f"ERROR: no kernel spec at {path}; run `make setup`")
    return json.loads(path.read_text())


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def lab_env(base: dict | None = None, **overrides: str) -> dict:
    env = dict(os.environ if base is None else base)
    env["JUPYTER_PREFER_ENV_PATH"] = "1"
    env.update(overrides)
    return env


def lab_command(port: int, token: str, root_dir: str | os.PathLike = NOTEBOOKS,
                ip: str = "127.0.0.1", extra: list[str] | tuple = ()) -> list[str]:
    """``python -m jupyterlab`` serving ``root_dir`` on ``ip:port`` with ``token``; exactly that port
    (``port_retries=0``: the printed URL is the one served, or the server fails saying so)."""
    return [sys.executable, "-m", "jupyterlab",
            f"--ServerApp.root_dir={root_dir}",
            f"--ServerApp.ip={ip}",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}",
            *(["--allow-root"] if os.geteuid() == 0 else []),    # CI and this machine run as root
            *extra]


def lab_url(port: int, token: str, path: str = "", ip: str = "127.0.0.1") -> str:
    host = "127.0.0.1" if ip in ("", "0.0.0.0", "::") else ip
    return f"http://{host}:{port}/lab{'/tree/' + path if path else ''}?token={token}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=int(os.environ.get("LAB_PORT", "0")) or None)
    ap.add_argument("--ip", default=os.environ.get("LAB_IP", "127.0.0.1"))
    args, extra = ap.parse_known_args(argv)
    spec = check_kernel()
    port = args.port
    if port is None:
        port = 8888 if port_free(8888) else free_port()
    token = os.environ.get("LAB_TOKEN") or secrets.token_hex(24)
    cmd = lab_command(port, token, NOTEBOOKS, ip=args.ip, extra=extra)
    print(f"JupyterLab on {NOTEBOOKS.relative_to(REPO)}/ with kernel '{KERNEL_NAME}' "
          f"({spec['argv'][0]}, {kernel_dir()})\n"
          f"    open  {lab_url(port, token, ip=args.ip)}\n"
          f"    Ctrl-C stops it.", flush=True)
    os.execve(cmd[0], cmd, lab_env())
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
