"""Map-style clip datasets over a parsed video list, the collate function, and bad-video records.

One dataset class serves every split; `split` picks the window and views (`vidgn.data.clip`). For
test / predict, item i is (video i // K, window i % K) of K = `num_test_clips` windows: the window
is decoded once and its `num_test_crops` crops come out as separate rows, so a batch of B items
has B * num_test_crops rows.

Every item is a dict of tensors whose first dim is the item's rows (V):
`video` uint8 (V, 3, T, H, W), `label`, `video_index`, `clip_index`, `crop_index` long (V,), plus
`bad`, the list of `BadVideo`s met while producing it. A video that fails to decode:
* in training is replaced by another randomly chosen video and listed in `bad`, so the run goes on,
  every batch holds its clips_per_gpu clips, and the DataModule can count and log it; when
  `max_retries` replacements fail too, the list is mostly unreadable and the item raises;
* in evaluation is never substituted: the item comes back with V = 0 rows and the video in `bad`,
  so evaluation leaves it out and reports it.
Apart from that last case, nothing a video does can raise out of __getitem__, so one file never
kills a worker.
"""
from __future__ import annotations

import logging
import os
from typing import NamedTuple, Sequence

import cv2
import numpy as np
import torch

from vidgn.data.clip import ClipSpec
from vidgn.data.lists import VideoEntry, resolve
from vidgn.data.video import VideoDecodeError, decode_frames, open_video

log = logging.getLogger("vidgn.data")


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
        clip: frames, sampling and view sizes (`ClipSpec`); only the sizes of `split` are checked.
        split: one of train / val / test / predict; chooses sampling and transforms (module doc).
        decode_threads: decord threads per reader (per worker).
        max_retries: training only: how many replacement videos to try before giving up on an item.
        seed: seeds the augmentation RNG when there are no DataLoader workers (workers seed from
            the DataLoader's per-worker seed instead).
        rank: process rank, mixed into that seed so DDP ranks augment differently.
    """

    def __init__(self, entries: Sequence[VideoEntry], data_root: str, clip: ClipSpec = ClipSpec(), *,
                 split: str = "train", decode_threads: int = 1, max_retries: int = 10, seed: int = 0,
                 rank: int = 0):
        clip.check(split)
        self.entries = list(entries)
        self.data_root = str(data_root)
        self.clip, self.split = clip, split
        self.decode_threads, self.max_retries, self.seed, self.rank = decode_threads, max_retries, seed, rank
        self._generator: tuple[int, torch.Generator] | None = None  # (pid, generator)
        self._reader_cache: tuple | None = None  # (pid, video_index, reader, info), workers only
        # Native decoder crashes (see vidgn.data.loader.CrashSafeLoader): the loader hands workers a
        # shared (num_workers, 2) table of (pid, video index being decoded) and, after a worker died
        # on a video, records it here so that it is treated as a bad video from then on.
        self.in_flight: torch.Tensor | None = None
        self.crashed: dict[int, str] = {}

    @property
    def multi_clip(self) -> bool:
        return ClipSpec.multi_clip(self.split)

    def path(self, video_index: int) -> str:
        return str(resolve(self.entries[video_index], self.data_root))

    def __len__(self) -> int:
        return len(self.entries) * self.clip.clips_per_video(self.split)

    def frame_indices(self, num_video_frames: int, fps: float, clip_index: int = 0,
                      generator: torch.Generator | None = None) -> np.ndarray:
        """Source frame indices of one clip of a video with `num_video_frames` frames at `fps`."""
        return self.clip.frame_indices(self.split, num_video_frames, fps, clip_index, generator)

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
            frames = decode_frames(reader, indices, path)
            if getattr(reader, "vidgn_failed", False):  # decoded by a fresh reader; this one is dead
                self._reader_cache = None
            return frames, indices
        except Exception:
            self._reader_cache = None  # a reader that failed once is not reused
            raise

    def _views(self, video_index: int, clip_index: int, generator: torch.Generator) -> torch.Tensor:
        frames, _ = self.decode_clip(video_index, clip_index, generator)  # (T, H, W, 3) uint8
        return self.clip.views(self.split, frames, generator)  # (V, 3, T, crop, crop) uint8

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
        c = self.clip.crop_size(self.split)
        return torch.empty((0, 3, self.clip.num_frames, c, c), dtype=torch.uint8)

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        # (index, seed) from CrashSafeLoader: the item's random choices come from its own seed, so
        # they do not depend on which process makes it (and repeat exactly after a resume).
        if isinstance(index, tuple):
            index, seed = index
            self._rng()  # per-process set-up (OpenCV threads) all the same
            return self.item(index, torch.Generator().manual_seed(int(seed)))
        return self.item(index, self._rng())

    def item(self, index: int, generator: torch.Generator) -> dict:
        """Item `index` drawing its random choices (window, scale, crop, flip, replacement) from
        `generator`; __getitem__ passes the per-process generator."""
        if self.multi_clip:
            video_index, clip_index = divmod(int(index), self.clip.num_test_clips)
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
            if self.split == "train":
                # A short batch would break BN over groups of clips (bn_clips) and change the batch
                # the LR was scaled for: a training item is a clip or a stop, never empty.
                raise VideoDecodeError(self.path(video_index), (
                    f"{tries} training videos in a row failed to decode (the last: {bad[-1].reason}); most of "
                    "the training list is unreadable: run `vidgn check-videos` on it and train on the cleaned list"))
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
