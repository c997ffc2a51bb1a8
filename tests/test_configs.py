"""Every shipped config parses (`--print_config`) and says what its file name promises."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vidgn.training.cli import run_lightning_cli

REPO = Path(__file__).resolve().parents[1]
KINETICS_RUNS = sorted(p.name for p in (REPO / "configs/kinetics").glob("*_*f_*c.yaml"))
# The per-norm diffs of base.yaml (demo.yaml is the demo's task and recipe, composed by its grid).
SYNTHETIC_RUNS = sorted(p.name for p in (REPO / "configs/synthetic").glob("*.yaml")
                        if p.name not in ("base.yaml", "demo.yaml"))
GRIDS = sorted(p.name for p in (REPO / "configs/compare").glob("*.yaml"))


def print_config(capsys, *configs: Path) -> dict:
    args = ["fit"] + [a for c in configs for a in ("--config", str(c))] + ["--print_config"]
    with pytest.raises(SystemExit) as exit_info:
        run_lightning_cli(args)
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def test_the_six_table8_configs_exist():
    assert KINETICS_RUNS == [f"{n}_{v}.yaml" for n in ("bn", "gn") for v in ("32f_4c", "32f_8c", "64f_4c")]


@pytest.mark.parametrize("name", KINETICS_RUNS)
def test_kinetics_config(capsys, name):
    cfg = print_config(capsys, REPO / "configs/kinetics/base.yaml", REPO / "configs/kinetics" / name)
    norm, frames, clips = name[:-5].split("_")
    net = cfg["model"]["network"]["init_args"]
    assert cfg["model"]["network"]["class_path"] == "vidgn.models.I3DResNet"
    assert net["norm"] == norm and net["depth"] == 50 and net["pretrained_2d"].endswith(f"resnet50_{norm}_imagenet.pth")
    if norm == "gn":
        assert net["groups"] == 32
    data = cfg["data"]
    assert (data["num_frames"], data["sampling_rate"]) == ((32, 2) if frames == "32f" else (64, 1))
    assert data["clips_per_gpu"] == int(clips[:-1])
    assert cfg["trainer"]["devices"] == 8 and cfg["trainer"]["precision"] == "bf16-mixed"
    assert cfg["trainer"]["default_root_dir"].endswith(name[:-5])
    assert cfg["model"]["lr"] == 0.01 and cfg["model"]["lr_milestones"] == [0.375, 0.75]


@pytest.mark.parametrize("name", SYNTHETIC_RUNS)
def test_synthetic_config(capsys, name):
    cfg = print_config(capsys, REPO / "configs/synthetic/base.yaml", REPO / "configs/synthetic" / name)
    assert cfg["trainer"]["accelerator"] == "cpu"
    assert cfg["model"]["network"]["init_args"]["norm"] == name.split("_")[0].removesuffix(".yaml")


@pytest.mark.parametrize("name", GRIDS)
def test_shipped_grids_resolve_every_cell(capsys, name):
    """Every cell of every shipped grid parses (configs, overrides, emulation) without running."""
    from vidgn.cli import main

    assert main(["compare", str(REPO / "configs/compare" / name), "--dry-run", "--output-dir", "/nonexistent"]) == 0
    out = capsys.readouterr().out
    assert "cannot run" not in out and "vidgn fit --config" in out


def test_vidgn_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "vidgn.cli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0
    for name in ("fit", "validate", "test", "predict", "make-synthetic", "prepare-kinetics", "check-videos",
                 "bench", "summarize", "compare"):
        assert name in out.stdout, name


@pytest.mark.parametrize("sub", ["make-synthetic", "prepare-kinetics", "check-videos", "bench", "summarize",
                                 "compare", "fit", "test"])
def test_each_subcommand_has_help(sub):
    out = subprocess.run([sys.executable, "-m", "vidgn.cli", sub, "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower()


def test_lightning_sync_batchnorm_is_refused_in_favour_of_norm_sync_bn():
    args = ["fit", "--config", str(REPO / "configs/synthetic/base.yaml"), "--trainer.sync_batchnorm", "true",
            "--data.data_root", str(REPO), "--data.train_list", "none.txt"]
    with pytest.raises(ValueError, match="norm: sync_bn"):
        run_lightning_cli(args)


def test_print_config_lists_the_loggers_and_callbacks(capsys):
    cfg = print_config(capsys, REPO / "configs/synthetic/base.yaml", REPO / "configs/synthetic/gn.yaml")
    loggers = cfg["trainer"]["logger"]
    assert [lg["class_path"] for lg in loggers] == ["vidgn.training.loggers.RunDirTensorBoardLogger",
                                                     "vidgn.training.loggers.AppendingCSVLogger"]
    for lg in loggers:  # save_dir None: the run directory (trainer.default_root_dir), no nesting
        assert lg["init_args"]["save_dir"] is None
        assert lg["init_args"]["name"] == "" and lg["init_args"]["version"] == ""
    callbacks = [c["class_path"] for c in cfg["trainer"]["callbacks"]]
    assert callbacks == ["lightning.pytorch.callbacks.RichProgressBar",
                         "lightning.pytorch.callbacks.LearningRateMonitor"]
    assert cfg["trainer"]["callbacks"][1]["init_args"]["logging_interval"] == "step"
    # the callbacks every run needs have sections of their own
    assert cfg["checkpoint"]["monitor"] == "val/top1" and "num_batches" in cfg["precise_bn"]
    assert cfg["bad_videos"] == {"warn": True} and cfg["preemption"] == {"sigusr1": True, "ctrl_c": True}


def test_a_config_listing_callbacks_keeps_the_ones_every_run_needs(tmp_path):
    trainer = built_trainer(tmp_path, "--trainer.callbacks", "lightning.pytorch.callbacks.EarlyStopping",
                            "--trainer.callbacks.monitor", "val/loss")
    names = {type(c).__name__ for c in trainer.callbacks}
    assert {"EarlyStopping", "RunCheckpoint", "PreciseBN", "BadVideoLogger", "PreemptionCheckpoint"} <= names


def built_trainer(tmp_path, *overrides: str):
    """The Trainer `vidgn fit` would build for the synthetic GN config in run directory tmp_path/run."""
    from vidgn.data.datamodule import VideoDataModule
    from vidgn.training.cli import VidgnCLI
    from vidgn.training.module import VideoClassifier

    (tmp_path / "classes.txt").write_text("a\nb\n")
    args = ["--config", str(REPO / "configs/synthetic/base.yaml"), "--config", str(REPO / "configs/synthetic/gn.yaml"),
            "--trainer.default_root_dir", str(tmp_path / "run"), "--data.classes_file", str(tmp_path / "classes.txt"),
            *overrides]
    return VidgnCLI(VideoClassifier, VideoDataModule, args=args, run=False).trainer


def test_default_loggers_write_straight_into_the_run_directory(tmp_path):
    from lightning.pytorch.callbacks import ProgressBar

    trainer = built_trainer(tmp_path)
    run_dir = str(tmp_path / "run")
    assert [type(lg).__name__ for lg in trainer.loggers] == ["RunDirTensorBoardLogger", "AppendingCSVLogger"]
    assert all(lg.save_dir == run_dir and os.path.normpath(lg.log_dir) == run_dir for lg in trainer.loggers)
    assert os.path.normpath(trainer.log_dir) == run_dir
    assert any(isinstance(c, ProgressBar) for c in trainer.callbacks)


def test_logging_and_progress_bar_can_be_switched_off_or_replaced(tmp_path):
    from lightning.pytorch.callbacks import ProgressBar
    from lightning.pytorch.loggers import CSVLogger

    trainer = built_trainer(tmp_path, "--trainer.logger", "false", "--trainer.enable_progress_bar", "false")
    assert trainer.loggers == [] and trainer.progress_bar_callback is None
    assert not any(isinstance(c, ProgressBar) for c in trainer.callbacks)
    names = {type(c).__name__ for c in trainer.callbacks}
    assert {"BadVideoLogger", "PreemptionCheckpoint", "LearningRateMonitor"} <= names
    trainer = built_trainer(tmp_path, "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
                            "--trainer.logger.save_dir", str(tmp_path / "elsewhere"))
    assert [type(lg) for lg in trainer.loggers] == [CSVLogger]
    assert trainer.loggers[0].save_dir == str(tmp_path / "elsewhere")
