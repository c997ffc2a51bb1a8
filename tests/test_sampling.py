"""Frame-index arithmetic of clips (the decoded-frame checks are in test_dataset.py)."""
import numpy as np
import pytest
import torch

from vidgn.data import sampling


def test_32x2_window_is_every_second_frame_of_64():
    stride = sampling.frame_stride(2)
    assert sampling.window_span(32, stride) == 64
    idx = sampling.clip_indices(300, 10, 32, stride)
    assert idx.tolist() == list(range(10, 74, 2))


def test_64x1_window_is_64_consecutive_frames():
    stride = sampling.frame_stride(1)
    assert sampling.window_span(64, stride) == 64
    assert sampling.clip_indices(300, 5, 64, stride).tolist() == list(range(5, 69))


def test_any_n_by_s():
    idx = sampling.clip_indices(100, 3, 5, sampling.frame_stride(7))
    assert idx.tolist() == [3, 10, 17, 24, 31]


def test_short_video_loops():
    # 40 frames, 32x2 needs 64: the window starts at 0 and wraps around.
    assert sampling.max_start(40, 64) == 0
    idx = sampling.clip_indices(40, 0, 32, 2.0)
    assert idx.tolist() == [(2 * i) % 40 for i in range(32)]
    assert idx.max() < 40


def test_target_fps_stride():
    # every 2nd frame at 15 fps == every 4th frame of a 30 fps file
    stride = sampling.frame_stride(2, video_fps=30, target_fps=15)
    assert stride == 4.0
    assert sampling.clip_indices(1000, 0, 4, stride).tolist() == [0, 4, 8, 12]
    # fractional: 25 fps file at 30 fps -> stride 2 * 25 / 30 = 1.667, floored per frame
    idx = sampling.clip_indices(1000, 0, 4, sampling.frame_stride(2, 25, 30))
    assert idx.tolist() == [0, 1, 3, 5]
    with pytest.raises(ValueError, match="fps"):
        sampling.frame_stride(2, video_fps=0.0, target_fps=30)


def test_uniform_windows_cover_both_ends():
    starts = sampling.uniform_starts(300, 64, 10)
    assert len(starts) == 10 and starts[0] == 0 and starts[-1] == 300 - 64
    assert all(b > a for a, b in zip(starts, starts[1:]))
    gaps = np.diff(starts)
    assert gaps.max() - gaps.min() <= 1  # evenly spread
    assert sampling.uniform_starts(300, 64, 1) == [(300 - 64) // 2]
    assert sampling.uniform_starts(40, 64, 3) == [0, 0, 0]  # short video: looped windows from 0


def test_random_start_range_and_reproducible():
    g = torch.Generator().manual_seed(0)
    starts = [sampling.random_start(100, 64, g) for _ in range(500)]
    assert min(starts) == 0 and max(starts) == 36
    g2 = torch.Generator().manual_seed(0)
    assert starts[:20] == [sampling.random_start(100, 64, g2) for _ in range(20)]
    assert sampling.random_start(10, 64, g) == 0


def test_centre_start():
    assert sampling.centre_start(100, 64) == 18
