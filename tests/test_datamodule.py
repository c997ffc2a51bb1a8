"""VideoDataModule: list errors before training, batches and hooks, workers, DDP sharding,
test-time coverage and a real Lightning fit/test loop."""
import lightning as L
import pytest
import torch
from torch.utils.data.distributed import DistributedSampler

from vidgn.data import VideoDataModule
from vidgn.data.lists import ListError

TINY = dict(num_frames=4, sampling_rate=2, clips_per_gpu=2, num_workers=0, train_short_side=(40, 48),
            train_crop=32, test_short_side=40, val_crop=32, test_crop=40, num_test_clips=2)


def make_dm(ds, **kw):
    args = dict(data_root=str(ds.root), train_list=str(ds.train_list), val_list=str(ds.val_list), **TINY)
    args.update(kw)
    return VideoDataModule(**args)


def test_num_classes_right_after_init_without_reading_videos(synthetic_dataset, tmp_path):
    # The list names videos that do not exist: __init__ must not look at them...
    lst = tmp_path / "train.txt"
    lst.write_text("nowhere/a.mp4 0\nnowhere/b.mp4 3\n")
    dm = VideoDataModule(data_root=str(tmp_path), train_list=str(lst),
                            classes_file=str(synthetic_dataset.classes_file))
    assert dm.num_classes == 4 and dm.classes == synthetic_dataset.classes
    # ...but setup must, before any training starts, naming the file and line.
    with pytest.raises(ListError, match=r"train.txt:1: .*a.mp4 not found"):
        dm.setup("fit")
    # classes.txt beside the list is found on its own
    assert make_dm(synthetic_dataset).num_classes == 4


def test_unknown_label_surfaces_from_setup(synthetic_dataset, tmp_path):
    good = synthetic_dataset.train_list.read_text().splitlines()[0].rsplit(" ", 1)[0]
    lst = tmp_path / "val.txt"
    lst.write_text(f"{good} 0\n{good} dancing\n{good} 7\n")
    dm = make_dm(synthetic_dataset, val_list=str(lst), classes_file=str(synthetic_dataset.classes_file))
    with pytest.raises(ListError, match=r"val.txt:2: label 'dancing'"):
        dm.setup("validate")


def test_unlabeled_test_list_points_to_predict_list(synthetic_dataset, tmp_path):
    paths = [line.rsplit(" ", 1)[0] for line in synthetic_dataset.val_list.read_text().splitlines()]
    lst = tmp_path / "test.txt"
    lst.write_text("".join(p + "\n" for p in paths[:3]))  # paths only, as for the Kinetics test split
    dm = make_dm(synthetic_dataset, test_list=str(lst), classes_file=str(synthetic_dataset.classes_file))
    with pytest.raises(ListError) as err:
        dm.setup("test")
    msg = str(err.value)
    assert "test.txt:1" in msg and "data.predict_list" in msg
    assert str(synthetic_dataset.classes_file) in msg  # which classes file the labels were looked up in
    dm = make_dm(synthetic_dataset, predict_list=str(lst))
    dm.setup("predict")
    assert [e.label for e in dm.entries("predict")] == [-1, -1, -1]


@pytest.mark.parametrize("setting, value, words", [
    ("train_crop", 80, ["data.train_crop 80", "data.train_short_side[0] = 40"]),
    ("test_crop", 64, ["data.test_crop 64", "data.test_short_side 40"]),
    ("num_test_crops", 2, ["data.num_test_crops", "got 2"]),
    ("train_short_side", (48, 40), ["data.train_short_side [48, 40]"]),
    ("clips_per_gpu", 0, ["data.clips_per_gpu must be >= 1"]),
    ("max_bad_fraction", 1.5, ["data.max_bad_fraction"]),
])
def test_impossible_clip_settings_fail_at_init_not_as_bad_videos(synthetic_dataset, setting, value, words):
    """Sizes no video can satisfy are a config error, named, before anything runs, instead of every
    video 'failing to decode' and the run blaming the data."""
    with pytest.raises(ValueError) as err:
        make_dm(synthetic_dataset, **{setting: value})
    assert all(w in str(err.value) for w in words), str(err.value)


def test_no_classes_file_is_a_clear_error(tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("a.mp4 0\n")
    with pytest.raises(ListError, match="classes_file"):
        VideoDataModule(data_root=str(tmp_path / "root"), train_list=str(lst))


def test_train_batch_after_hooks(synthetic_dataset):
    dm = make_dm(synthetic_dataset)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].dtype == torch.uint8 and batch["video"].shape == (2, 3, 4, 32, 32)
    batch = dm.on_after_batch_transfer(dm.on_before_batch_transfer(batch, 0), 0)
    assert "bad" not in batch
    v = batch["video"]
    assert v.dtype == torch.float32 and v.shape == (2, 3, 4, 32, 32)
    assert -2.01 <= float(v.min()) and float(v.max()) <= (1 - 0.45) / 0.225 + 1e-4
    assert batch["label"].dtype == torch.long and batch["label"].shape == (2,)
    assert batch["clip_index"].tolist() == [0, 0] and batch["crop_index"].tolist() == [0, 0]


def test_workers_give_the_same_batches_as_main_process(synthetic_dataset):
    """Forked, persistent workers decode exactly what the main process would (val is deterministic)."""
    ref = [b["video"] for b in make_dm(synthetic_dataset).val_dataloader()]
    dm = make_dm(synthetic_dataset, num_workers=2)
    loader = dm.val_dataloader()
    assert loader.persistent_workers and loader.multiprocessing_context is not None
    for _ in range(2):  # second epoch reuses the persistent workers
        got = [b["video"] for b in loader]
        assert len(got) == len(ref) and all(torch.equal(a, b) for a, b in zip(got, ref))
        # Workers build batches in shared memory (no second copy on the way to the main process),
        # in the channels-last layout normalize() expects.
        assert all(b.is_shared() and b.is_contiguous(memory_format=torch.channels_last_3d) for b in got)


def test_ddp_ranks_get_disjoint_clips(synthetic_dataset):
    dm = make_dm(synthetic_dataset, drop_last_train=False)
    dm.setup("fit")
    n = len(dm.entries("train"))
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(dm.dataset("train"), num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(1)
        batches = list(dm.dataloader("train", sampler=sampler))
        assert all(b["video"].shape[0] == 2 for b in batches)  # each process: its own clips_per_gpu
        seen.append({int(i) for b in batches for i in b["video_index"]})
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(n))


def test_test_loader_emits_every_view_once(synthetic_dataset):
    dm = make_dm(synthetic_dataset, test_list=str(synthetic_dataset.val_list), num_test_crops=3)
    dm.setup("test")
    rows = []
    for b in dm.test_dataloader():
        assert b["video"].shape[1:] == (3, 4, 40, 40) and b["video"].shape[0] <= 2 * 3
        rows += list(zip(b["video_index"].tolist(), b["clip_index"].tolist(), b["crop_index"].tolist()))
    n = len(dm.entries("test"))
    assert sorted(rows) == [(v, c, k) for v in range(n) for c in range(2) for k in range(3)]


def test_config_schema_parses():
    """LightningCLI builds the `data:` schema from __init__'s typed arguments."""
    from jsonargparse import ArgumentParser

    p = ArgumentParser()
    p.add_class_arguments(VideoDataModule, "data")
    cfg = p.parse_args(["--data.data_root=/x", "--data.num_frames=64", "--data.sampling_rate=1",
                        "--data.clips_per_gpu=4", "--data.train_short_side=[256, 320]"])
    assert cfg.data.num_frames == 64 and cfg.data.clips_per_gpu == 4
    assert tuple(cfg.data.train_short_side) == (256, 320) and cfg.data.max_bad_fraction == 0.01


class Probe(L.LightningModule):
    """Records what the steps receive; a linear layer on the clip mean so that fit has a gradient."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)
        self.seen = {"train": [], "val": [], "test": []}

    def _step(self, split, batch):
        self.seen[split].append({k: (v.dtype, tuple(v.shape)) for k, v in batch.items()})
        return torch.nn.functional.cross_entropy(self.fc(batch["video"].mean(dim=(2, 3, 4))), batch["label"])

    def training_step(self, batch, i):
        return self._step("train", batch)

    def validation_step(self, batch, i):
        self._step("val", batch)

    def test_step(self, batch, i):
        self._step("test", batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_fit_and_test(synthetic_dataset):
    dm = make_dm(synthetic_dataset, test_list=str(synthetic_dataset.val_list), num_test_clips=1)
    model = Probe()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                        limit_test_batches=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm)
    assert len(model.seen["train"]) == 2 and len(model.seen["val"]) == 1 and len(model.seen["test"]) == 1
    tr = model.seen["train"][0]
    assert set(tr) == {"video", "label", "video_index", "clip_index", "crop_index"}
    assert tr["video"] == (torch.float32, (2, 3, 4, 32, 32)) and tr["label"] == (torch.int64, (2,))
    assert model.seen["test"][0]["video"] == (torch.float32, (6, 3, 4, 40, 40))


def test_lightning_can_inject_its_distributed_sampler(synthetic_dataset):
    """Under DDP the Trainer rebuilds our DataLoader around a DistributedSampler
    (use_distributed_sampler=True); the rebuilt loaders keep batch size, collate and drop_last and
    give the ranks disjoint videos."""
    from lightning.pytorch.utilities.data import _update_dataloader

    dm = make_dm(synthetic_dataset)
    dm.setup("fit")
    seen = []
    for rank in (0, 1):
        loader = dm.train_dataloader()
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        rebuilt = _update_dataloader(loader, sampler)
        assert rebuilt.sampler is sampler and rebuilt.batch_size == 2 and rebuilt.drop_last
        seen.append({int(i) for b in rebuilt for i in b["video_index"]})
    assert seen[0] and seen[1] and not seen[0] & seen[1]


def test_old_name_still_imports():
    """The DataModule serves any video list; its Kinetics-era name stays importable."""
    import vidgn
    from vidgn.data import KineticsDataModule

    assert KineticsDataModule is VideoDataModule is vidgn.VideoDataModule is vidgn.KineticsDataModule
