#!/usr/bin/env bash
# Build the separate environment a real policy needs (docs/serving.md):
#   scripts/policy_env.sh octo [OCTO_SRC]    -> .policy-envs/octo (Python 3.10, envs/octo.txt)
#   scripts/policy_env.sh rt1x               -> .policy-envs/rt1x (Python 3.10, envs/rt1x.txt)
#   scripts/policy_env.sh openvla            -> .policy-envs/openvla (Python 3.10, envs/openvla.txt)
# OCTO_SRC: octo's source (default ../shared/external/octo; or your clone of octo-models/octo).
# The environment sees this repository through a .pth file, for vgps_server only (stdlib + numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
POLICY="${1:?usage: scripts/policy_env.sh octo|rt1x|openvla [OCTO_SRC]}"
ENV_DIR=".policy-envs/$POLICY"
find_py310() {
  for c in "${PYTHON310:-}" python3.10 "$(pyenv root 2>/dev/null)/versions/3.10.13/bin/python" \
           /root/.pyenv/versions/3.10.13/bin/python; do
    [ -n "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null \
      && { command -v "$c" || echo "$c"; return 0; }
  done
  echo "ERROR: Python 3.10 not found (set PYTHON310=/path/to/python3.10)" >&2; return 1
}
# build() REQS [EXTRA_SOURCE]: a fresh venv with REQS (and EXTRA_SOURCE --no-deps), unless built
build() {
  local reqs="$1" extra="${2:-}" stamp="$ENV_DIR/.built"
  if [ ! -f "$stamp" ] || [ "$reqs" -nt "$stamp" ]; then
    local py310; py310="$(find_py310)"
    rm -rf "$ENV_DIR"
    "$py310" -m venv "$ENV_DIR"
    .venv/bin/uv pip install -q -p "$ENV_DIR/bin/python" -r "$reqs"
    [ -z "$extra" ] || .venv/bin/uv pip install -q -p "$ENV_DIR/bin/python" --no-deps "$extra"
    "$ENV_DIR/bin/python" -c 'import site; print(site.getsitepackages()[0])' \
      | xargs -I{} sh -c "echo '$PWD' > {}/vgps_server.pth"
    touch "$stamp"
  fi
  echo "$ENV_DIR/bin/python"
}
case "$POLICY" in
  octo)
    SRC="${2:-${OCTO_SRC:-../shared/external/octo}}"
    [ -f "$SRC/octo/model/octo_model.py" ] || { echo "ERROR: no octo source at $SRC (set OCTO_SRC)" >&2; exit 1; }
    build envs/octo.txt "$SRC" ;;
  rt1x) build envs/rt1x.txt ;;
  openvla) build envs/openvla.txt ;;
  *) echo "ERROR: unknown policy '$POLICY' (available: octo, rt1x, openvla)" >&2; exit 1 ;;
esac
