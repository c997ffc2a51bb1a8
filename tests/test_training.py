"""End-to-end runs of `vidgn fit/test` on tiny synthetic videos (CPU)."""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import ctrl_c_as_in_a_terminal
from vidgn.training.cli import run_lightning_cli
from vidgn.training.module import NonFiniteLossError

REPO = Path(__file__).resolve().parents[1]
BASE = ["--config", str(REPO / "configs/synthetic/base.yaml")]
CLIPS = 4  # clips per process in these tests


def run_args(ds, root: Path, epochs: int = 2, norm: str = "gn") -> list[str]:
    return [
        *BASE,
        "--config", str(REPO / f"configs/synthetic/{norm}.yaml"),
        "--data.data_root", str(ds.root),
        "--data.train_list", str(ds.train_list),
        "--data.val_list", str(ds.val_list),
        "--data.test_list", str(ds.val_list),
        "--data.num_workers", "0",
        "--data.clips_per_gpu", str(CLIPS),
        "--data.num_test_clips", "2",
        "--trainer.max_epochs", str(epochs),
        "--trainer.default_root_dir", str(root),
        "--trainer.enable_progress_bar", "false",
    ]


def steps_per_epoch(ds, world_size: int = 1) -> int:
    n = sum(1 for line in Path(ds.train_list).read_text().splitlines() if line.strip())
    return math.ceil(n / world_size) // CLIPS  # DistributedSampler pads; the train loader drops the last partial batch


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def test_fit_then_test_writes_run_directory(tmp_path, synthetic_dataset):
    root = tmp_path / "run"
    cli = run_lightning_cli(["fit", *run_args(synthetic_dataset, root)])
    assert cli.trainer.global_step == 2 * steps_per_epoch(synthetic_dataset)
    assert (root / "config.yaml").is_file()
    assert "norm: gn" in (root / "config.yaml").read_text()
    assert list(root.glob("events.out.tfevents.*")), "TensorBoard log missing"
    ckpts = sorted(p.name for p in (root / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(n.startswith("best-") for n in ckpts), ckpts
    header = next(csv.reader((root / "metrics.csv").open()))
    for column in ("train/loss", "val/top1", "val/top5", "lr-SGD"):
        assert any(h.startswith(column) for h in header), (column, header)

    run_lightning_cli(["test", *run_args(synthetic_dataset, root), "--ckpt_path", str(root / "checkpoints/last.ckpt")])
    summary = json.loads((root / "test_summary.json").read_text())
    num_val = sum(1 for line in Path(synthetic_dataset.val_list).read_text().splitlines() if line.strip())
    assert summary["num_videos"] == num_val and summary["num_videos_left_out"] == 0
    assert summary["views_per_video"] == {"min": 2 * 3, "max": 2 * 3}  # 2 clips x 3 crops
    for key in ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_accuracy"):
        assert 0.0 <= summary[key] <= 100.0
    rows = list(csv.DictReader((root / "test_predictions.csv").open()))
    assert len(rows) == num_val and rows[0]["pred_1_name"] in synthetic_dataset.classes
    assert (root / "config_test.yaml").is_file() and (root / "config.yaml").is_file()

    run_lightning_cli(["predict", *run_args(synthetic_dataset, root), "--data.predict_list",
                       str(synthetic_dataset.val_list), "--ckpt_path", str(root / "checkpoints/last.ckpt")])
    predicted = list(csv.DictReader((root / "predict_predictions.csv").open()))
    assert [r["video"] for r in predicted] == [r["video"] for r in rows]
    # the same checkpoint and views give the same video-level predictions in test and predict
    assert [r["pred_1"] for r in predicted] == [r["pred_1"] for r in rows]


def test_precise_bn_recomputes_statistics_before_validation(tmp_path, synthetic_dataset, caplog):
    args = run_args(synthetic_dataset, tmp_path / "run", epochs=1, norm="bn")
    with caplog.at_level("INFO", logger="vidgn.training"):
        run_lightning_cli(["fit", *args, "--precise_bn.num_batches", "2"])
    assert "precise BN: recomputed statistics over 2 training batches" in caplog.text


def test_lr_is_scaled_by_total_batch(tmp_path, synthetic_dataset):
    args = run_args(synthetic_dataset, tmp_path / "run", epochs=1)
    cli = run_lightning_cli(["fit", *args, "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0",
                             "--trainer.accumulate_grad_batches", "2", "--model.lr", "0.64"])
    # 0.64 per 64 clips -> 4 clips x 1 process x 2 accumulated batches = 8 clips -> 0.08
    assert cli.trainer.optimizers[0].param_groups[0]["initial_lr"] == pytest.approx(0.08)
    decay = {g["weight_decay"] for g in cli.trainer.optimizers[0].param_groups}
    assert decay == {0.0, 1e-4}  # norm and bias parameters are not decayed


def test_nonfinite_loss_stops_naming_the_step(tmp_path, synthetic_dataset):
    args = run_args(synthetic_dataset, tmp_path / "run", epochs=1)
    with pytest.raises(NonFiniteLossError, match="global step 1"):
        run_lightning_cli(["fit", *args, "--model.network", "tests.helpers.NaNAfterSteps",
                           "--model.network.init_args.nan_from", "2", "--trainer.limit_val_batches", "0"])


def test_seeded_deterministic_runs_repeat(tmp_path, synthetic_dataset):
    losses = []
    for name in ("a", "b"):
        root = tmp_path / name
        run_lightning_cli(["fit", *run_args(synthetic_dataset, root, epochs=1), "--trainer.deterministic", "true",
                           "--trainer.log_every_n_steps", "1", "--trainer.limit_val_batches", "0"])
        rows = list(csv.DictReader((root / "metrics.csv").open()))
        losses.append([r["train/loss"] for r in rows if r.get("train/loss")])
    assert losses[0] and losses[0] == losses[1]


def fit_until_signalled(args: list[str], pause_at: int, marker: Path, sig: int) -> str:
    """`vidgn fit ARGS` in a subprocess, sent `sig` once it reaches global step `pause_at`; returns
    its output after checking that it stopped without finishing."""
    cmd = [sys.executable, "-m", "vidgn.cli", "fit", *args, "--trainer.callbacks+=tests.helpers.PauseAtStep",
           "--trainer.callbacks.step", str(pause_at), "--trainer.callbacks.marker", str(marker)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the run never reached the pause step"
            time.sleep(0.2)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:  # a failed check must not leave the run training on, beside the next tests
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, out  # preempted, not finished
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT], ids=["SIGTERM", "SIGUSR1", "Ctrl-C"])
def test_preempted_fit_resumes_to_the_same_end(tmp_path, synthetic_dataset, sig):
    root, marker = tmp_path / "run", tmp_path / "paused"
    epochs, per_epoch = 3, steps_per_epoch(synthetic_dataset)
    pause_at = per_epoch + 1  # mid-way through the second epoch
    args = [*run_args(synthetic_dataset, root, epochs=epochs), "--checkpoint.save_top_k", "-1"]
    out = fit_until_signalled(args, pause_at, marker, sig)
    last = torch.load(root / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == pause_at, out
    before = {p.name for p in (root / "checkpoints").iterdir()}

    resumed = run_lightning_cli(["fit", *args, "--ckpt_path", "last"])
    assert resumed.trainer.global_step == epochs * per_epoch
    after = {p.name for p in (root / "checkpoints").iterdir()}
    assert before - {"last.ckpt"} <= after, "a checkpoint written before the preemption was lost"
    epochs_saved = sorted(int(n.split("epoch")[1][:3]) for n in after if n.startswith("best-"))
    assert epochs_saved == list(range(epochs))


def test_resumed_run_sees_exactly_the_clips_of_the_uninterrupted_one(tmp_path, synthetic_dataset):
    """Preempted mid-epoch and resumed (with a worker this time), a run trains on the same videos,
    windows, crops and flips, step for step, as a run that was never interrupted: none twice, none
    skipped, and metrics.csv has each step once."""
    epochs, per_epoch = 3, steps_per_epoch(synthetic_dataset)
    pause_at = per_epoch + 1  # mid-way through the second epoch
    no_val = ("--trainer.limit_val_batches", "0", "--trainer.log_every_n_steps", "1")

    def record(path):
        return ["--trainer.callbacks+=tests.helpers.RecordBatches", "--trainer.callbacks.path", str(path)]

    ref = tmp_path / "ref.jsonl"
    run_lightning_cli(["fit", *run_args(synthetic_dataset, tmp_path / "ref", epochs=epochs), *no_val, *record(ref)])

    root, marker, got = tmp_path / "run", tmp_path / "paused", tmp_path / "got.jsonl"
    args = [*run_args(synthetic_dataset, root, epochs=epochs), *no_val, "--data.num_workers", "1"]
    fit_until_signalled([*args, *record(got)], pause_at, marker, signal.SIGTERM)
    run_lightning_cli(["fit", *args, *record(got), "--ckpt_path", "last"])

    expected = [json.loads(line) for line in ref.read_text().splitlines()]
    seen = [json.loads(line) for line in got.read_text().splitlines()]
    assert [r["step"] for r in seen] == list(range(epochs * per_epoch))
    assert seen == expected
    steps = [r["step"] for r in csv.DictReader((root / "metrics.csv").open()) if r.get("train/loss")]
    assert len(steps) == len(set(steps)) == epochs * per_epoch


def test_two_process_ddp_fit_on_cpu(tmp_path, synthetic_dataset):
    root = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "vidgn.cli", "fit", *run_args(synthetic_dataset, root, epochs=1, norm="bn"),
           "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.limit_val_batches", "0"]
    proc = subprocess.run(cmd, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = torch.load(root / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    # each process gets its own clips_per_gpu distinct clips: half the steps of one process
    assert last["global_step"] == steps_per_epoch(synthetic_dataset, world_size=2)


def test_bad_training_video_is_replaced_and_counted_per_epoch(tmp_path, synthetic_dataset):
    # The fixture's training list with absolute paths, plus one file that is not a video.
    garbage = tmp_path / "corrupt.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    lines = [line.rsplit(" ", 1) for line in Path(synthetic_dataset.train_list).read_text().splitlines() if line]
    lines = lines[: 2 * CLIPS - 1]  # with the corrupt file: two full batches, so every epoch draws it
    train = tmp_path / "train.txt"
    train.write_text("".join(f"{synthetic_dataset.root / p} {label}\n" for p, label in lines) + f"{garbage} 0\n")
    root = tmp_path / "run"
    args = [*run_args(synthetic_dataset, root, epochs=2), "--data.train_list", str(train),
            "--data.classes_file", str(synthetic_dataset.classes_file), "--data.max_bad_fraction", "0.2",
            "--trainer.limit_val_batches", "0"]
    cli = run_lightning_cli(["fit", *args])
    assert cli.trainer.global_step == 2 * 2  # two epochs of two batches: the bad video was replaced
    rows = [r for r in csv.DictReader((root / "metrics.csv").open()) if r.get("data/bad_train_videos")]
    # each epoch drew the corrupt file, replaced it, and counted it once
    assert [float(r["data/bad_train_videos"]) for r in rows] == [1.0, 1.0]


def test_precise_bn_starts_no_loader_for_gn(tmp_path, synthetic_dataset, monkeypatch):
    from vidgn.data.datamodule import VideoDataModule

    calls = []
    original = VideoDataModule.dataloader
    monkeypatch.setattr(VideoDataModule, "dataloader",
                        lambda self, split, **kw: calls.append(split) or original(self, split, **kw))
    run_lightning_cli(["fit", *run_args(synthetic_dataset, tmp_path / "run", epochs=1, norm="gn"),
                       "--precise_bn.num_batches", "2"])
    assert calls.count("train") == 1  # the fit loop's own loader; none for precise BN
