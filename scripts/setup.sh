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
    echo "[setup] installing vidgn and its dependencies into .venv (first time: a few minutes, ~6 GB)"
    # The first install writes ~6.2 GB (torch's CUDA build and its libraries, measured on x86_64)
    # plus pip's temporary files: check the space first, because pip out of space fails halfway
    # with "[Errno 28] No space left on device" and leaves .venv half-installed.
    if ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
        need_mb=${VIDGN_SETUP_NEED_MB:-7000}
        free_mb=$(df -Pm .venv | awk 'NR==2 {print $4}')
        tmp_free_mb=$(df -Pm "${TMPDIR:-/tmp}" | awk 'NR==2 {print $4}')
        if [ "$free_mb" -lt "$need_mb" ]; then
            echo "[setup] not enough disk space for .venv: $free_mb MB free on the disk of $(pwd)/.venv," \
                 "about $need_mb MB needed for torch and its CUDA libraries. Free some space" \
                 "(old clones' .venv folders, /tmp/pytest-of-$(id -un)) and rerun;" \
                 "VIDGN_SETUP_NEED_MB=0 skips this check" >&2
            exit 1
        fi
        if [ "$tmp_free_mb" -lt 1000 ]; then
            echo "[setup] only $tmp_free_mb MB free in ${TMPDIR:-/tmp} (pip unpacks there):" \
                 "free some space or set TMPDIR to a folder on a larger disk" >&2
            exit 1
        fi
    fi
    .venv/bin/python -m pip install -q --upgrade pip
    # decord 0.6 (distribution "decord", no AV1) and decord2 (its maintained fork, our decoder) own
    # the same `decord` import and pip does not know they clash: installed together, each
    # overwrites or, when uninstalled, deletes the other's files. A .venv made before the switch has
    # decord 0.6: remove it, and decord2 with it in case both are there (its files may be gone),
    # so that the install below puts decord2 in alone.
    if .venv/bin/python -m pip show decord >/dev/null 2>&1; then
        echo "[setup] removing decord 0.6 from .venv (replaced by decord2, same decord import)"
        .venv/bin/python -m pip uninstall -q -y decord decord2
    fi
    .venv/bin/python -m pip install -q -e '.[dev]'
    if .venv/bin/python -m pip show decord >/dev/null 2>&1; then
        echo "[setup] decord 0.6 is installed in .venv beside decord2 (something depends on it):" \
             "uninstall it (.venv/bin/python -m pip uninstall decord decord2) and rerun this script" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
