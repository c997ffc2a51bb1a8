"""The loggers of a vidgn run: TensorBoard events and metrics.csv straight in the run directory.

Both default to `save_dir=None`, meaning the trainer's `default_root_dir` (the run directory), which
VidgnCLI fills in before it builds the Trainer (`use_run_dir`), and to `name=""`, `version=""`, so
that nothing is nested under lightning_logs/version_N: `--ckpt_path last`, metrics.csv and the
reports always live at predictable paths. Outside VidgnCLI, None means the current directory (the
Trainer's own default root).

Lightning's CSVLogger removes an existing metrics.csv when it starts. In vidgn the run directory is
stable (resume with `--ckpt_path last`, then `vidgn test` in the same place), so earlier metrics must
survive: AppendingCSVLogger keeps the file and its columns and appends.
"""
from __future__ import annotations

import csv
import os
from typing import Any, Optional, Union

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _RunDir:
    """`save_dir=None` means the run directory, set by `use_run_dir` before anything is logged."""

    def __init__(self, save_dir: Optional[_PATH] = None, name: Optional[str] = "",
                 version: Optional[Union[int, str]] = "", **kwargs: Any):
        super().__init__(os.getcwd() if save_dir is None else save_dir, name=name, version=version, **kwargs)
        self.follows_run_dir = save_dir is None

    def use_run_dir(self, run_dir: _PATH) -> None:
        """Log into `run_dir` if no save_dir was given."""
        if self.follows_run_dir:
            self._root_dir = self._save_dir = os.fspath(run_dir)  # TensorBoard reads the 1st, CSV both
            self._fs = get_filesystem(run_dir)


class RunDirTensorBoardLogger(_RunDir, TensorBoardLogger):
    """TensorBoardLogger writing into the run directory (`save_dir=None`: the trainer's default_root_dir)."""


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys = sorted(set(self.metrics_keys) | set(header))


class AppendingCSVLogger(_RunDir, CSVLogger):
    """CSVLogger appending to the run directory's metrics.csv (`save_dir=None`: the trainer's default_root_dir)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def use_run_dir(loggers: Any, run_dir: _PATH) -> None:
    """Point the loggers among `loggers` (a Trainer's `logger` argument) that have no save_dir at `run_dir`."""
    for logger in loggers if isinstance(loggers, (list, tuple)) else [loggers]:
        if isinstance(logger, _RunDir):
            logger.use_run_dir(run_dir)
