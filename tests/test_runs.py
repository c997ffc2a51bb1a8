"""Runs you can trust: which checkpoint is last and which is scored, run directories that are never
mixed, evaluation on imperfect data, and short messages for user mistakes (CPU, tiny videos)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from vidgn.cli import main
from vidgn.training.cli import EXIT_INCOMPLETE, run_lightning_cli
from vidgn.training.module import CheckpointMismatch, NonFiniteLossError, NoValidationScores
from vidgn.training.runs import RunDirError

from test_training import CLIPS, run_args, steps_per_epoch

VIDEO_ARGS = ("--data.num_workers", "0")


def _list_lines(path) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if line.strip()]


def _fit(ds, root, epochs=1, *extra):
    return run_lightning_cli(["fit", *run_args(ds, root, epochs=epochs), *extra])


# ---- checkpoints -------------------------------------------------------------------------------

def test_last_ckpt_is_the_newest_state_and_test_says_what_it_scored(tmp_path, synthetic_dataset, capsys):
    """The monitored metric is best at epoch 0 only (mode min on `epoch`): Lightning's own
    ModelCheckpoint then left last.ckpt at epoch 0. last.ckpt must be the final state, the best
    checkpoint a file of its own, and `vidgn test` must record which one it scored."""
    root, epochs = tmp_path / "run", 3
    args = run_args(synthetic_dataset, root, epochs=epochs)
    run_lightning_cli(["fit", *args, "--checkpoint.monitor", "epoch", "--checkpoint.mode", "min"])
    final_step = epochs * steps_per_epoch(synthetic_dataset)
    last = torch.load(root / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (epochs - 1, final_step)
    best = sorted((root / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1 and "epoch000" in best[0].name

    capsys.readouterr()
    run_lightning_cli(["test", *args, "--ckpt_path", "last"])
    scored = json.loads((root / "test_summary.json").read_text())["checkpoint"]
    assert scored == {"path": str(root / "checkpoints/last.ckpt"), "epoch": epochs - 1, "global_step": final_step}
    assert f"global step {final_step}" in capsys.readouterr().out

    run_lightning_cli(["test", *args, "--ckpt_path", "best"])
    scored = json.loads((root / "test_summary.json").read_text())["checkpoint"]
    assert scored["path"] == str(best[0]) and scored["epoch"] == 0


def test_test_without_a_checkpoint_is_refused(tmp_path, synthetic_dataset):
    with pytest.raises(RunDirError, match="--ckpt_path last .*best.*FILE"):
        run_lightning_cli(["test", *run_args(synthetic_dataset, tmp_path / "run")])
    assert not (tmp_path / "run" / "test_summary.json").exists()
    with pytest.raises(RunDirError, match="last.ckpt not found"):
        run_lightning_cli(["test", *run_args(synthetic_dataset, tmp_path / "run"), "--ckpt_path", "last"])


def test_checkpoint_of_another_norm_names_both(tmp_path, synthetic_dataset):
    root = tmp_path / "run"
    _fit(synthetic_dataset, root, 1, "--trainer.limit_val_batches", "0")
    with pytest.raises(CheckpointMismatch, match="trained with norm=gn, but this config builds norm=bn"):
        run_lightning_cli(["test", *run_args(synthetic_dataset, root, norm="bn"), "--ckpt_path", "last"])
    # also for checkpoints from before the norm was recorded: told apart by their keys
    old = torch.load(root / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    del old["vidgn_network"]
    torch.save(old, tmp_path / "old.ckpt")
    with pytest.raises(CheckpointMismatch, match="norm=gn"):
        run_lightning_cli(["test", *run_args(synthetic_dataset, root, norm="bn"),
                           "--ckpt_path", str(tmp_path / "old.ckpt")])


# ---- run directories ---------------------------------------------------------------------------

def test_fit_into_an_earlier_run_is_refused_unless_resuming_or_starting_over(tmp_path, synthetic_dataset):
    root = tmp_path / "run"
    no_val = ("--trainer.limit_val_batches", "0")
    _fit(synthetic_dataset, root, 1, *no_val)
    first = (root / "checkpoints/last.ckpt").read_bytes()
    with pytest.raises(RunDirError, match="already holds a run .*--ckpt_path last.*--start_over true"):
        _fit(synthetic_dataset, root, 1, *no_val)
    assert (root / "checkpoints/last.ckpt").read_bytes() == first  # nothing touched
    # resuming the same run is what the directory is for
    resumed = _fit(synthetic_dataset, root, 2, *no_val, "--ckpt_path", "last")
    assert resumed.trainer.global_step == 2 * steps_per_epoch(synthetic_dataset)
    # starting over moves the earlier run aside, never deletes it
    _fit(synthetic_dataset, root, 1, *no_val, "--start_over", "true")
    (aside,) = root.glob("replaced-*")
    assert (aside / "checkpoints/last.ckpt").is_file() and (aside / "metrics.csv").is_file()
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == ["last.ckpt"]  # no last-v1.ckpt


def test_a_fit_that_failed_at_the_start_does_not_block_the_corrected_rerun(tmp_path, synthetic_dataset, caplog):
    root = tmp_path / "run"
    no_val = ("--trainer.limit_val_batches", "0")
    # Checks that need the built model and data run before the Trainer writes anything.
    assert main(["fit", *run_args(synthetic_dataset, root, epochs=1), *no_val, "--data.num_frames", "4"]) == 2
    assert not root.exists() or not any(root.iterdir())
    # A fit that fails at its first step (here: a NaN loss) leaves config, hparams and events behind,
    # but trained nothing: the corrected rerun moves them aside (not into its own TensorBoard run).
    nan = ("--model.network", "tests.helpers.NaNAfterSteps", "--model.network.init_args.nan_from", "1")
    with pytest.raises(NonFiniteLossError):
        _fit(synthetic_dataset, root, 1, *no_val, *nan)
    leftovers = sorted(p.name for p in root.iterdir())
    assert "config.yaml" in leftovers and any(n.startswith("events.out.tfevents.") for n in leftovers)
    with caplog.at_level(logging.WARNING, logger="vidgn.training"):
        cli = _fit(synthetic_dataset, root, 1, *no_val)
    assert cli.trainer.global_step == steps_per_epoch(synthetic_dataset)
    assert "held only the leftovers of a fit that never trained a step" in caplog.text
    (aside,) = root.glob("replaced-*")
    assert sorted(p.name for p in aside.iterdir()) == leftovers  # nothing lost
    assert len(list(root.glob("events.out.tfevents.*"))) == 1
    # That run trained: the next fit there is refused again.
    with pytest.raises(RunDirError, match="already holds a run"):
        _fit(synthetic_dataset, root, 1, *no_val)


def test_what_counts_as_a_run_that_trained(tmp_path):
    """Checkpoints, reports and logged training values make a run; learning rates (logged as a step
    starts) and TensorBoard's hyperparameter records do not."""
    from torch.utils.tensorboard import SummaryWriter

    from vidgn.training.runs import earlier_run_files, never_trained

    def run_with(files: dict[str, str]) -> bool:
        root = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        root.mkdir()
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        return never_trained(earlier_run_files(root))

    assert run_with({"metrics.csv": "lr-SGD/decay,step\n0.1,0\n0.1,1\n"})
    assert not run_with({"metrics.csv": "epoch,lr-SGD,step,train/loss\n0,,4,1.38\n"})
    assert not run_with({"checkpoints/best.ckpt": ""})
    assert not run_with({"test_summary.json": "{}"})
    for tag, trained in (("lr-SGD", False), ("train/loss", True)):
        events = tmp_path / f"tb-{tag.replace('/', '_')}"
        writer = SummaryWriter(str(events))
        writer.add_hparams({"lr": 0.1}, {"hp_metric": -1}, run_name=".")
        writer.add_scalar(tag, 0.5, 0)
        writer.close()
        assert never_trained(sorted(events.glob("events.out.tfevents.*"))) is not trained, tag


def test_a_trainer_setting_this_machine_cannot_run_is_one_short_message(tmp_path, synthetic_dataset, capsys):
    """configs/kinetics has accelerator gpu: on a machine without one, a short message (exit 2)."""
    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU")
    root = tmp_path / "run"
    (root / "checkpoints").mkdir(parents=True)
    (root / "checkpoints/last.ckpt").write_bytes(b"")  # never read: the Trainer is refused first
    args = [*run_args(synthetic_dataset, root), "--ckpt_path", "last", "--trainer.accelerator", "gpu"]
    assert main(["test", *args]) == 2
    err = capsys.readouterr().err
    assert "vidgn test: error: No supported gpu backend found!" in err and "--trainer.accelerator cpu" in err
    assert "Traceback" not in err and len(err.splitlines()) <= 4


# ---- sub-batch BN ------------------------------------------------------------------------------

def test_bn_clips_is_checked_when_the_config_is_read(tmp_path, synthetic_dataset, caplog):
    args = [*run_args(synthetic_dataset, tmp_path / "run", norm="bn"), "--trainer.limit_val_batches", "0"]
    with pytest.raises(ValueError, match=r"bn_clips=3 does not divide data.clips_per_gpu=4"):
        run_lightning_cli(["fit", *args, "--model.network.init_args.bn_clips", "3"])
    assert not (tmp_path / "run").exists()  # refused before anything ran
    with caplog.at_level(logging.WARNING, logger="vidgn.training"):
        cli = run_lightning_cli(["fit", *args, "--model.network.init_args.bn_clips", "2",
                                 "--data.drop_last_train", "false", "--trainer.max_epochs", "1"])
    assert cli.datamodule.drop_last_train is True and "drop_last_train forced" in caplog.text


def test_a_training_batch_is_full_or_the_run_stops(tmp_path, synthetic_dataset):
    """A training item never comes back short: a failed video is replaced, and when replacements
    keep failing the list is unreadable and the run stops with a message naming what to do."""
    from vidgn.data.clip import ClipSpec
    from vidgn.data.dataset import ClipDataset
    from vidgn.data.lists import VideoEntry
    from vidgn.data.video import VideoDecodeError

    garbage = tmp_path / "bad.mp4"
    garbage.write_bytes(b"\x00" * 1000)
    entries = [VideoEntry(str(garbage), 0, i + 1) for i in range(3)]
    ds = ClipDataset(entries, str(tmp_path), ClipSpec(num_frames=4, sampling_rate=1, train_short_side=(32, 32),
                                                      train_crop=32), split="train", max_retries=2)
    with pytest.raises(VideoDecodeError, match="3 training videos in a row failed .*vidgn check-videos"):
        ds[0]


# ---- evaluation on imperfect data --------------------------------------------------------------

def _with_bad_videos(tmp_path, ds, n_bad: int) -> Path:
    lines = [f"{ds.root / line.rsplit(' ', 1)[0]} {line.rsplit(' ', 1)[1]}" for line in _list_lines(ds.val_list)]
    for i in range(n_bad):
        (tmp_path / f"bad{i}.mp4").write_bytes(b"\x00not a video" * 50)
        lines.append(f"{tmp_path / f'bad{i}.mp4'} 0")
    path = tmp_path / "val_with_bad.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_partial_evaluation_finishes_but_says_so_and_fails(tmp_path, synthetic_dataset, capsys):
    root = tmp_path / "run"
    _fit(synthetic_dataset, root, 1, "--trainer.limit_val_batches", "0")
    test_list = _with_bad_videos(tmp_path, synthetic_dataset, 2)  # 2 of 10 > max_bad_fraction 0.1
    args = [*run_args(synthetic_dataset, root), "--data.test_list", str(test_list), "--data.classes_file",
            str(synthetic_dataset.classes_file), "--data.max_bad_fraction", "0.1", "--ckpt_path", "last"]
    assert main(["test", *args]) == EXIT_INCOMPLETE
    summary = json.loads((root / "test_summary.json").read_text())
    assert summary["complete"] is False and summary["max_bad_fraction"] == 0.1
    assert summary["num_videos"] == 8 and summary["num_videos_left_out"] == 2
    assert "PARTIAL RESULT: 2 of 10 videos" in capsys.readouterr().err
    # `vidgn validate` is an evaluation too
    assert main(["validate", *args, "--data.val_list", str(test_list)]) == EXIT_INCOMPLETE
    assert "PARTIAL RESULT" in capsys.readouterr().err
    # within the limit: a normal result
    assert main(["test", *args[:-2], "--data.max_bad_fraction", "0.2", "--ckpt_path", "last"]) == 0
    assert json.loads((root / "test_summary.json").read_text())["complete"] is True


def test_duplicate_lines_in_a_test_list_count_once(tmp_path, synthetic_dataset, caplog):
    root = tmp_path / "run"
    _fit(synthetic_dataset, root, 1, "--trainer.limit_val_batches", "0")
    twice = tmp_path / "twice.txt"
    lines = [f"{synthetic_dataset.root / line}" for line in _list_lines(synthetic_dataset.val_list)]
    twice.write_text("\n".join(lines + lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="vidgn.data"):
        run_lightning_cli(["test", *run_args(synthetic_dataset, root), "--data.test_list", str(twice),
                           "--data.classes_file", str(synthetic_dataset.classes_file), "--ckpt_path", "last"])
    summary = json.loads((root / "test_summary.json").read_text())
    assert summary["num_videos"] == summary["num_videos_in_list"] == len(lines)
    assert f"lists {len(lines)} video(s) more than once" in caplog.text and "line 9 repeats line 1" in caplog.text


def test_a_validation_epoch_without_any_decodable_video_names_the_list(tmp_path, synthetic_dataset):
    bad_val = tmp_path / "val_bad.txt"
    (tmp_path / "x.mp4").write_bytes(b"\x00" * 100)
    bad_val.write_text(f"{tmp_path / 'x.mp4'} 0\n")
    with pytest.raises(NoValidationScores, match=f"validation list {bad_val}"):
        _fit(synthetic_dataset, tmp_path / "run", 1, "--data.val_list", str(bad_val), "--data.classes_file",
             str(synthetic_dataset.classes_file), "--data.max_bad_fraction", "1.0",
             "--trainer.num_sanity_val_steps", "0")


def test_a_training_list_shorter_than_one_batch_names_the_list(tmp_path, synthetic_dataset):
    short = tmp_path / "short.txt"
    lines = _list_lines(synthetic_dataset.train_list)[:CLIPS - 1]
    short.write_text("\n".join(f"{synthetic_dataset.root / line}" for line in lines) + "\n")
    with pytest.raises(ValueError, match=f"data.train_list {short} has {CLIPS - 1} videos.*fewer than one batch"):
        _fit(synthetic_dataset, tmp_path / "run", 1, "--data.train_list", str(short), "--data.classes_file",
             str(synthetic_dataset.classes_file))
    assert not (tmp_path / "run").exists()  # checked before the Trainer wrote its logs: no leftovers
    missing = tmp_path / "missing.txt"
    missing.write_text("".join(f"{synthetic_dataset.root / line}\n" for line in _list_lines(synthetic_dataset.train_list))
                       + f"{tmp_path / 'gone.mp4'} 0\n")
    with pytest.raises(ValueError, match="1 video.s. not found"):
        _fit(synthetic_dataset, tmp_path / "run", 1, "--data.train_list", str(missing), "--data.classes_file",
             str(synthetic_dataset.classes_file))
    assert not (tmp_path / "run").exists()


# ---- messages a user can act on ----------------------------------------------------------------

def test_user_errors_are_one_short_message(tmp_path, synthetic_dataset, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("trainer:\n  max_epochs: [1\nmodel: {\n")
    args = run_args(synthetic_dataset, tmp_path / "run")
    assert main(["fit", *args, "--config", str(bad_yaml)]) == 2
    err = capsys.readouterr().err
    assert f"config file {bad_yaml} is not valid YAML: line 3" in err and "Traceback" not in err
    assert main(["fit", *args, "--model.lr", "-0.01"]) == 2
    err = capsys.readouterr().err
    assert "model.lr must be > 0, got -0.01" in err and len(err.splitlines()) <= 4


def test_nonfinite_loss_points_at_the_data_when_most_clips_were_replaced(tmp_path, synthetic_dataset):
    garbage = tmp_path / "corrupt.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    train = tmp_path / "train.txt"
    good = _list_lines(synthetic_dataset.train_list)[0]
    lines = [f"{synthetic_dataset.root / good}"] + [f"{garbage} 0"] * (2 * CLIPS)
    train.write_text("\n".join(lines) + "\n")
    args = [*run_args(synthetic_dataset, tmp_path / "run", epochs=1), "--data.train_list", str(train),
            "--data.classes_file", str(synthetic_dataset.classes_file), "--data.max_bad_fraction", "1.0",
            "--data.max_retries", "100", "--trainer.limit_val_batches", "0",
            "--model.network", "tests.helpers.NaNAfterSteps", "--model.network.init_args.nan_from", "1"]
    with pytest.raises(NonFiniteLossError,
                       match="videos failed to decode while this batch of 4 clips was put together .* check the data first"):
        run_lightning_cli(["fit", *args])


def test_any_seed_works():
    """Item seeds are derived from (seed, rank, epoch, position): large seeds must not overflow."""
    from vidgn.data.loader import _item_seed

    for seed in (0, 19, 42, 2**31 - 1):
        assert 0 <= _item_seed(seed * 1_000_003, 103, 4096) < 2**62


def test_a_stopped_evaluation_saves_no_checkpoint():
    """SIGTERM during `vidgn test` must not overwrite last.ckpt with an evaluation's empty state."""
    from types import SimpleNamespace

    from lightning.pytorch.trainer.states import TrainerFn
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from vidgn.training.callbacks import PreemptionCheckpoint

    saved = []
    for fn, expected in ((TrainerFn.TESTING, 0), (TrainerFn.PREDICTING, 0), (TrainerFn.FITTING, 1)):
        trainer = SimpleNamespace(state=SimpleNamespace(fn=fn), checkpoint_callback=None, log_dir="/tmp/x",
                                  default_root_dir="/tmp/x", global_step=3, save_checkpoint=saved.append)
        before = len(saved)
        PreemptionCheckpoint().on_exception(trainer, None, SIGTERMException())
        assert len(saved) - before == expected, fn


def test_resuming_a_run_without_a_checkpoint_is_refused(tmp_path, synthetic_dataset):
    root = tmp_path / "run"
    root.mkdir()
    (root / "metrics.csv").write_text("epoch,step\n")  # an earlier run that died before its first checkpoint
    with pytest.raises(RunDirError, match="no .*last.ckpt to resume from.*--start_over true"):
        _fit(synthetic_dataset, root, 1, "--ckpt_path", "last")
