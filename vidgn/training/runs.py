"""Run directories and the checks made on a run's config before anything is built.

A run directory (`trainer.default_root_dir`) holds one run: its config, logs, `checkpoints/` and
reports. `vidgn fit` refuses a directory that holds an earlier run unless it resumes it
(`--ckpt_path last`) or is told to start over (`--start_over true`, which moves the earlier files
aside, never deletes them). `vidgn test|validate|predict` must say which checkpoint they score:
`last` (the newest state), `best` (the best by validation) or a file.

A directory holding only the leftovers of a fit that never trained a step (config, hparams,
TensorBoard events with nothing but the hyperparameters, see `never_trained`) is no run: a fit that
failed its first checks must not block the corrected rerun. Those leftovers are moved aside too.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("vidgn.training")

LAST = "last.ckpt"


class RunDirError(ValueError):
    """A run directory or checkpoint choice that would mix or misreport runs; says what to do."""


def run_dir(config: Any) -> Path:
    return Path(config.trainer.get("default_root_dir") or os.getcwd())


def checkpoint_dir(config: Any) -> Path:
    dirpath = config.get("checkpoint.dirpath") if "checkpoint" in config else None
    return Path(dirpath) if dirpath else run_dir(config) / "checkpoints"


def earlier_run_files(root: Path) -> list[Path]:
    """The files of an earlier run in `root`: checkpoints, metrics, TensorBoard events, reports."""
    if not root.is_dir():
        return []
    found = sorted((root / "checkpoints").glob("*.ckpt")) if (root / "checkpoints").is_dir() else []
    for pattern in ("metrics.csv", "events.out.tfevents.*", "*_summary.json", "*_predictions.csv"):
        found += sorted(root.glob(pattern))
    return found


# What a fit logs before its first step has trained: TensorBoard's hyperparameter records (and its
# hp_metric placeholder), and the learning rate, which LearningRateMonitor logs at the *start* of a
# step. Any other value (loss, accuracy, validation scores, ...) means a step or an epoch finished.
_SETUP_TAGS = ("hp_metric", "_hparams_/")
_LR_PREFIX = "lr-"
_CSV_INDEX_COLUMNS = ("step", "epoch")


def never_trained(files: list[Path]) -> bool:
    """Whether `files` (earlier_run_files of a run directory) are only what a fit writes before it has
    trained a step: no checkpoint, no evaluation report, metrics.csv without a trained value and
    TensorBoard events holding nothing but the hyperparameters and learning rates. Unreadable files
    count as a run (nothing is moved on a guess)."""
    for path in files:
        try:
            if path.name == "metrics.csv":
                if _csv_has_training_values(path):
                    return False
            elif path.name.startswith("events.out.tfevents."):
                if _events_have_training_values(path):
                    return False
            else:  # checkpoints, *_summary.json, *_predictions.csv
                return False
        except Exception:  # noqa: BLE001 - unreadable or unparsable: treat it as a real run
            return False
    return True


def _is_training_value(tag: str) -> bool:
    return not tag.startswith(_SETUP_TAGS) and not tag.startswith(_LR_PREFIX) and tag not in _CSV_INDEX_COLUMNS


def _csv_has_training_values(path: Path) -> bool:
    import csv

    with path.open(newline="", encoding="utf-8") as f:
        return any(value not in (None, "") and _is_training_value(column)
                   for row in csv.DictReader(f) for column, value in row.items() if column is not None)


def _events_have_training_values(path: Path) -> bool:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return any(_is_training_value(value.tag) for event in EventFileLoader(str(path)).Load()
               for value in event.summary.value)


def _move_aside(root: Path, earlier: list[Path]) -> Path:
    """Move an earlier run's files (checkpoints, logs, configs, reports) into root/replaced-<time>/."""
    aside = root / time.strftime("replaced-%Y%m%d-%H%M%S")
    aside.mkdir()
    for path in [root / "checkpoints", *(p for p in earlier if p.parent == root),
                 *(root / n for n in ("config.yaml", "config_test.yaml", "config_validate.yaml",
                                      "config_predict.yaml", "hparams.yaml"))]:
        if path.exists():
            shutil.move(str(path), str(aside / path.name))
    return aside


def _launched_child() -> bool:
    # Lightning's DDP launcher re-runs the command in child processes (LOCAL_RANK >= 1) once rank 0
    # has started writing; the checks are rank 0's (and every rank's under SLURM/torchrun alike).
    return any(int(os.environ.get(v, "0") or 0) > 0 for v in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"))


def check_run_dir(config: Any) -> None:
    """`vidgn fit`: refuse a run directory holding an earlier run unless resuming or starting over."""
    if _launched_child():
        return
    root = run_dir(config)
    earlier = earlier_run_files(root)
    if not earlier:
        return
    ckpt = config.get("ckpt_path")
    last = checkpoint_dir(config) / LAST
    if ckpt == "last" and last.is_file():
        return  # resuming this run
    if ckpt not in (None, "last") and Path(ckpt).resolve().parent == checkpoint_dir(config).resolve():
        return  # resuming from one of its own checkpoints
    if config.get("start_over"):
        aside = _move_aside(root, earlier)
        log.warning("--start_over: moved the earlier run in %s to %s", root, aside)
        return
    if ckpt != "last" and never_trained(earlier):
        # A fit that failed before its first step (a check, a crash at start-up): nothing to resume,
        # and its events must not mix with this run's in TensorBoard. Moved, not deleted.
        aside = _move_aside(root, earlier)
        log.warning("run directory %s held only the leftovers of a fit that never trained a step; "
                    "moved them to %s", root, aside)
        return
    shown = ", ".join(str(p.relative_to(root)) for p in earlier[:4]) + (" ..." if len(earlier) > 4 else "")
    resume = ("Resume it with --ckpt_path last, pick" if last.is_file()
              else f"It has no {last} to resume from (--ckpt_path last would start a second run in it). Pick")
    raise RunDirError(
        f"run directory {root} already holds a run ({shown}). {resume} a new --trainer.default_root_dir, or "
        "start afresh there with --start_over true (the earlier files are moved into a replaced-<time>/ "
        "folder, not deleted).")


def resolve_checkpoint(config: Any, subcommand: str) -> Path:
    """The checkpoint file `vidgn test|validate|predict` scores: `--ckpt_path` last, best or a file."""
    ckpt = config.get("ckpt_path")
    folder = checkpoint_dir(config)
    if ckpt is None:
        raise RunDirError(
            f"vidgn {subcommand} needs the checkpoint to score: --ckpt_path last (the final state of the run "
            f"in {run_dir(config)}), --ckpt_path best (its best checkpoint by validation) or --ckpt_path FILE. "
            "Without one it would score a randomly initialised network.")
    if ckpt not in ("last", "best"):
        path = Path(ckpt)
        if not path.is_file():
            raise RunDirError(f"--ckpt_path {ckpt}: no such file" + (" (it is a directory)" if path.is_dir() else ""))
        return path
    last = folder / LAST
    if not last.is_file():
        raise RunDirError(f"--ckpt_path {ckpt}: {last} not found; is {run_dir(config)} the run directory of a "
                          "finished `vidgn fit` (--trainer.default_root_dir)?")
    if ckpt == "last":
        return last
    best = best_checkpoint(last)
    if best is None or not best.is_file():
        missing = f" ({best} is missing)" if best else ""
        raise RunDirError(f"--ckpt_path best: {last} names no best checkpoint{missing}; "
                          "was the run validated (data.val_list)? Score --ckpt_path last instead.")
    return best


def best_checkpoint(last: Path) -> Path | None:
    """The best-by-validation checkpoint that the run's checkpoint callback recorded in `last`."""
    import torch

    state = torch.load(last, map_location="cpu", mmap=True, weights_only=False)
    for key, value in (state.get("callbacks") or {}).items():
        if "Checkpoint" in str(key) and isinstance(value, dict) and value.get("best_model_path"):
            best = Path(value["best_model_path"])
            return best if best.is_file() else last.parent / best.name  # the run directory may have moved
    return None


def check_bn_clips(config: Any) -> None:
    """BN over groups of bn_clips clips needs whole groups in every training batch: checked here,
    when the config is read, instead of crashing mid-epoch on a short batch."""
    bn_clips = config.get("model.network.init_args.bn_clips") if "model" in config else None
    if not bn_clips or "data" not in config:
        return
    clips = config.data.clips_per_gpu
    if clips % bn_clips:
        raise ValueError(f"model.network.init_args.bn_clips={bn_clips} does not divide data.clips_per_gpu={clips}: "
                         "BN statistics come from groups of bn_clips clips of each batch; make clips_per_gpu a "
                         "multiple of bn_clips")
    if not config.data.drop_last_train:
        log.warning("bn_clips=%d: data.drop_last_train forced to true (a short last batch cannot be split "
                    "into groups of %d clips)", bn_clips, bn_clips)
        config.data.drop_last_train = True
