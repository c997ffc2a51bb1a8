"""The files of `vidgn bench decoders`: real encoded videos of the kinds Kinetics downloads contain.

Why real files: decoder bugs live in codecs, containers, pixel formats, row padding and metadata
(rotation, irregular timestamps), none of which an array pretending to be a video has. Every file
is written with PyAV (FFmpeg's own encoders), every frame carries its index (a grid of random
blocks drawn from the index, plus the `stamp.py` bit stamp where the frame is wide enough to read
it), so a decoded frame can be matched to the one PyAV decodes at the same index.

`reference_frames` is the ground truth: PyAV's decoded frames, in display orientation (the
container's display matrix applied, as ffmpeg, browsers and YouTube show the video).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidgn.tools.synthetic.stamp import _stamp

STAMP_MIN_WIDTH = 96  # narrower frames blur the 12 stamp bits together; pixel matching still works


@dataclass(frozen=True)
class Case:
    name: str
    codec: str  # PyAV encoder name
    ext: str  # container, by file extension
    width: int  # coded size
    height: int
    pix_fmt: str = "yuv420p"
    frames: int = 96
    fps: int = 30
    rotation: int = 0  # display matrix rotation, degrees counter-clockwise (PyAV's convention)
    vfr: bool = False  # irregular frame durations (as phone and screen recordings have)
    group: str = "format"  # "format" rows or the "width" sweep


# Encoder settings close to what real downloads have: B-frames (reordered timestamps) and a keyframe
# every 2 s, so clips that start mid-video seek to a keyframe and decode forward.
_OPTIONS = {
    "libx264": {"preset": "veryfast", "g": "60"},
    "libx265": {"preset": "superfast", "g": "60", "x265-params": "log-level=error"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "g": "60", "row-mt": "1"},
    "libsvtav1": {"preset": "12", "g": "60", "crf": "15", "svtav1-params": "lp=1"},
    "mjpeg": {"q:v": "3"},
}
SHORT = {"libx264": "H.264", "libx265": "HEVC", "libvpx-vp9": "VP9", "libsvtav1": "AV1", "mjpeg": "MJPEG"}


def matrix_cases(kind: str = "full") -> list[Case]:
    """The matrix: "full" (formats, sizes, rotation, VFR, width sweep) or "tiny" (a few, for tests)."""
    if kind == "tiny":
        return [Case("h264_mp4_64", "libx264", "mp4", 64, 48, frames=24),
                Case("av1_mp4_64", "libsvtav1", "mp4", 64, 48, frames=24),
                Case("h264_mp4_24w", "libx264", "mp4", 24, 32, frames=16, group="width")]
    w, h = 340, 256  # the short side Kinetics is usually resized to, at its 4:3-ish aspect
    cases = [
        Case("h264_mp4", "libx264", "mp4", w, h), Case("h264_mkv", "libx264", "mkv", w, h),
        Case("h264_avi", "libx264", "avi", w, h), Case("h264_10bit_mp4", "libx264", "mp4", w, h, "yuv420p10le"),
        Case("hevc_mp4", "libx265", "mp4", w, h), Case("hevc_mkv", "libx265", "mkv", w, h),
        Case("hevc_10bit_mp4", "libx265", "mp4", w, h, "yuv420p10le"),
        Case("vp9_webm", "libvpx-vp9", "webm", w, h), Case("vp9_mp4", "libvpx-vp9", "mp4", w, h),
        # (no VP9 10-bit: PyAV's libvpx is built without high bit depth; YouTube uses it for HDR only)
        Case("av1_mp4", "libsvtav1", "mp4", w, h), Case("av1_webm", "libsvtav1", "webm", w, h),
        Case("av1_mkv", "libsvtav1", "mkv", w, h), Case("av1_10bit_mp4", "libsvtav1", "mp4", w, h, "yuv420p10le"),
        Case("mjpeg_avi", "mjpeg", "avi", w, h, "yuvj420p"), Case("mjpeg_mkv", "mjpeg", "mkv", w, h, "yuvj420p"),
        Case("h264_portrait_mp4", "libx264", "mp4", h, w),  # coded portrait, no metadata
        Case("h264_rot90_mp4", "libx264", "mp4", w, h, rotation=90),  # phone-style: landscape coded
        Case("h264_rot-90_mp4", "libx264", "mp4", w, h, rotation=-90),
        Case("h264_rot180_mp4", "libx264", "mp4", w, h, rotation=180),
        Case("av1_rot90_mp4", "libsvtav1", "mp4", w, h, rotation=90),
        Case("h264_vfr_mp4", "libx264", "mp4", w, h, vfr=True), Case("h264_vfr_mkv", "libx264", "mkv", w, h, vfr=True),
        Case("vp9_vfr_webm", "libvpx-vp9", "webm", w, h, vfr=True), Case("av1_vfr_mp4", "libsvtav1", "mp4", w, h, vfr=True),
    ]
    for cw, ch in [(640, 360), (1280, 720), (1920, 1080)]:
        for codec, ext in [("libx264", "mp4"), ("libvpx-vp9", "webm"), ("libsvtav1", "mp4")]:
            cases.append(Case(f"{SHORT[codec].lower().replace('.', '')}_{ext}_{ch}p", codec, ext, cw, ch, frames=72))
    for codec, ext in [("libvpx-vp9", "webm"), ("libsvtav1", "mp4"), ("libx265", "mp4")]:
        cases.append(Case(f"{SHORT[codec].lower()}_{ext}_96w", codec, ext, 96, 72, frames=24))
    # Widths 16..256: decoders mis-copy frames whose RGB rows need padding to an alignment.
    cases += [Case(f"h264_mp4_{cw}w", "libx264", "mp4", cw, 32, frames=16, group="width")
              for cw in range(16, 257, 8)]
    return cases


def frame_image(index: int, width: int, height: int) -> np.ndarray:
    """Frame `index`: an 8x6 grid of dark/bright blocks drawn from the index (about half the blocks
    differ between any two frames, so neighbours never look alike) and the index stamp."""
    grid = np.random.default_rng(index).integers(0, 2, (6, 8)) * 200 + 28
    rows = np.minimum(np.arange(height) * 6 // height, 5)
    cols = np.minimum(np.arange(width) * 8 // width, 7)
    img = np.repeat(grid[rows][:, cols][:, :, None], 3, axis=2).astype(np.uint8)
    img[..., 1] = 255 - img[..., 1]  # colour, so chroma matters too
    if width >= STAMP_MIN_WIDTH:
        _stamp(img, index)
    return img


def _vfr_pts_ms(n: int, fps: int) -> list[int]:
    # Durations cycling through 0.5x, 1x and 2x the nominal frame time.
    step, pts, t = 1000 / fps, [], 0.0
    for i in range(n):
        pts.append(round(t))
        t += step * (0.5, 1.0, 2.0)[i % 3]
    return pts


def write_case(case: Case, folder: str | Path) -> Path:
    """Encode `case` into `folder` (kept when its sidecar says it is the same case)."""
    import av

    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints ~20 info lines per file otherwise
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case.name}.{case.ext}"
    sidecar = path.with_name(path.name + ".json")
    spec = {**asdict(case), "options": _OPTIONS[case.codec]}  # a changed setting re-encodes
    if path.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == spec:
        return path
    with av.open(str(path), "w") as c:
        s = c.add_stream(case.codec, rate=case.fps, options=dict(_OPTIONS[case.codec]))
        s.width, s.height, s.pix_fmt = case.width, case.height, case.pix_fmt
        if case.rotation:
            s.set_display_rotation(case.rotation)
        pts = _vfr_pts_ms(case.frames, case.fps) if case.vfr else None
        if pts:
            s.codec_context.time_base = Fraction(1, 1000)
        for i in range(case.frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, case.width, case.height), format="rgb24")
            if pts:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    sidecar.write_text(json.dumps(spec))
    return path


def reference_frames(path: str | Path) -> tuple[list[np.ndarray], int]:
    """PyAV's decoded frames of `path` as RGB (H, W, 3) uint8 in display orientation, and the
    rotation (degrees counter-clockwise) that was applied to the coded frames."""
    import av

    frames, rotation = [], 0
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            rotation = int(f.rotation or 0)
            img = f.to_ndarray(format="rgb24")
            frames.append(np.ascontiguousarray(np.rot90(img, k=(rotation // 90) % 4)) if rotation else img)
    return frames, rotation


def match(frame: np.ndarray, candidates: list[np.ndarray], index: int, tol: float = 12.0) -> tuple[bool, float]:
    """Is `frame` candidate `index`? Returns (verdict, mean absolute difference to it).

    True when that difference is within `tol` grey levels and under a quarter of the difference to
    each of the frames around it (which differ from it by ~100: half the blocks flip). Why not 0:
    8-bit files decode bit-identically in PyAV and both decord builds, but 10-bit H.264 is converted
    to 8-bit RGB slightly differently (mean 2-3 levels at 340x256, up to ~8 at 64x48: block edges).
    """
    if frame.shape != candidates[index].shape:
        return False, float("inf")
    diff = lambda j: float(np.abs(frame.astype(np.int16) - candidates[j]).mean())  # noqa: E731
    own = diff(index)
    others = [diff(j) for j in range(max(0, index - 2), min(len(candidates), index + 3)) if j != index]
    return own <= tol and all(own < d / 4 for d in others), own


def check_reference(case: Case, frames: list[np.ndarray], rotation: int) -> str | None:
    """None if PyAV's decode of the file is the source (frame count, orientation, content)."""
    if len(frames) != case.frames:
        return f"PyAV decodes {len(frames)} frames, {case.frames} were encoded"
    if rotation % 360 != case.rotation % 360:
        return f"PyAV reads rotation {rotation}, {case.rotation} was written"
    k = (case.rotation // 90) % 4
    source = [np.rot90(frame_image(i, case.width, case.height), k) for i in range(case.frames)]
    # Lossy encoding of frames that share nothing moves pixels by far more than decoders differ
    # (over 60 levels at AV1 preset 12, 1080p): only "closer to its own source frame than to its
    # neighbours".
    bad = [i for i, f in enumerate(frames)
           if not all(np.abs(f.astype(np.int16) - source[i]).mean() < np.abs(f.astype(np.int16) - source[j]).mean()
                      for j in range(max(0, i - 2), min(len(source), i + 3)) if j != i)]
    return f"PyAV frames {bad[:5]} are not the source frames at their index" if bad else None
