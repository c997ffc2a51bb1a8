"""`import vidgn` sets libgomp's spin count before torch loads it, so that two torch processes on
the same cores do not starve each other (measured 200x slower steps without it: vidgn/__init__.py),
and leaves a value the user set alone."""

import os
import subprocess
import sys

CODE = "import vidgn, torch, os; print(os.environ['GOMP_SPINCOUNT'], torch.get_num_threads() >= 1)"


def _run(env_extra: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"} | env_extra
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True,
                          check=True, timeout=120).stdout.split()


def test_vidgn_sets_a_short_openmp_spin_before_torch_and_a_users_value_wins():
    assert _run({}) == ["1000", "True"]
    assert _run({"GOMP_SPINCOUNT": "300000"}) == ["300000", "True"]
