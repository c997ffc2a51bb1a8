"""scripts/setup.sh, the first half of both README commands: a disk too small for torch is said up
front, not found by pip halfway through ("[Errno 28] No space left on device", a half-installed .venv)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_setup_refuses_a_disk_without_room_for_torch_before_installing(tmp_path):
    # A copy of the scripts and project file: setup.sh works from the folder above scripts/.
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # More than any disk has: the check must trip whatever this machine's free space is.
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "VIDGN_SETUP_NEED_MB": str(10**12)}
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not enough disk space for .venv" in done.stderr
    assert "MB free" in done.stderr and "VIDGN_SETUP_NEED_MB=0" in done.stderr
    # Refused before pip ran: no stamp, no torch, so a rerun with space installs everything.
    assert not (tmp_path / ".venv" / ".vidgn-install-stamp").exists()
    assert not list((tmp_path / ".venv").glob("lib/python*/site-packages/torch"))
