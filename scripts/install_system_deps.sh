#!/usr/bin/env bash
# Installs the one system package the MuJoCo benchmark needs: OSMesa for offscreen rendering.
set -uo pipefail
if ldconfig -p 2>/dev/null | grep -q libOSMesa; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "NOTE: libOSMesa not found and not root: skipping 'apt-get install libosmesa6'."
  echo "      Install it yourself (sudo apt-get install libosmesa6) or use MUJOCO_GL=egl."
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "NOTE: no apt-get here; install OSMesa (libosmesa6) with your package manager."; exit 0
fi
echo "installing libosmesa6 (offscreen rendering for MuJoCo)..."
apt-get install -y -q libosmesa6 >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libosmesa6 >/dev/null 2>&1; } \
  || echo "WARNING: could not install libosmesa6; rendering tests will fail with a message naming it."
