"""Spatial transforms of decoded clips, on uint8 in the workers; normalisation waits for the GPU.

The paper's recipe (Wu & He 2018, Sec. 6, after Wang et al.'s non-local nets): training scales the
short side to a random size in [256, 320], takes a random 224x224 crop and flips horizontally;
testing scales the short side to 256 and takes 3 crops of 256 along the long side (fully
convolutional testing) — or, for quick validation, one centre 224 crop.

Why uint8 and crop-then-resize: resizing every whole frame in float costs several times the decode
itself. Instead we work out the crop box in the *resized* geometry, map it back to source pixels,
cut that region out and resize only it. The box is rounded to whole source pixels, so the crop can
be off by under one source pixel compared with resize-then-crop; the filter also sees no pixels
outside the box at its edges. Neither matters for training. Multi-crop testing resizes the whole
frame once (the crops cover it anyway) and slices.

Why OpenCV for the resize and flip: on one core (a DataLoader worker) its uint8 resize and in-place
flip are faster than torchvision's resize and `torch.flip` on 3-byte pixels, and it writes straight
into the output buffer (figures in docs/benchmarks.md). cv2 works on (H, W, 3) frames, decord's
layout, so nothing is transposed. Enlarging is bilinear; shrinking uses INTER_AREA, OpenCV's
antialiased filter, as torchvision's antialias=True would.

All functions take frames as (T, H, W, 3) uint8 and return views as (V, 3, T, h, w) uint8 whose
memory is (V, T, h, w, 3)-ordered (torch.channels_last_3d): that is how the frames come out of the
decoder and the resize, so no worker spends time transposing; collate_clips keeps that layout and
`normalize` keeps it too on the device: a channels_last network takes it as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import torch


@dataclass(frozen=True)
class Box:
    """A crop rectangle in pixel coordinates: rows [top, top+height), columns [left, left+width)."""

    top: int
    left: int
    height: int
    width: int


def scaled_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(h, w) after scaling so that the shorter side is `short_side`, keeping the aspect ratio."""
    scale = short_side / min(height, width)
    if height <= width:
        return short_side, max(short_side, int(round(width * scale)))
    return max(short_side, int(round(height * scale))), short_side


def check_settings(*, train_short_side: tuple[int, int] | None = None, train_crop: int | None = None,
                   test_short_side: int | None = None, val_crop: int | None = None, test_crop: int | None = None,
                   num_test_crops: int | None = None, prefix: str = "") -> list[str]:
    """What is wrong with these sizes (one line per problem, each naming `prefix` + the setting);
    settings left None are not checked.

    Checked once up front (`ClipSpec.problems`): found later, inside a worker, such
    a mistake would look like every video failing to decode.
    """
    problems = []
    if train_short_side is not None:
        lo, hi = train_short_side
        if not 1 <= lo <= hi:
            problems.append(f"{prefix}train_short_side {list(train_short_side)} must be [lo, hi] with 1 <= lo <= hi")
        elif train_crop is not None and train_crop > lo:
            problems.append(f"{prefix}train_crop {train_crop} is larger than the smallest training short side "
                            f"{prefix}train_short_side[0] = {lo}: lower the crop or raise the short side")
    for name, crop in (("val_crop", val_crop), ("test_crop", test_crop)):
        if crop is not None and test_short_side is not None and crop > test_short_side:
            problems.append(f"{prefix}{name} {crop} is larger than {prefix}test_short_side {test_short_side}, "
                            "the short side of the frames it is cut from")
    if min(v for v in (train_crop, val_crop, test_crop, test_short_side, 1) if v is not None) < 1:
        problems.append(f"crop sizes and {prefix}test_short_side must be >= 1")
    if num_test_crops is not None and num_test_crops not in (1, 3):
        problems.append(f"{prefix}num_test_crops must be 1 (centre) or 3 (along the long side), got {num_test_crops}")
    return problems


def multi_crop_boxes(height: int, width: int, crop: int, num_crops: int) -> list[Box]:
    """Crops of `crop` x `crop` for testing, in the (already scaled) frame of size (height, width).

    num_crops == 1: the centre crop. num_crops == 3: first / centre / last along the long side
    (left, centre, right for landscape; top, centre, bottom for portrait), centred on the short
    side, so together they cover both ends of the frame (the paper's 3-crop testing).
    """
    if crop > min(height, width):
        raise ValueError(f"crop {crop} is larger than the scaled frame {height}x{width}; "
                         "use a crop no larger than the short side")
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    centre_top, centre_left = (height - crop) // 2, (width - crop) // 2
    if num_crops == 1:
        return [Box(centre_top, centre_left, crop, crop)]
    if width >= height:
        return [Box(centre_top, left, crop, crop) for left in (0, centre_left, width - crop)]
    return [Box(top, centre_left, crop, crop) for top in (0, centre_top, height - crop)]


def source_box(height: int, width: int, scaled: tuple[int, int], box: Box) -> Box:
    """Map a box given in the scaled frame back to whole source pixels (clamped to the frame)."""
    sy, sx = height / scaled[0], width / scaled[1]
    top, left = int(round(box.top * sy)), int(round(box.left * sx))
    h = max(1, min(height - top, int(round(box.height * sy))))
    w = max(1, min(width - left, int(round(box.width * sx))))
    return Box(top, left, h, w)


def _check_frames(frames: torch.Tensor) -> None:
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {tuple(frames.shape)} {frames.dtype}")


def _crop_resize(frames: torch.Tensor, box: Box, out_hw: tuple[int, int], flip: bool = False) -> torch.Tensor:
    """frames (T, H, W, 3) uint8 -> the box's pixels resized to out_hw, (T, out_h, out_w, 3) uint8,
    mirrored left-right when `flip`. A view (no copy) when no resize and no flip is needed."""
    region = frames[:, box.top:box.top + box.height, box.left:box.left + box.width]
    if (box.height, box.width) == tuple(out_hw) and not flip:
        return region
    out_h, out_w = out_hw
    out = torch.empty((frames.shape[0], out_h, out_w, 3), dtype=torch.uint8)
    src, dst = region.numpy(), out.numpy()  # shared memory, no copies
    same = (box.height, box.width) == tuple(out_hw)
    shrink = box.height > out_h or box.width > out_w
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    for t in range(src.shape[0]):
        if same:
            cv2.flip(src[t], 1, dst=dst[t])
            continue
        cv2.resize(src[t], (out_w, out_h), dst=dst[t], interpolation=interp)
        if flip:
            cv2.flip(dst[t], 1, dst=dst[t])  # in place: the row is still in cache
    return out


def _as_views(views: list[torch.Tensor]) -> torch.Tensor:
    """[(T, h, w, 3)] * V -> (V, 3, T, h, w) with (V, T, h, w, 3) memory order."""
    if len(views) == 1:  # a view, not a copy: collate's copy into the batch is the only one
        return views[0].permute(3, 0, 1, 2).unsqueeze(0)
    return torch.stack(views).permute(0, 4, 1, 2, 3)


def train_view(frames: torch.Tensor, *, short_side_range: tuple[int, int] = (256, 320), crop: int = 224,
               flip: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training augmentation: random short side in [lo, hi], random crop, random horizontal flip.

    frames: (T, H, W, 3) uint8. Returns (1, 3, T, crop, crop) uint8.
    """
    lo, hi = short_side_range
    problems = check_settings(train_short_side=(lo, hi), train_crop=crop)
    if problems:
        raise ValueError("; ".join(problems))
    _check_frames(frames)
    height, width = frames.shape[1:3]
    short = int(torch.randint(lo, hi + 1, (1,), generator=generator).item())
    scaled = scaled_size(height, width, short)
    top = int(torch.randint(0, scaled[0] - crop + 1, (1,), generator=generator).item())
    left = int(torch.randint(0, scaled[1] - crop + 1, (1,), generator=generator).item())
    src = source_box(height, width, scaled, Box(top, left, crop, crop))
    mirror = flip and bool(torch.rand((), generator=generator) < 0.5)
    return _as_views([_crop_resize(frames, src, (crop, crop), flip=mirror)])  # (1, 3, T, crop, crop)


def eval_views(frames: torch.Tensor, *, short_side: int = 256, crop: int = 256, num_crops: int = 3) -> torch.Tensor:
    """Deterministic test/validation views: scale the short side, then 1 centre or 3 crops.

    frames: (T, H, W, 3) uint8. Returns (num_crops, 3, T, crop, crop) uint8, crops ordered as
    multi_crop_boxes (left/top, centre, right/bottom).
    """
    _check_frames(frames)
    height, width = frames.shape[1:3]
    scaled = scaled_size(height, width, short_side)
    boxes = multi_crop_boxes(*scaled, crop, num_crops)
    if num_crops == 1:
        return _as_views([_crop_resize(frames, source_box(height, width, scaled, boxes[0]), (crop, crop))])
    # The crops cover the whole frame: one resize of everything beats three overlapping ones.
    if scaled != (height, width):
        frames = _crop_resize(frames, Box(0, 0, height, width), scaled)
    return _as_views([frames[:, b.top:b.top + b.height, b.left:b.left + b.width] for b in boxes])


def normalize(video: torch.Tensor, mean: tuple[float, float, float] = (0.45, 0.45, 0.45),
              std: tuple[float, float, float] = (0.225, 0.225, 0.225), *,
              memory_format: torch.memory_format = torch.preserve_format) -> torch.Tensor:
    """uint8 (B, 3, T, H, W) in [0, 255] -> float32 ((x / 255) - mean) / std, on x's device.

    Run on the GPU after the batch transfer: moving uint8 is 4x less traffic than float and the
    arithmetic is free there. mean/std 0.45/0.225 on [0, 1] are the PySlowFast Kinetics defaults (the
    paper does not state them).

    One elementwise pass, x * (1 / (255 std)) - mean / std, whose output takes the input's layout by
    default: the collated batch is channels_last_3d, which is what a channels_last network wants, so
    nothing is transposed here (VideoClassifier.forward puts the batch in the network's layout, a
    no-op then). `memory_format` asks for another layout, written in the same pass.
    """
    shape = (1, -1, 1, 1, 1)
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32, device=video.device).view(shape)
    shift = torch.tensor([-m / s for m, s in zip(mean, std)], dtype=torch.float32, device=video.device).view(shape)
    out = torch.empty_like(video, dtype=torch.float32, memory_format=memory_format)
    return torch.addcmul(shift, video, scale, out=out)  # (B, 3, T, H, W) float32
