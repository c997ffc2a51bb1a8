"""Map-style clip datasets over a parsed video list, the collate function, and bad-video records.

One dataset class serves every split; `split` picks the sampling:

* train: one random window, random short side + random crop + flip; one row per item.
* val: the centre window, short side `test_short_side`, centre crop `val_crop`; one row per item.
* test / predict: item i is (video i // K, window i % K) of K = `num_test_clips` uniform windows;
  its window is decoded once and all `num_test_crops` crops come out as separate rows, so an item
  gives `num_test_crops` rows and a batch of B items has B * num_test_crops rows.

Every item is a dict of tensors whose first dim is the item's rows (V):
`video` uint8 (V, 3, T, H, W), `label`, `video_index`, `clip_index`, `crop_index` long (V,), plus
`bad`, the list of `BadVideo`s met while producing it. A video that fails to decode:
* in training is replaced by another randomly chosen video (up to `max_retries` tries) and listed
  in `bad`, so the run goes on and the DataModule can count and log it;
* in evaluation is never substituted: the item comes back with V = 0 rows and the video in `bad`,
  so evaluation leaves it out and reports it.
Nothing a video does can raise out of __getitem__, so one file never kills a worker.
"""
from __future__ import annotations

import logging
import os
from typing import NamedTuple, Sequence

import cv2
import numpy as np
import torch

from vidgn.data import sampling
from vidgn.data.lists import VideoEntry, resolve
from vidgn.data.transforms import check_settings, eval_views, train_view
from vidgn.data.video import VideoDecodeError, decode_frames, open_video

log = logging.getLogger("vidgn.data")
SPLITS = ("train", "val", "test", "predict")


class BadVideo(NamedTuple):
    """A video that failed to decode. A NamedTuple so it pickles cheaply out of workers and
    DataLoader/Lightning collection utilities pass it through untouched."""

    split: str
    video_index: int  # position in the split's list
    path: str
    reason: str


class ClipDataset(torch.utils.data.Dataset):
    """Clips of the videos in `entries` (a parsed list), uint8, ready for `collate_clips`.

    Args:
        entries: the split's parsed list (`lists.parse_list`).
        data_root: folder the list's relative paths are relative to.
        split: one of train / val / test / predict; chooses sampling and transforms (module doc).
        num_frames: frames per clip (T), 32 or 64 in the paper.
        sampling_rate: source frames between sampled frames, 2 or 1 in the paper.
        target_fps: measure `sampling_rate` at this frame rate instead of the file's (None: the file's).
        decode_threads: decord threads per reader (per worker).
        train_short_side: training short-side range [lo, hi] (paper: [256, 320]).
        train_crop: training crop size (paper: 224).
        flip: random horizontal flip in training.
        test_short_side: short side for val/test (paper: 256).
        val_crop: centre crop for val (224).
        test_crop: crop size for test/predict (paper: 256, fully convolutional testing).
        num_test_clips: uniform windows per video for test/predict (paper: 10).
        num_test_crops: spatial crops per window for test/predict, 1 or 3 (paper: 3).
        max_retries: training only: how many replacement videos to try before giving up on an item.
        seed: seeds the augmentation RNG when there are no DataLoader workers (workers seed from
            the DataLoader's per-worker seed instead).
        rank: process rank, mixed into that seed so DDP ranks augment differently.
    """

    def __init__(self, entries: Sequence[VideoEntry], data_root: str, *, split: str = "train",
                 num_frames: int = 32, sampling_rate: int = 2, target_fps: float | None = None,
                 decode_threads: int = 1, train_short_side: tuple[int, int] = (256, 320), train_crop: int = 224,
                 flip: bool = True, test_short_side: int = 256, val_crop: int = 224, test_crop: int = 256,
                 num_test_clips: int = 10, num_test_crops: int = 3, max_retries: int = 10, seed: int = 0,
                 rank: int = 0):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if num_frames < 1 or sampling_rate < 1:
            raise ValueError(f"num_frames and sampling_rate must be >= 1, got {num_frames}x{sampling_rate}")
        if num_test_clips < 1:
            raise ValueError(f"num_test_clips must be >= 1, got {num_test_clips}")
        if target_fps is not None and target_fps <= 0:
            raise ValueError(f"target_fps must be > 0 (or None for each file's rate), got {target_fps}")
        if split == "train":  # only the sizes this split uses
            problems = check_settings(train_short_side=tuple(train_short_side), train_crop=train_crop)
        elif split == "val":
            problems = check_settings(test_short_side=test_short_side, val_crop=val_crop)
        else:
            problems = check_settings(test_short_side=test_short_side, test_crop=test_crop,
                                      num_test_crops=num_test_crops)
        if problems:
            raise ValueError("unusable clip settings: " + "; ".join(problems))
        self.entries = list(entries)
        self.data_root = str(data_root)
        self.split = split
        self.num_frames, self.sampling_rate, self.target_fps = num_frames, sampling_rate, target_fps
        self.decode_threads = decode_threads
        self.train_short_side, self.train_crop, self.flip = tuple(train_short_side), train_crop, flip
        self.test_short_side, self.val_crop, self.test_crop = test_short_side, val_crop, test_crop
        self.num_test_clips, self.num_test_crops = num_test_clips, num_test_crops
        self.max_retries, self.seed, self.rank = max_retries, seed, rank
        self._generator: tuple[int, torch.Generator] | None = None  # (pid, generator)
        self._reader_cache: tuple | None = None  # (pid, video_index, reader, info), workers only
        # Native decoder crashes (see vidgn.data.loader.CrashSafeLoader): the loader hands workers a
        # shared (num_workers, 2) table of (pid, video index being decoded) and, after a worker died
        # on a video, records it here so that it is treated as a bad video from then on.
        self.in_flight: torch.Tensor | None = None
        self.crashed: dict[int, str] = {}

    # -- geometry -------------------------------------------------------------------------------
    @property
    def multi_clip(self) -> bool:
        return self.split in ("test", "predict")

    @property
    def crop_size(self) -> int:
        return {"train": self.train_crop, "val": self.val_crop}.get(self.split, self.test_crop)

    def path(self, video_index: int) -> str:
        return str(resolve(self.entries[video_index], self.data_root))

    def __len__(self) -> int:
        return len(self.entries) * (self.num_test_clips if self.multi_clip else 1)

    def frame_indices(self, num_video_frames: int, fps: float, clip_index: int = 0,
                      generator: torch.Generator | None = None) -> np.ndarray:
        """Source frame indices of one clip of a video with `num_video_frames` frames at `fps`."""
        stride = sampling.frame_stride(self.sampling_rate, fps, self.target_fps)
        span = sampling.window_span(self.num_frames, stride)
        if self.split == "train":
            start = sampling.random_start(num_video_frames, span, generator)
        elif self.split == "val":
            start = sampling.centre_start(num_video_frames, span)
        else:
            start = sampling.uniform_starts(num_video_frames, span, self.num_test_clips)[clip_index]
        return sampling.clip_indices(num_video_frames, start, self.num_frames, stride)

    # -- per-process state (created lazily inside the process that uses it) ------------------------
    def _rng(self) -> torch.Generator:
        pid = os.getpid()
        if self._generator is None or self._generator[0] != pid:
            info = torch.utils.data.get_worker_info()
            # Worker: the DataLoader's per-worker seed (derived from its generator, so from seed,
            # rank and, without persistent workers, the epoch). Main process: seed and rank.
            s = info.seed if info is not None else (self.seed * 1_000_003 + self.rank) % (2**63)
            self._generator = (pid, torch.Generator().manual_seed(s))
            # One core per loading process, as torch does for its own ops in DataLoader workers:
            # OpenCV's default pool (one thread per core) in every worker oversubscribes the CPU,
            # and a single-threaded OpenCV is also safe to fork later.
            cv2.setNumThreads(1)
        return self._generator[1]

    def _open(self, video_index: int):
        # Test/predict decode K windows of the same video in consecutive items: keep the last reader.
        # Only inside DataLoader workers, so that no VideoReader ever lives in a process that forks.
        pid = os.getpid()
        in_worker = torch.utils.data.get_worker_info() is not None
        cache = self._reader_cache
        if in_worker and cache is not None and cache[0] == pid and cache[1] == video_index:
            return cache[2], cache[3]
        self._reader_cache = None  # drop a stale reader before opening the next one
        reader, info = open_video(self.path(video_index), self.decode_threads)
        if in_worker and self.multi_clip:
            self._reader_cache = (pid, video_index, reader, info)
        return reader, info

    def __getstate__(self):
        # Never ship a reader or generator to another process (spawn/forkserver workers).
        state = dict(self.__dict__)
        state["_reader_cache"] = None
        state["_generator"] = None
        return state

    # -- items ----------------------------------------------------------------------------------
    def decode_clip(self, video_index: int, clip_index: int = 0,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """Decode one clip's frames, untransformed: ((T, H, W, 3) uint8, source frame indices).

        Raises VideoDecodeError (or anything decord raises) when the video is bad.
        """
        path = self.path(video_index)
        reader, info = self._open(video_index)
        try:
            indices = self.frame_indices(info.num_frames, info.fps, clip_index, generator)
            return decode_frames(reader, indices, path), indices
        except Exception:
            self._reader_cache = None  # a reader that failed once is not reused
            raise

    def _views(self, video_index: int, clip_index: int, generator: torch.Generator) -> torch.Tensor:
        frames, _ = self.decode_clip(video_index, clip_index, generator)  # (T, H, W, 3) uint8
        if self.split == "train":
            return train_view(frames, short_side_range=self.train_short_side, crop=self.train_crop,
                              flip=self.flip, generator=generator)
        if self.split == "val":
            return eval_views(frames, short_side=self.test_short_side, crop=self.val_crop, num_crops=1)
        return eval_views(frames, short_side=self.test_short_side, crop=self.test_crop,
                          num_crops=self.num_test_crops)  # (V, 3, T, crop, crop)

    def _bad(self, video_index: int, e: BaseException) -> BadVideo:
        path = self.path(video_index)
        reason = e.reason if isinstance(e, VideoDecodeError) else f"{type(e).__name__}: {e}"
        log.debug("bad video %s: %s", path, reason)  # the DataModule logs it once, in the main process
        return BadVideo(self.split, video_index, path, reason)

    def _item(self, video: torch.Tensor, video_index: int, clip_index: int, bad: list[BadVideo]) -> dict:
        v = video.shape[0]
        label = self.entries[video_index].label if v else 0
        return {
            "video": video,  # (V, 3, T, H, W) uint8
            "label": torch.full((v,), label, dtype=torch.long),
            "video_index": torch.full((v,), video_index, dtype=torch.long),
            "clip_index": torch.full((v,), clip_index, dtype=torch.long),
            "crop_index": torch.arange(v, dtype=torch.long),
            "bad": bad,
        }

    def _empty(self) -> torch.Tensor:
        c = self.crop_size
        return torch.empty((0, 3, self.num_frames, c, c), dtype=torch.uint8)

    def __getitem__(self, index: int) -> dict:
        return self.item(index, self._rng())

    def item(self, index: int, generator: torch.Generator) -> dict:
        """Item `index` drawing its random choices (window, scale, crop, flip, replacement) from
        `generator`; __getitem__ passes the per-process generator."""
        if self.multi_clip:
            video_index, clip_index = divmod(int(index), self.num_test_clips)
        else:
            video_index, clip_index = int(index), 0
        bad: list[BadVideo] = []
        tries = 1 + (self.max_retries if self.split == "train" else 0)
        try:
            for attempt in range(tries):
                try:
                    self._mark_in_flight(video_index)
                    if video_index in self.crashed:
                        raise VideoDecodeError(self.path(video_index), self.crashed[video_index])
                    return self._item(self._views(video_index, clip_index, generator), video_index, clip_index, bad)
                except Exception as e:  # any failure is about this video; the run must go on
                    bad.append(self._bad(video_index, e))
                if attempt + 1 < tries:
                    # Training: replace by another randomly chosen video, as if the sampler had drawn it.
                    video_index = int(torch.randint(0, len(self.entries), (1,), generator=generator).item())
            return self._item(self._empty(), video_index, clip_index, bad)
        finally:
            self._mark_in_flight(-1)

    def _mark_in_flight(self, video_index: int) -> None:
        # Cheap (two int64 stores into shared memory); tells the main process which video a worker
        # was decoding if the decoder takes the worker down with it.
        info = torch.utils.data.get_worker_info()
        if self.in_flight is not None and info is not None and info.id < len(self.in_flight):
            self.in_flight[info.id, 0] = os.getpid()
            self.in_flight[info.id, 1] = video_index


def collate_clips(items: list[dict]) -> dict:
    """Concatenate items' rows into a batch; failed items contribute no rows, only `bad` entries.

    Returns {"video": uint8 (N, 3, T, H, W) in channels_last_3d memory, "label"/"video_index"/
    "clip_index"/"crop_index": long (N,), "bad": list[BadVideo]}. N may be 0 when every item failed
    (evaluation); the video tensor then still has its (0, 3, T, H, W) shape.
    """
    batch = {key: torch.cat([it[key] for it in items]) for key in ("label", "video_index", "clip_index", "crop_index")}
    # Views are (T, H, W, 3)-ordered in memory; torch.cat would transpose them into the standard
    # layout element by element (several times slower), so copy each into a channels_last_3d batch.
    first = items[0]["video"]
    shape = (sum(it["video"].shape[0] for it in items), *first.shape[1:])  # (N, 3, T, H, W)
    video = torch.empty(shape, dtype=first.dtype, memory_format=torch.channels_last_3d)
    if torch.utils.data.get_worker_info() is not None:
        # In a worker, build the batch in shared memory straight away, as default_collate does:
        # otherwise sending it to the main process copies the whole batch once more.
        storage = torch.UntypedStorage._new_shared(video.untyped_storage().nbytes())
        video = torch.empty(0, dtype=first.dtype).set_(storage, 0, shape, video.stride())
    row = 0
    for it in items:
        n = it["video"].shape[0]
        video[row:row + n].copy_(it["video"])
        row += n
    batch["video"] = video
    batch["bad"] = [b for it in items for b in it["bad"]]
    return batch
