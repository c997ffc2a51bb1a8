"""Run the cells of a grid: each cell x seed through `vidgn fit` then `vidgn test`, in its own run
directory, exactly as a user would run them (same code, same files), with the output in
RUN_DIR/fit.log and RUN_DIR/test.log.

A finished cell (it has test_summary.json) is skipped; an interrupted one resumes from
checkpoints/last.ckpt; a failed one is reported with its error and log, and the others still run.
Launchers: `local` (one after the other, here), `slurm` (one submitit job per cell, resubmitted
after preemption, which saves last.ckpt), `submitit-local` (submitit's local executor: the slurm
path without a cluster, used by the tests).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vidgn.comparison.plan import Run

EXIT_PARTIAL = 3  # `vidgn test` left out more than data.max_bad_fraction: done, but marked partial


@dataclass
class Outcome:
    status: str  # done | failed | missing
    error: str | None = None
    seconds: float = 0.0
    stale: bool = False  # the run directory holds a run of another config: its results are not this cell's


def run_command(args: list[str], log_path: Path) -> int:
    """`vidgn ARGS` in a fresh process, output appended to log_path; returns the exit status."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ vidgn {' '.join(args)}\n")
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "vidgn.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                                env=env)
        try:
            return proc.wait()
        except KeyboardInterrupt:  # the child got the Ctrl-C too: let it save last.ckpt and stop
            proc.wait()
            raise
        except BaseException:  # anything else stops this process: never leave the run going alone
            _stop(proc)
            raise


def _stop(proc: subprocess.Popen, grace_s: float = 60.0) -> None:
    """SIGTERM (a fit saves last.ckpt on it, so the cell resumes), then SIGKILL after `grace_s`."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def last_error(log_path: Path) -> str:
    """The `vidgn ...: error:` line of a log, else its last non-empty line."""
    lines = [ln.strip() for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ": error:" in ln or ln.startswith(("Error", "RuntimeError", "ValueError"))]
    return (errors or lines or ["(empty log)"])[-1][:500]


KEY_FILE = "compare_config_key.txt"


def check_config_key(run: Run, write: bool = True) -> str | None:
    """Tie the run directory to the cell's resolved config: a finished or interrupted run of another
    config (an earlier --set, an edited grid) is never reported or resumed as this cell."""
    path = run.run_dir / KEY_FILE
    if path.is_file() and path.read_text().strip() != run.config_key:
        return (f"{run.run_dir} holds a run of another config (the grid or --set changed since it ran): use another "
                "--output-dir, or move that run away")
    if write:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(run.config_key + "\n")
    return None


def fit_args(run: Run) -> list[str]:
    """`fit` arguments that resume an interrupted run and move a failed first attempt aside."""
    from vidgn.training.runs import earlier_run_files

    fit = ["fit", *run.args]
    if (run.run_dir / "checkpoints" / "last.ckpt").is_file():
        return fit + ["--ckpt_path", "last"]  # interrupted (or fitted, not tested): resume; a no-op when done
    if earlier_run_files(run.run_dir):
        return fit + ["--start_over", "true"]  # failed before its first checkpoint: moved aside, not deleted
    return fit


def fit_and_test(run: Run) -> Outcome:
    """Fit (or resume, or skip if finished) and test one run, in this process's child processes."""
    start = time.monotonic()
    stale = check_config_key(run)
    if stale:
        return Outcome("failed", stale, stale=True)
    if (run.run_dir / "test_summary.json").is_file():
        return Outcome("done")
    if run_command(fit_args(run), run.run_dir / "fit.log") != 0:
        return Outcome("failed", f"fit: {last_error(run.run_dir / 'fit.log')}", time.monotonic() - start)
    rc = run_command(["test", *run.args, "--ckpt_path", "last"], run.run_dir / "test.log")
    if rc not in (0, EXIT_PARTIAL):
        return Outcome("failed", f"test: {last_error(run.run_dir / 'test.log')}", time.monotonic() - start)
    return Outcome("done", seconds=time.monotonic() - start)


class SubmititCell:
    """A submitit job for one run; on preemption or timeout it is requeued and resumes from last.ckpt.

    Under SLURM every task of the job runs this (Lightning reads the SLURM environment for DDP), so
    fit and test run in-process here rather than in child processes.
    """

    def __init__(self, run: Run):
        self.run = run

    def __call__(self) -> Outcome:
        from vidgn.cli import main

        run = self.run
        start = time.monotonic()
        stale = check_config_key(run)
        if stale:
            return Outcome("failed", stale, stale=True)
        if not (run.run_dir / "test_summary.json").is_file():
            if main(fit_args(run)) != 0:
                return Outcome("failed", "fit failed: see the job's log", time.monotonic() - start)
            if main(["test", *run.args, "--ckpt_path", "last"]) not in (0, EXIT_PARTIAL):
                return Outcome("failed", "test failed: see the job's log", time.monotonic() - start)
        return Outcome("done", seconds=time.monotonic() - start)

    def checkpoint(self):  # submitit calls this on preemption/timeout: requeue the same job
        import submitit

        return submitit.helpers.DelayedSubmission(SubmititCell(self.run))


def submit(runs: list[Run], output_dir: Path, cluster: str | None, say) -> dict[int, Outcome]:
    """Submit every run as a submitit job (SLURM, or `local`), wait, return {index: outcome}."""
    import submitit

    executor = submitit.AutoExecutor(folder=output_dir / ".submitit" / "%j", cluster=cluster)
    jobs = {}
    for i, run in enumerate(runs):
        config_devices, nodes = _devices(run)
        params = dict(name=f"vidgn-{run.cell.name}-seed{run.seed}", timeout_min=60 * 24)
        if executor.cluster == "slurm":
            params.update(slurm_additional_parameters={"requeue": True}, nodes=nodes,
                          tasks_per_node=config_devices, gpus_per_node=config_devices, slurm_signal_delay_s=120)
        executor.update_parameters(**params)
        jobs[i] = executor.submit(SubmititCell(run))
        say(f"{run.cell.name} seed{run.seed}: submitted as job {jobs[i].job_id}")
    outcomes = {}
    for i, job in jobs.items():
        try:
            outcomes[i] = job.result()
        except Exception as e:  # the job itself died: report it, keep waiting for the others
            outcomes[i] = Outcome("failed", f"job {job.job_id}: {type(e).__name__}: {str(e)[-300:]}")
    return outcomes


def _devices(run: Run) -> tuple[int, int]:
    """(devices per node, nodes) the run's config asks for, for the SLURM request."""
    from vidgn.comparison.resolve import resolve_config

    config, _ = resolve_config(run.args)
    devices = config.trainer.devices
    return (devices if isinstance(devices, int) and devices > 0 else 1), int(config.trainer.num_nodes or 1)
