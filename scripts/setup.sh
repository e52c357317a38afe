#!/usr/bin/env bash
# Sets up rewardkit in ./.venv: finds Python >= 3.12, creates the virtual environment, installs the
# package with its test and simulation extras and the system packages the tests need. Idempotent: a
# second run only re-checks (the stamp file records what the install was made from).
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."

find_python() {
  for cand in python3.13 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  # pyenv installs that are not the active version
  for cand in "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 /usr/local/bin/python3.12 /usr/bin/python3.12; do
    if [ -x "$cand" ] && "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  return 1
}

# System packages: ffmpeg libraries come with PyAV/torchcodec wheels; EGL/OSMesa for offscreen MuJoCo,
# Chromium for the HTML-report test. Installed only when missing and when we may (root + apt).
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# FFmpeg shared libraries let torchcodec (lerobot's default decoder) load instead of falling back to PyAV.
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
[ -e /usr/lib/x86_64-linux-gnu/libEGL.so.1 ] || need_apt+=(libegl1)
[ -e /usr/lib/x86_64-linux-gnu/libOpenGL.so.0 ] || need_apt+=(libopengl0)
[ -e /usr/lib/x86_64-linux-gnu/libGL.so.1 ] || need_apt+=(libgl1)
[ -e /usr/lib/x86_64-linux-gnu/libEGL_mesa.so.0 ] || need_apt+=(libegl-mesa0)
if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "setup: installing system packages: ${need_apt[*]}" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null) \
    || echo "setup: warning: could not install ${need_apt[*]}; the tests that need them are skipped" >&2
fi

PY=$(find_python) || { echo "setup: Python >= 3.12 not found (tried python3.12, python3, ~/.pyenv/versions)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.rewardkit-installed
want=$(cat pyproject.toml plugins/*/pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing rewardkit and its dependencies into .venv (first time: a few minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  extras_args=(-e ".[dev,sim,distributed]")
  for plugin in plugins/*/; do
    [ -f "$plugin/pyproject.toml" ] && extras_args+=(-e "$plugin")
  done
  .venv/bin/python -m pip install -q "${extras_args[@]}"
  echo "$want" > "$stamp"
fi
