"""A video that crashes the decoder natively (segfault) must not end the run.

decord/FFmpeg crashes cannot be provoked on demand with a healthy file, so the crash is injected:
`decode_frames` is wrapped, before the workers fork, to send the worker SIGSEGV when it reaches one
chosen real video. Everything else (decoding, workers, collation, the DataModule's bad-video
accounting) is the real pipeline. Each crash costs PyTorch's 5-second worker status check.
"""
import csv
import logging
import os
import signal
import time

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

import vidgn.data.dataset as dataset_module
import vidgn.data.datamodule as datamodule_module
from vidgn.data import KineticsDataModule

TINY = dict(num_frames=4, sampling_rate=2, train_short_side=(40, 48), train_crop=32, test_short_side=40,
            val_crop=32, test_crop=40, num_test_clips=2, num_test_crops=1, clips_per_gpu=2, num_workers=2,
            multiprocessing_context="fork", max_bad_fraction=0.5)


def segfault_on(monkeypatch, name):
    real = dataset_module.decode_frames

    def decode_frames(reader, indices, path="?"):
        if str(path).endswith(name) and torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGSEGV)  # what a decoder bug does to the worker
        return real(reader, indices, path)

    monkeypatch.setattr(dataset_module, "decode_frames", decode_frames)


def make_dm(ds, **kw):
    args = dict(data_root=str(ds.root), train_list=str(ds.train_list), val_list=str(ds.val_list),
                test_list=str(ds.val_list), **TINY)
    args.update(kw)
    return KineticsDataModule(**args)


def run_epoch(dm, loader):
    return [dm.on_before_batch_transfer(b, 0) for b in loader]


@pytest.fixture
def victim(synthetic_dataset):
    dm = make_dm(synthetic_dataset)
    dm.setup("fit")
    entries = dm.entries("train")
    return 5, entries[5].path  # (index in train.txt, path)


def test_training_survives_a_worker_segfault(synthetic_dataset, monkeypatch, caplog, victim):
    index, name = victim
    segfault_on(monkeypatch, name)
    dm = make_dm(synthetic_dataset, persistent_workers=True)
    dm.setup("fit")
    caplog.set_level(logging.WARNING, logger="vidgn.data")
    loader = dm.train_dataloader()
    for epoch in range(2):
        batches = run_epoch(dm, loader)
        # Every batch of the epoch arrives, full: the victim was replaced by another video.
        assert len(batches) == len(loader) == 6 and all(b["video"].shape[0] == 2 for b in batches)
        seen = [int(i) for b in batches for i in b["video_index"]]
        assert index not in seen
        bad = dm.bad_videos("train")
        assert [b.video_index for b in bad] == [index] and "SIGSEGV" in bad[0].reason
        dm.reset_bad("train")
    messages = [r.getMessage() for r in caplog.records]
    # One worker died once (epoch 1); in epoch 2 the video was skipped without decoding it.
    assert sum("restarting the workers" in m for m in messages) == 1
    assert any(name in m and "SIGSEGV" in m for m in messages)


def test_evaluation_leaves_the_crashing_video_out(synthetic_dataset, monkeypatch, victim):
    dm = make_dm(synthetic_dataset)
    dm.setup("test")
    ref = {(int(v), int(c)) for b in run_epoch(dm, dm.test_dataloader())
           for v, c in zip(b["video_index"], b["clip_index"])}
    name = dm.entries("test")[3].path
    segfault_on(monkeypatch, name)
    dm = make_dm(synthetic_dataset)
    dm.setup("test")
    batches = run_epoch(dm, dm.test_dataloader())
    got = [(int(v), int(c)) for b in batches for v, c in zip(b["video_index"], b["clip_index"])]
    # Every view of every other video exactly once (nothing lost, nothing repeated by the restart).
    assert sorted(got) == sorted(x for x in ref if x[0] != 3)
    bad = dm.bad_videos("test")
    assert [b.video_index for b in bad] == [3] and "SIGSEGV" in bad[0].reason and bad[0].path.endswith(name)


def test_a_death_outside_any_video_is_not_blamed_on_data(synthetic_dataset, monkeypatch):
    def collate(items):  # runs in the worker after every item is done
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(datamodule_module, "collate_clips", collate)
    dm = make_dm(synthetic_dataset)
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


def test_lightning_fit_runs_through_a_worker_segfault(synthetic_dataset, monkeypatch, victim, tmp_path):
    from vidgn.training.callbacks import BadVideoLogger

    index, name = victim
    segfault_on(monkeypatch, name)
    dm = make_dm(synthetic_dataset, val_list=None)
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=CSVLogger(tmp_path, name="", version=""),
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[BadVideoLogger()], log_every_n_steps=1)
    trainer.fit(Slow(), datamodule=dm)
    assert trainer.global_step == 2 * 6  # both epochs complete, every batch
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    counts = [float(r["data/bad_train_videos"]) for r in rows if r.get("data/bad_train_videos")]
    assert counts == [1.0, 1.0]  # the crashing video, replaced in each epoch
