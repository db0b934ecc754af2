#!/usr/bin/env bash
# Create ./.venv and install vot_lorat with every dependency. Safe to run again: it returns at once
# when nothing changed. PYTHON=python3.x picks the interpreter. `./install.sh --check` installs nothing: it
# exits 1 when .venv is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
stamp=.venv/.vot_lorat_installed
# what the install is made from: the package metadata
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
if [ "${1:-}" = --check ]; then
    echo "install.sh: .venv is missing or out of date: run ./install.sh" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
echo "install.sh: installing into .venv (torch + torchvision first, from the registry, as a matching pair)"
.venv/bin/python -m pip install -q torch torchvision
.venv/bin/python -m pip install -q -e ".[dev]"
# The registry's "trax" is an unrelated library that would shadow vot-trax's TraX module.
if .venv/bin/python -m pip show -q trax >/dev/null 2>&1; then
    echo "install.sh: the unrelated 'trax' package is installed and hides vot-trax; run: .venv/bin/pip uninstall trax" >&2
    exit 1
fi
.venv/bin/python -c "import torch, torchvision, timm, trax, vot, cv2, segment_anything, vot_lorat" \
    || { echo "install.sh: the installed packages do not import; see the error above" >&2; exit 1; }
echo "$want" > "$stamp"
echo "install.sh: done ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
