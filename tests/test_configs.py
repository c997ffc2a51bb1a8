"""Every shipped config parses (`--print_config`) and says what its file name promises."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vidgn.training.cli import run_lightning_cli

REPO = Path(__file__).resolve().parents[1]
KINETICS_RUNS = sorted(p.name for p in (REPO / "configs/kinetics").glob("*_*f_*c.yaml"))
SYNTHETIC_RUNS = sorted(p.name for p in (REPO / "configs/synthetic").glob("*.yaml") if p.name != "base.yaml")


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


def test_vidgn_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "vidgn.cli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0
    for name in ("fit", "validate", "test", "predict", "make-synthetic", "prepare-kinetics", "check-videos",
                 "bench", "summarize"):
        assert name in out.stdout, name


@pytest.mark.parametrize("sub", ["make-synthetic", "prepare-kinetics", "check-videos", "bench", "summarize", "fit", "test"])
def test_each_subcommand_has_help(sub):
    out = subprocess.run([sys.executable, "-m", "vidgn.cli", sub, "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower()


def test_lightning_sync_batchnorm_is_refused_in_favour_of_norm_sync_bn():
    args = ["fit", "--config", str(REPO / "configs/synthetic/base.yaml"), "--trainer.sync_batchnorm", "true",
            "--data.data_root", str(REPO), "--data.train_list", "none.txt"]
    with pytest.raises(ValueError, match="norm: sync_bn"):
        run_lightning_cli(args)
