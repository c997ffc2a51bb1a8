"""VideoDataModule: lists -> clip datasets -> DataLoaders, bad-video accounting, GPU normalisation.

Its __init__ keyword arguments are the `data:` section of every config. Workers produce uint8 clips;
`on_after_batch_transfer` converts and normalises them on the device, so the host->device copy is
a quarter of the float size and no worker spends time on float arithmetic.

Batches reaching training_step / validation_step / test_step are dicts:
    video        float (B, 3, T, H, W), normalised
    label        long (B,)   (-1 for an unlabeled predict list)
    video_index  long (B,)   position of the video in the split's list (`entries(split)`)
    clip_index   long (B,)   which of the num_test_clips windows (0 for train/val)
    crop_index   long (B,)   which of the num_test_crops crops (0 for train/val)
For test/predict one dataset item is one (video, window): it is decoded once and yields
num_test_crops rows, so B = clips_per_gpu * num_test_crops there. B may be 0 in evaluation when
every video of a batch failed to decode: steps must skip empty batches.

Bad videos: the collate function carries failures as `batch["bad"]`; `on_before_batch_transfer`
pops them, logs each path once (logger "vidgn.data") with its reason, keeps the distinct failures
per split (`bad_videos`, `bad_count`, `reset_bad`; the training callback logs and resets the train
count every epoch) and raises `TooManyBadVideos` once a split's distinct failures exceed
`max_bad_fraction` of that split (of this process's share under DDP).
"""
from __future__ import annotations

import logging
import sys

import lightning
import torch

from vidgn.data.clip import SPLITS, ClipSpec
from vidgn.data.dataset import BadVideo, ClipDataset, collate_clips
from vidgn.data.lists import ListError, VideoEntry, find_classes_file, parse_list, read_classes
from vidgn.data.loader import CrashSafeLoader, EpochShuffle
from vidgn.data.transforms import normalize

log = logging.getLogger("vidgn.data")

# Which lists each Lightning stage needs (parsed, and their files checked, in setup()).
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


class TooManyBadVideos(RuntimeError):
    """More videos of a split failed to decode than `max_bad_fraction` allows."""


class VideoDataModule(lightning.LightningDataModule):
    """Video lists (Kinetics format or any other) as clip batches for I3D training and 10-clip x 3-crop testing.

    Args:
        data_root: folder that relative paths in the lists are relative to.
        train_list: training list (`path label` lines, see vidgn.data.lists).
        val_list: validation list (1 centre clip, centre crop per video).
        test_list: test list (num_test_clips x num_test_crops views per video).
        predict_list: list to predict on (labels optional), sampled like test.
        classes_file: class names, one per line; default: the classes.txt beside the first given
            list or in data_root. Sets `num_classes` and lets lists use class names as labels.
        num_frames: frames per clip, T (paper: 32 or 64).
        sampling_rate: take every sampling_rate-th frame (paper: 2 for 32x2, 1 for 64x1).
        target_fps: count sampling_rate at this frame rate instead of each file's (None: the file's).
        clips_per_gpu: clips per batch per process, the paper's "clips per GPU" (8 or 4). For
            test/predict it counts (video, window) items, each giving num_test_crops rows.
        num_workers: DataLoader worker processes per process (0: load in the main process).
        decode_threads: decord threads per worker (1 keeps workers from oversubscribing the CPU).
        train_short_side: range of the random training short side (paper: 256..320).
        train_crop: training crop (paper: 224).
        flip: random horizontal flip in training.
        test_short_side: short side for val and test (paper: 256).
        val_crop: centre crop for val (224).
        test_crop: test crop size (paper: 256, fully convolutional testing).
        num_test_clips: uniform windows per test video (paper: 10).
        num_test_crops: crops per test window, 3 (along the long side) or 1 (centre).
        mean: per-channel mean on [0, 1] for normalisation.
        std: per-channel std on [0, 1] for normalisation.
        max_bad_fraction: stop when more than this fraction of a split fails to decode.
        max_retries: replacement videos tried for one failed training item.
        seed: seeds the DataLoader generator (worker seeds, shuffling without DDP) with the rank.
        pin_memory: pin batches for faster copies (only when CUDA is available).
        drop_last_train: drop the last incomplete training batch (BN statistics of a short batch
            are noisier; the paper's batches are always full).
        prefetch_factor: batches each worker prepares ahead (num_workers > 0 only).
        persistent_workers: keep workers alive between epochs (num_workers > 0 only).
        multiprocessing_context: how workers start; "fork" is the cheapest and safe with decord
            because no VideoReader ever exists in the main process. None: the platform default.
        check_files: check that every listed video exists when the lists are parsed.
    """

    def __init__(
        self,
        data_root: str,
        train_list: str | None = None,
        val_list: str | None = None,
        test_list: str | None = None,
        predict_list: str | None = None,
        classes_file: str | None = None,
        num_frames: int = 32,
        sampling_rate: int = 2,
        target_fps: float | None = None,
        clips_per_gpu: int = 8,
        num_workers: int = 4,
        decode_threads: int = 1,
        train_short_side: tuple[int, int] = (256, 320),
        train_crop: int = 224,
        flip: bool = True,
        test_short_side: int = 256,
        val_crop: int = 224,
        test_crop: int = 256,
        num_test_clips: int = 10,
        num_test_crops: int = 3,
        mean: tuple[float, float, float] = (0.45, 0.45, 0.45),
        std: tuple[float, float, float] = (0.225, 0.225, 0.225),
        max_bad_fraction: float = 0.01,
        max_retries: int = 10,
        seed: int = 0,
        pin_memory: bool = True,
        drop_last_train: bool = True,
        prefetch_factor: int = 2,
        persistent_workers: bool = True,
        multiprocessing_context: str | None = "fork" if sys.platform.startswith("linux") else None,
        check_files: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.data_root = data_root
        self.lists = {"train": train_list, "val": val_list, "test": test_list, "predict": predict_list}
        # The clip settings, once, as one object every consumer takes (datasets, benchmarks).
        self.clip = ClipSpec(num_frames=num_frames, sampling_rate=sampling_rate, target_fps=target_fps,
                             train_short_side=tuple(train_short_side), train_crop=train_crop, flip=flip,
                             test_short_side=test_short_side, val_crop=val_crop, test_crop=test_crop,
                             num_test_clips=num_test_clips, num_test_crops=num_test_crops)
        self.clips_per_gpu, self.num_workers, self.decode_threads = clips_per_gpu, num_workers, decode_threads
        self.mean, self.std = tuple(mean), tuple(std)
        self.max_bad_fraction, self.max_retries, self.seed = max_bad_fraction, max_retries, seed
        self.pin_memory, self.drop_last_train, self.prefetch_factor = pin_memory, drop_last_train, prefetch_factor
        self.persistent_workers, self.multiprocessing_context = persistent_workers, multiprocessing_context
        self.check_files = check_files
        self._check_settings()
        # Classes now, from a small text file only: LightningCLI links data.num_classes into the
        # model right after this __init__.
        self.classes_file = classes_file or self._find_classes_file()
        self.classes: list[str] = read_classes(self.classes_file)
        self.num_classes: int = len(self.classes)
        self._entries: dict[str, list[VideoEntry]] = {}
        self._datasets: dict[str, ClipDataset] = {}
        self._bad: dict[str, dict[int, BadVideo]] = {s: {} for s in SPLITS}
        self._logged: set[str] = set()  # paths already logged this run: each is logged once
        self.last_batch_replaced = 0

    def _check_settings(self) -> None:
        # Now, while the config is parsed, every problem at once with its `data.` name.
        problems = self.clip.problems(prefix="data.")
        problems += [f"data.{name} must be >= 1, got {getattr(self, name)}"
                     for name in ("clips_per_gpu", "decode_threads") if getattr(self, name) < 1]
        problems += [f"data.{name} must be >= 0, got {getattr(self, name)}"
                     for name in ("num_workers", "max_retries") if getattr(self, name) < 0]
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            problems.append(f"data.max_bad_fraction must be in [0, 1], got {self.max_bad_fraction}")
        if problems:
            raise ValueError("unusable data settings:\n  " + "\n  ".join(problems))

    def _find_classes_file(self) -> str:
        given = [p for p in self.lists.values() if p]
        for list_path in given:
            found = find_classes_file(list_path, self.data_root)
            if found is not None:
                return str(found)
        where = ", ".join(sorted({str(p) for p in given})) or "(no list given)"
        raise ListError(f"no classes.txt found beside {where} or in data_root {self.data_root}; "
                        "pass data.classes_file (one class name per line, index = line number - 1).")

    # -- lists ----------------------------------------------------------------------------------
    def entries(self, split: str) -> list[VideoEntry]:
        """The split's list, parsed and validated (missing files and unknown labels raise ListError)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split not in self._entries:
            path = self.lists[split]
            if not path:
                raise ValueError(f"no {split}_list configured (set data.{split}_list)")
            entries = parse_list(path, self.data_root, self.classes, check_files=self.check_files,
                                 allow_unlabeled=(split == "predict"), classes_source=str(self.classes_file))
            if split != "train":  # a video listed twice must not count twice in evaluation
                entries = _drop_repeats(entries, path)
            self._entries[split] = entries
        return self._entries[split]

    def setup(self, stage: str | None = None) -> None:
        # Parse (and check) every list this stage needs now, so a bad list fails before training.
        splits = _STAGE_SPLITS.get(stage, SPLITS) if stage else SPLITS
        for split in splits:
            if self.lists[split]:
                self.entries(split)
        if stage == "fit" and not self.lists["train"]:
            raise ValueError("fit needs data.train_list")
        if stage == "fit":
            self._check_one_batch()

    def _check_one_batch(self) -> None:
        # Otherwise an epoch has no batch: the run "finishes" at once, without training or checkpoint.
        n, world = len(self.entries("train")), self._world_size()
        per_process = -(-n // world)  # DistributedSampler pads to equal shares
        if per_process < (self.clips_per_gpu if self.drop_last_train else 1):
            raise ValueError(
                f"data.train_list {self.lists['train']} has {n} videos: {per_process} per process, fewer than one "
                f"batch of data.clips_per_gpu={self.clips_per_gpu} (the last short batch is dropped). Use a "
                "longer list or a smaller clips_per_gpu.")

    def dataset(self, split: str) -> ClipDataset:
        if split not in self._datasets:
            self._datasets[split] = ClipDataset(
                self.entries(split), self.data_root, self.clip, split=split, decode_threads=self.decode_threads,
                max_retries=self.max_retries, seed=self.seed, rank=self._rank())
        return self._datasets[split]

    # -- loaders --------------------------------------------------------------------------------
    def _rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def _world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def dataloader(self, split: str, sampler: torch.utils.data.Sampler | None = None) -> torch.utils.data.DataLoader:
        """A DataLoader for `split`. Pass `sampler` (e.g. a DistributedSampler) to shard by hand;
        under a Trainer with DDP, Lightning injects a DistributedSampler itself."""
        train = split == "train"
        workers = self.num_workers
        if sampler is None and train:  # epoch k's order is a function of (seed, k): resumable
            sampler = EpochShuffle(self.dataset(split), seed=self.seed)
        return CrashSafeLoader(  # a torch DataLoader that survives a decoder crashing a worker
            self.dataset(split),
            batch_size=self.clips_per_gpu,
            sampler=sampler,
            drop_last=train and self.drop_last_train,
            num_workers=workers,
            collate_fn=collate_clips,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and workers > 0,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
            multiprocessing_context=self.multiprocessing_context if workers > 0 else None,
            # Each item's random choices are seeded from this, the epoch and its position (loader.py).
            generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self._rank()),
        )

    def train_dataloader(self):
        return self.dataloader("train")

    def val_dataloader(self):
        # No val_list: no validation loop (Lightning skips an empty list), not an error.
        return self.dataloader("val") if self.lists["val"] else []

    def test_dataloader(self):
        return self.dataloader("test")

    def predict_dataloader(self):
        return self.dataloader("predict")

    # -- batches --------------------------------------------------------------------------------
    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        bad = batch.pop("bad", [])
        # Training videos that failed (and were replaced) while this batch was put together.
        self.last_batch_replaced = sum(b.split == "train" for b in bad)
        self.record_bad(bad)
        return batch

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        batch["video"] = normalize(batch["video"], self.mean, self.std)  # (B, 3, T, H, W) float
        return batch

    # -- bad videos -----------------------------------------------------------------------------
    def record_bad(self, bad: list[BadVideo]) -> None:
        """Count failures (distinct per split), log each path once, stop past max_bad_fraction."""
        for b in bad:
            self._bad[b.split].setdefault(b.video_index, b)
            if b.path not in self._logged:
                self._logged.add(b.path)
                action = ("replaced by another video" if b.split == "train"
                          else "left out of evaluation")
                log.warning("cannot decode %s (%s split): %s; %s", b.path, b.split, b.reason, action)
        for split in {b.split for b in bad}:
            self._check_fraction(split)

    def _check_fraction(self, split: str) -> None:
        # Training (and validation within fit) stops; an evaluation always finishes and writes its
        # report, which marks a result with too many videos left out as partial.
        if self.trainer is not None and self.trainer.state.fn != "fit":
            return
        total = len(self._entries.get(split) or self.entries(split))
        share = total / self._world_size()
        failed = self._bad[split]
        if len(failed) > self.max_bad_fraction * share:
            shown = "\n".join(f"  {b.path}: {b.reason}" for b in list(failed.values())[:5])
            list_path = self.lists[split]
            raise TooManyBadVideos(
                f"{len(failed)} videos of the {split} list {list_path} failed to decode "
                f"(more than max_bad_fraction={self.max_bad_fraction} of {share:.0f} videos"
                f"{' per process' if self._world_size() > 1 else ''}):\n{shown}\n"
                f"Find and drop every bad video with `vidgn check-videos {list_path} --data-root "
                f"{self.data_root} --write-clean CLEAN_LIST` and use CLEAN_LIST as data.{split}_list "
                "(or raise data.max_bad_fraction).")

    def bad_videos(self, split: str) -> list[BadVideo]:
        """Distinct videos of `split` that failed this run (train: since the last reset_bad)."""
        return sorted(self._bad[split].values(), key=lambda b: b.video_index)

    def bad_count(self, split: str) -> int:
        return len(self._bad[split])

    def reset_bad(self, split: str) -> None:
        self._bad[split] = {}


def _drop_repeats(entries: list[VideoEntry], list_path: str) -> list[VideoEntry]:
    """The entries with each video once (its first line), saying which lines repeated one."""
    first: dict[str, int] = {}
    kept, repeats = [], []
    for e in entries:
        if e.path in first:
            repeats.append(f"line {e.line} repeats line {first[e.path]} ({e.path})")
            continue
        first[e.path] = e.line
        kept.append(e)
    if repeats:
        log.warning("%s lists %d video(s) more than once; each is evaluated and counted once: %s%s", list_path,
                    len(repeats), "; ".join(repeats[:3]), " ..." if len(repeats) > 3 else "")
    return kept


# The name it had when it served only Kinetics; kept so that existing code and notebooks import it.
KineticsDataModule = VideoDataModule
