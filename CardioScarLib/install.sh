#!/usr/bin/env bash
# Create (or update) the virtual environment .venv at the repository root and install CardioScar.
#
#   bash CardioScarLib/install.sh          # the library and the `cardioscar` command
#   bash CardioScarLib/install.sh --test   # plus what the test suite needs (pytest, slicer-core, EGL)
#
# Environment:
#   CARDIOSCAR_VENV   where to create the environment (default: <repo>/.venv)
#   TORCH_SPEC        the torch requirement (default torch==2.13.0, the release we test with)
#   TORCH_INDEX_URL   e.g. https://download.pytorch.org/whl/cpu for a small CPU-only torch
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CARDIOSCAR_VENV:-$repo/.venv}"
with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

# slicer-core (the real MRML library used by the Slicer tests) ships wheels for CPython 3.11 only.
pick_python() {
    if [ "$with_tests" = 1 ]; then
        for candidate in python3.11 python3; do
            if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
                echo "$candidate"; return
            fi
        done
        echo "install.sh: the test suite needs Python 3.11 (slicer-core has wheels for 3.11 only); install python3.11" >&2
        exit 1
    fi
    # 3.11 first where it exists: the same .venv then serves the tests later
    for candidate in python3.11 python3 python3.12 python3.10 python3.9; do
        if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
            echo "$candidate"; return
        fi
    done
    echo "install.sh: CardioScar needs Python >= 3.9" >&2
    exit 1
}

python_bin="$(pick_python)"
if [ "$with_tests" = 1 ] && [ -f "$venv/pyvenv.cfg" ] && [ -x "$venv/bin/python" ] \
        && ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "install.sh: $venv has Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'); the tests need 3.11: making it again" >&2
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    "$python_bin" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    torch_args=("${TORCH_SPEC:-torch==2.13.0}")
    [ -n "${TORCH_INDEX_URL:-}" ] && torch_args+=(--index-url "$TORCH_INDEX_URL")
    "${pip[@]}" "${torch_args[@]}"
fi

if [ "$with_tests" = 1 ]; then
    # vtk is pinned to the build slicer-core was compiled against; a newer vtk breaks `import slicer`.
    "${pip[@]}" -e "$repo/CardioScarLib[test]" "vtk==9.6.2" "slicer-core==5.13.31053.0"
    # Offscreen rendering of Slicer's 3D view uses EGL with Mesa's software renderer.
    missing=()
    for package in libegl1 libegl-mesa0 libgl1-mesa-dri; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        else
            echo "install.sh: offscreen rendering needs: sudo apt-get install ${missing[*]}" >&2
            exit 1
        fi
    fi
else
    "${pip[@]}" -e "$repo/CardioScarLib"
fi
echo "CardioScar installed in $venv ($("$venv/bin/cardioscar" --version))"
