"""ClipSpec: what a clip is (frames, sampling) and how each split turns a video into views.

One typed object, built once by the DataModule from its flat `data.*` arguments (same names), and
taken by everything that makes clips: ClipDataset, the data benchmark, tests. Sampling arithmetic
lives in `vidgn.data.sampling`, pixel work in `vidgn.data.transforms`; this module only says which
of them a split uses with which sizes.

    split     window                      views
    train     one random window           random short side in train_short_side, random crop, flip
    val       the centre window           short side test_short_side, one centre val_crop
    test      num_test_clips uniform      short side test_short_side, num_test_crops test_crop crops
    predict   as test
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vidgn.data import sampling
from vidgn.data.transforms import check_settings, eval_views, train_view

SPLITS = ("train", "val", "test", "predict")


@dataclass(frozen=True)
class ClipSpec:
    """Clip sampling and view geometry; defaults are the GN paper's 32x2 Kinetics recipe.

    The fields are the `data.*` settings of the same names, documented once, where users set them:
    `vidgn.data.datamodule.VideoDataModule` (its docstring is the config's help text).
    """

    num_frames: int = 32
    sampling_rate: int = 2
    target_fps: float | None = None
    train_short_side: tuple[int, int] = (256, 320)
    train_crop: int = 224
    flip: bool = True
    test_short_side: int = 256
    val_crop: int = 224
    test_crop: int = 256
    num_test_clips: int = 10
    num_test_crops: int = 3

    def __post_init__(self):
        # YAML and jsonargparse hand over lists; a frozen dataclass must hash and compare as tuples.
        object.__setattr__(self, "train_short_side", tuple(self.train_short_side))

    def problems(self, split: str | None = None, prefix: str = "") -> list[str]:
        """What is wrong with these settings, one line per problem naming `prefix` + the setting;
        only the sizes `split` uses (None: every split).

        Checked before any video is read: found inside a worker, an impossible size would look like
        every video failing to decode.
        """
        problems = [f"{prefix}{name} must be >= 1, got {getattr(self, name)}"
                    for name in ("num_frames", "sampling_rate", "num_test_clips") if getattr(self, name) < 1]
        if self.target_fps is not None and self.target_fps <= 0:
            problems.append(f"{prefix}target_fps must be > 0 (or null: each file's rate), got {self.target_fps}")
        sizes = {
            "train": dict(train_short_side=self.train_short_side, train_crop=self.train_crop),
            "val": dict(test_short_side=self.test_short_side, val_crop=self.val_crop),
            "test": dict(test_short_side=self.test_short_side, test_crop=self.test_crop,
                         num_test_crops=self.num_test_crops),
        }
        if split is None:
            used = {k: v for s in sizes.values() for k, v in s.items()}
        else:
            used = sizes["test" if split == "predict" else split]
        return problems + check_settings(**used, prefix=prefix)

    def check(self, split: str | None = None, prefix: str = "") -> None:
        """Raise ValueError listing every problem (see `problems`)."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        problems = self.problems(split, prefix)
        if problems:
            raise ValueError("unusable clip settings:\n  " + "\n  ".join(problems))

    # -- per split ------------------------------------------------------------------------------
    @staticmethod
    def multi_clip(split: str) -> bool:
        """Test and predict score several windows (and crops) per video; train and val one."""
        return split in ("test", "predict")

    def clips_per_video(self, split: str) -> int:
        return self.num_test_clips if self.multi_clip(split) else 1

    def crop_size(self, split: str) -> int:
        return {"train": self.train_crop, "val": self.val_crop}.get(split, self.test_crop)

    def frame_indices(self, split: str, num_video_frames: int, fps: float, clip_index: int = 0,
                      generator: torch.Generator | None = None) -> np.ndarray:
        """Source frame indices (num_frames,) of window `clip_index` of a video of `num_video_frames`
        frames at `fps`; training draws its window from `generator`."""
        stride = sampling.frame_stride(self.sampling_rate, fps, self.target_fps)
        span = sampling.window_span(self.num_frames, stride)
        if split == "train":
            start = sampling.random_start(num_video_frames, span, generator)
        elif split == "val":
            start = sampling.centre_start(num_video_frames, span)
        else:
            start = sampling.uniform_starts(num_video_frames, span, self.num_test_clips)[clip_index]
        return sampling.clip_indices(num_video_frames, start, self.num_frames, stride)

    def views(self, split: str, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(T, H, W, 3) uint8 decoded frames -> (V, 3, T, crop, crop) uint8 views of `split`
        (V = 1 for train/val, num_test_crops for test/predict)."""
        if split == "train":
            return train_view(frames, short_side_range=self.train_short_side, crop=self.train_crop,
                              flip=self.flip, generator=generator)
        if split == "val":
            return eval_views(frames, short_side=self.test_short_side, crop=self.val_crop, num_crops=1)
        return eval_views(frames, short_side=self.test_short_side, crop=self.test_crop,
                          num_crops=self.num_test_crops)
