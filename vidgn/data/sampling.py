"""Which frames of a video make a clip.

A clip is `num_frames` frames taken every `sampling_rate` frames, i.e. a window of
`num_frames * sampling_rate` source frames. The GN paper (Wu & He 2018, Sec. 6, Table 8) trains
I3D on 32x2 clips (a 64-frame window, every 2nd frame) and 64x1 clips; any N x s works here.

With `target_fps` the stride is measured at that rate instead of the file's own: a frame every
`sampling_rate` frames *at target_fps*, i.e. every `sampling_rate * video_fps / target_fps` source
frames (fractional strides are floored per frame, so a 30 fps file sampled at 2 frames of 15 fps
takes every 4th frame; a 25 fps file every 3.33rd).

Videos shorter than the window are looped: index i maps to i mod num_video_frames, so a 40-frame
video sampled 32x2 gives 0, 2, ..., 38, 0, 2, ... . This keeps every clip the same shape without
padding with black frames.

Everything here is pure arithmetic on ints so that the exact indices can be tested.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def frame_stride(sampling_rate: int, video_fps: float | None = None, target_fps: float | None = None) -> float:
    """Source frames between two sampled frames (float when resampling to `target_fps`)."""
    if sampling_rate < 1:
        raise ValueError(f"sampling_rate must be >= 1, got {sampling_rate}")
    if target_fps is None:
        return float(sampling_rate)
    if not video_fps or video_fps <= 0 or not math.isfinite(video_fps):
        raise ValueError(f"cannot resample to target_fps={target_fps}: the video reports fps={video_fps}")
    return sampling_rate * float(video_fps) / float(target_fps)


def window_span(num_frames: int, stride: float) -> int:
    """Source frames covered by one clip window (64 for 32x2): the placement unit of windows."""
    return max(1, int(math.ceil(num_frames * stride)))


def clip_indices(num_video_frames: int, start: int, num_frames: int, stride: float) -> np.ndarray:
    """Indices of the `num_frames` frames of the clip starting at `start`, looped if the video is short.

    Returns an int64 array of shape (num_frames,), every entry in [0, num_video_frames).
    """
    if num_video_frames < 1:
        raise ValueError("video has no frames")
    offsets = np.floor(np.arange(num_frames, dtype=np.float64) * stride + 1e-6).astype(np.int64)
    return (start + offsets) % num_video_frames


def max_start(num_video_frames: int, span: int) -> int:
    """Last start at which a window of `span` frames still fits (0 when the video is shorter)."""
    return max(0, num_video_frames - span)


def random_start(num_video_frames: int, span: int, generator: torch.Generator | None = None) -> int:
    """Training: a window start drawn uniformly from every position where the window fits."""
    hi = max_start(num_video_frames, span)
    return int(torch.randint(0, hi + 1, (1,), generator=generator).item())


def centre_start(num_video_frames: int, span: int) -> int:
    """Validation: the single window centred in the video."""
    return max_start(num_video_frames, span) // 2


def uniform_starts(num_video_frames: int, span: int, num_clips: int) -> list[int]:
    """Testing: `num_clips` windows spread uniformly from the first to the last possible start.

    With K > 1 the first window starts at frame 0 and the last ends at the last frame, so the test
    views cover the whole video (the paper's 10-clip testing follows Wang et al., non-local nets);
    K == 1 is the centre window. Short videos give K identical looped windows starting at 0.
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    hi = max_start(num_video_frames, span)
    if num_clips == 1:
        return [hi // 2]
    return [int(round(hi * k / (num_clips - 1))) for k in range(num_clips)]
