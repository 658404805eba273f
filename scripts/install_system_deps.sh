#!/usr/bin/env bash
# System packages from Debian's archive (apt-get, when run as root; otherwise a message says what to
# install).
#   scripts/install_system_deps.sh            OSMesa, offscreen rendering for MuJoCo (every make setup)
#   scripts/install_system_deps.sh chromium   Chromium, the headless browser of make test-lab
set -uo pipefail

# apt_install WHAT PACKAGE...: install PACKAGE... (apt-get update once if the lists are stale)
apt_install() {
  local what=$1; shift
  if [ "$(id -u)" != "0" ]; then
    echo "NOTE: $what not found and not root: skipping 'apt-get install $*'."
    echo "      Install it yourself (sudo apt-get install $*)."
    return 1
  fi
  if ! command -v apt-get >/dev/null; then
    echo "NOTE: no apt-get here; install $what ($*) with your package manager."; return 1
  fi
  echo "installing $* ($what)..."
  apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$@" >/dev/null 2>&1; } \
    || { echo "WARNING: could not install $*."; return 1; }
}

case "${1:-osmesa}" in
  osmesa)
    if ldconfig -p 2>/dev/null | grep -q libOSMesa; then exit 0; fi
    apt_install "libOSMesa, offscreen rendering for MuJoCo" libosmesa6 \
      || echo "      Rendering tests will fail with a message naming libosmesa6, or use MUJOCO_GL=egl."
    exit 0 ;;
  chromium)
    if command -v chromium >/dev/null; then exit 0; fi
    apt_install "Chromium, the headless browser of make test-lab" chromium \
      || echo "      tests/test_lab_browser.py will fail with a message naming chromium."
    exit 0 ;;
  *) echo "usage: $0 [osmesa|chromium]" >&2; exit 2 ;;
esac
