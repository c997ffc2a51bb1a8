"""A video that crashes the decoder natively must not end the run.

crash.mp4 is a real H.264 file whose damaged index makes decord 0.6 abort (SIGABRT) as soon as a
worker opens it (tests.helpers.write_decoder_crashing_mp4): exactly what kills a plain
DataLoader. Each crash costs PyTorch's 5-second worker status check.
"""
import csv
import faulthandler
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

import vidgn.data.datamodule as datamodule_module
from vidgn.data import VideoDataModule
from vidgn.tools.check_videos import check_videos
from vidgn.data.lists import parse_list, write_list
from tests.helpers import write_decoder_crashing_mp4

TINY = dict(num_frames=4, sampling_rate=2, train_short_side=(40, 48), train_crop=32, test_short_side=40,
            val_crop=32, test_crop=40, num_test_clips=2, num_test_crops=1, clips_per_gpu=2, num_workers=2,
            multiprocessing_context="fork", max_bad_fraction=0.5)
CRASH = 5  # crash.mp4's line in list.txt (0-based)


@pytest.fixture(autouse=True)
def quiet_crashes():
    # pytest's faulthandler, inherited by forked workers, would print a traceback of every
    # intended crash into the test log; the crash itself is what these tests are about.
    was = faulthandler.is_enabled()
    faulthandler.disable()
    yield
    if was:
        faulthandler.enable()


@pytest.fixture(scope="module")
def crash_root(synthetic_dataset, tmp_path_factory):
    """7 good videos and crash.mp4 (line 5) in list.txt."""
    root = tmp_path_factory.mktemp("crash")
    good = parse_list(synthetic_dataset.train_list, synthetic_dataset.root)[:7]
    rows = []
    for i, e in enumerate(good):
        name = f"good{i}{os.path.splitext(e.path)[1]}"
        shutil.copy(synthetic_dataset.root / e.path, root / name)
        rows.append((name, e.label))
    write_decoder_crashing_mp4(root / "crash.mp4")
    rows.insert(CRASH, ("crash.mp4", 1))
    write_list(root / "list.txt", rows)
    shutil.copy(synthetic_dataset.classes_file, root / "classes.txt")
    return root


def test_the_file_really_kills_the_decoder(crash_root):
    code = "import decord, sys; decord.VideoReader(sys.argv[1], num_threads=1)"
    r = subprocess.run([sys.executable, "-c", code, str(crash_root / "crash.mp4")], capture_output=True)
    assert r.returncode == -signal.SIGABRT
    r = subprocess.run([sys.executable, "-c", code, str(crash_root / "good0.mp4")], capture_output=True)
    assert r.returncode == 0


def make_dm(root, **kw):
    lst = str(root / "list.txt")
    args = dict(data_root=str(root), train_list=lst, val_list=lst, test_list=lst, **TINY)
    args.update(kw)
    return VideoDataModule(**args)


def run_epoch(dm, loader):
    return [dm.on_before_batch_transfer(b, 0) for b in loader]


def test_training_survives_a_decoder_crash(crash_root, caplog):
    dm = make_dm(crash_root, persistent_workers=True)
    dm.setup("fit")
    caplog.set_level(logging.WARNING, logger="vidgn.data")
    loader = dm.train_dataloader()
    for epoch in range(2):
        batches = run_epoch(dm, loader)
        # Every batch of the epoch arrives, full: crash.mp4 was replaced by another video.
        assert len(batches) == len(loader) == 4 and all(b["video"].shape[0] == 2 for b in batches)
        seen = [int(i) for b in batches for i in b["video_index"]]
        assert CRASH not in seen
        bad = dm.bad_videos("train")
        assert [b.video_index for b in bad] == [CRASH] and "SIGABRT" in bad[0].reason
        dm.reset_bad("train")
    messages = [r.getMessage() for r in caplog.records]
    # One worker died once (epoch 1); in epoch 2 the video was skipped without decoding it.
    assert sum("restarting the workers" in m for m in messages) == 1
    assert any("crash.mp4" in m and "SIGABRT" in m for m in messages)


def test_evaluation_leaves_the_crashing_video_out(crash_root):
    dm = make_dm(crash_root)
    dm.setup("test")
    batches = run_epoch(dm, dm.test_dataloader())
    got = [(int(v), int(c)) for b in batches for v, c in zip(b["video_index"], b["clip_index"])]
    # Every view of every other video exactly once (nothing lost, nothing repeated by the restart).
    assert sorted(got) == [(v, c) for v in range(8) if v != CRASH for c in range(2)]
    bad = dm.bad_videos("test")
    assert [b.video_index for b in bad] == [CRASH] and "SIGABRT" in bad[0].reason
    assert bad[0].path.endswith("crash.mp4")


def test_check_videos_reports_the_crash(crash_root):
    paths = [str(crash_root / e.path) for e in parse_list(crash_root / "list.txt", crash_root)]
    results = check_videos(paths, workers=2)
    assert [p for p, reason in results.items() if reason] == [str(crash_root / "crash.mp4")]
    assert "crash" in results[str(crash_root / "crash.mp4")]


def test_a_death_outside_any_video_is_not_blamed_on_data(crash_root, monkeypatch):
    def collate(items):  # runs in the worker after every item is done
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(datamodule_module, "collate_clips", collate)  # forked workers inherit it
    dm = make_dm(crash_root)
    dm.setup("fit")
    with pytest.raises(RuntimeError, match="not a bad video"):
        run_epoch(dm, dm.train_dataloader())
    assert dm.bad_count("train") == 0


class Slow(L.LightningModule):
    """Takes its time in each step, so that the worker dies while the main process is busy
    training (where PyTorch's own SIGCHLD alarm would raise)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)

    def training_step(self, batch, i):
        time.sleep(0.3)
        return torch.nn.functional.cross_entropy(self.fc(batch["video"].mean(dim=(2, 3, 4))), batch["label"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_fit_runs_through_a_decoder_crash(crash_root, tmp_path):
    from vidgn.training.callbacks import BadVideoLogger

    dm = make_dm(crash_root, val_list=None)
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=CSVLogger(tmp_path, name="", version=""),
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[BadVideoLogger()], log_every_n_steps=1)
    trainer.fit(Slow(), datamodule=dm)
    assert trainer.global_step == 2 * 4  # both epochs complete, every batch
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    counts = [float(r["data/bad_train_videos"]) for r in rows if r.get("data/bad_train_videos")]
    assert counts == [1.0, 1.0]  # the crashing video, replaced in each epoch
