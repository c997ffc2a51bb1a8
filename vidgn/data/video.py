"""Reading frames with decord: open a video, decode exactly the sampled indices as uint8.

Rules that keep decord fast and safe in DataLoader workers:
* A VideoReader is created in the process that uses it (a worker), never before a fork: decord
  holds FFmpeg contexts and decoder threads that do not survive fork. `open_video` is only called
  from Dataset.__getitem__.
* `num_threads` is explicit (default 1 per worker): decord's 0 means "one per core" in EVERY
  worker, which oversubscribes the CPU as soon as there are several workers.
* `get_batch(indices)` decodes only what is needed (seeking to the keyframe before each jump) and
  returns the frames at exactly those indices.
* pytorchvideo's decord module switches decord's bridge to torch process-wide, so get_batch may
  return a decord NDArray or a torch tensor; `decode_frames` accepts both.

Every failure (cannot open, no frames, decode error at some frame, fewer frames than asked for
because the container over-reports its length) becomes a `VideoDecodeError` carrying path and
reason, so the dataset can skip or replace the video instead of killing the worker.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded; `path` and `reason` say which and why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int  # as the container reports it (may over-report; decode_frames catches that)
    fps: float  # average frame rate


_QUIETED = False


def _quiet_ffmpeg() -> None:
    # FFmpeg prints a line per damaged packet; a bad Kinetics video can print hundreds. We report the
    # reason ourselves (once per video), so keep only fatal messages.
    global _QUIETED
    if not _QUIETED:
        import decord

        decord.logging.set_level(decord.logging.FATAL)
        _QUIETED = True


def _short(e: BaseException) -> str:
    # decord's messages carry a C++ source location and sometimes a stack trace: keep the first
    # informative line.
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


def open_video(path: str | Path, num_threads: int = 1):
    """Open `path` with decord (call this inside the worker). Returns (VideoReader, VideoInfo).

    Raises VideoDecodeError when the file is missing, empty, not a video or has no frames.
    """
    import decord

    _quiet_ffmpeg()
    path = str(path)
    try:
        if Path(path).stat().st_size == 0:
            raise VideoDecodeError(path, "empty file (0 bytes)")
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
        num_frames = len(reader)
        fps = float(reader.get_avg_fps())
        if num_frames < 1:
            raise VideoDecodeError(path, "no video frames")
    except VideoDecodeError:
        raise
    except Exception as e:  # decord raises RuntimeError/DECORDError/OSError for unreadable files
        raise VideoDecodeError(path, f"cannot open: {_short(e)}") from e
    return reader, VideoInfo(num_frames=num_frames, fps=fps)


def decode_frames(reader, indices: np.ndarray | list[int], path: str | Path = "?") -> torch.Tensor:
    """Decode the frames at `indices` (in that order, repeats allowed) -> (T, H, W, 3) uint8 tensor.

    Raises VideoDecodeError when decoding fails anywhere in the batch or returns the wrong number of
    frames (e.g. the container claimed more frames than it has).
    """
    indices = [int(i) for i in indices]
    try:
        frames = _to_torch(reader.get_batch(indices))
    except Exception as e:
        if "DECORDArrayCopyFromTo" not in str(e):
            raise VideoDecodeError(path, f"decode failed for frames {indices[0]}..{max(indices)}: {_short(e)}") from e
        # decord 0.6 bug on some narrow frames (widths 16, 24, 48, 72 among 16..700): it mistakes the
        # padded RGB row for extra channels and get_batch cannot copy the frames. Read them one by one.
        try:
            frames = _decode_sequential(reader, indices)
        except Exception as e2:
            raise VideoDecodeError(path, f"decode failed for frames {indices[0]}..{max(indices)}: {_short(e2)}") from e2
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[0] != len(indices) or frames.shape[-1] != 3:
        raise VideoDecodeError(path, f"decoder returned {tuple(frames.shape)} {frames.dtype} for {len(indices)} "
                                     "frames (container may over-report its frame count)")
    return frames  # (T, H, W, 3)


def _to_torch(array) -> torch.Tensor:
    if isinstance(array, torch.Tensor):  # decord's torch bridge is on (pytorchvideo sets it)
        return array
    try:  # zero-copy hand-over of decord's buffer; asnumpy() would copy T*H*W*3 bytes again
        return torch.utils.dlpack.from_dlpack(array.to_dlpack())
    except Exception:
        return torch.from_numpy(array.asnumpy())


def _decode_sequential(reader, indices: list[int]) -> torch.Tensor:
    """Frames at `indices` via one accurate seek and sequential reads, with padded rows unpacked."""
    wanted = sorted(set(indices))
    reader.seek_accurate(wanted[0])
    pos, got = wanted[0], {}
    for i in wanted:
        if i > pos:
            reader.skip_frames(i - pos)
        frame = _to_torch(reader.next())  # (H, W, C') with C' * W bytes per row, 3 * W valid
        pos = i + 1
        h, w, c = frame.shape
        if c != 3:
            frame = frame.reshape(h, w * c)[:, : w * 3].reshape(h, w, 3)
        got[i] = frame.clone()
    return torch.stack([got[i] for i in indices])  # (T, H, W, 3)
