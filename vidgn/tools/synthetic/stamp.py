"""Frame-index stamp codec: each frame's index written into, and read back from, its pixels.

Why: exact-index tests of samplers and decoders need to know which source frame a decoded frame
is, after H.264/VP9 compression and resizing. The index is written as a row of STAMP_BITS large
black or white blocks in the bottom STAMP_BAND of the frame (MSB first), which survives both (not
cropping); `make_synthetic(stamp_frame_index=True)` stamps every frame.
"""
from __future__ import annotations

import math

import numpy as np

STAMP_BITS = 12  # frame index stamp: up to 4095 frames (136 s at 30 fps)
STAMP_BAND = 1 / 8  # fraction of the frame height, at the bottom, that carries the stamp


def _stamp(frame: np.ndarray, index: int) -> None:
    """Write `index` into the bottom band of `frame` (H, W, 3) uint8, in place, MSB first."""
    h, w = frame.shape[:2]
    if not 0 <= index < 2**STAMP_BITS:
        raise ValueError(f"frame index {index} does not fit the {STAMP_BITS}-bit stamp")
    top = h - max(2, round(h * STAMP_BAND))
    for b in range(STAMP_BITS):
        bit = (index >> (STAMP_BITS - 1 - b)) & 1
        x0, x1 = round(b * w / STAMP_BITS), round((b + 1) * w / STAMP_BITS)
        frame[top:, x0:x1] = 255 if bit else 0


def read_frame_index(frame) -> int:
    """Frame index stamped by `make_synthetic(stamp_frame_index=True)`.

    Args:
        frame: (H, W, 3) uint8 numpy array, torch tensor or decord NDArray, a whole decoded frame
            (it may be resized, not cropped).

    Raises:
        ValueError: the frame carries no readable stamp.
    """
    if hasattr(frame, "asnumpy"):  # decord NDArray
        frame = frame.asnumpy()
    elif not isinstance(frame, np.ndarray):  # torch tensor
        frame = frame.detach().cpu().numpy()
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"expected one (H, W, 3) frame, got shape {tuple(frame.shape)}")
    h, w = frame.shape[:2]
    band = h * STAMP_BAND
    # Read only the centre of each block: its edges are blurred by compression and resizing.
    y0, y1 = int(h - 0.75 * band), max(int(h - 0.25 * band), int(h - 0.75 * band) + 1)
    index = 0
    for b in range(STAMP_BITS):
        x0 = int((b + 0.25) * w / STAMP_BITS)
        x1 = max(int(math.ceil((b + 0.75) * w / STAMP_BITS)), x0 + 1)
        level = float(frame[y0:y1, x0:x1].astype(np.float32).mean())
        if 70 < level < 185:
            raise ValueError(f"no frame-index stamp in this frame (bit {b} reads grey level {level:.0f}; "
                             "was it made with stamp_frame_index=True, and is it uncropped?)")
        index = (index << 1) | int(level >= 128)
    return index
