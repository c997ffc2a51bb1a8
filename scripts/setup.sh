#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install vidgn into it.
# Sourced by demo.sh and test.sh; safe to run on its own. Re-installs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "vidgn needs Python >= 3.10 (found: $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.1x" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.vidgn-install-stamp
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    # torch/torchvision come from the registry's standard builds (CUDA wheels, which also run on CPU):
    # no CPU-only torchvision build exists there that loads against a CPU-only torch.
    echo "[setup] installing vidgn and its dependencies into .venv (first time: a few minutes, ~5 GB)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$want" > "$stamp"
fi
