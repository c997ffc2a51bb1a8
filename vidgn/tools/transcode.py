"""One video of `vidgn resize-videos`, in a worker process: decode with PyAV, scale to the output
size (square pixels, rotation applied), encode H.264 with the source's timestamps, and write the
result atomically (`resize_video`: a temporary `.NAME.<pid>.part`, renamed when complete and
verified). The command, what it resizes and the pool it runs in are in `vidgn.tools.resize`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

from vidgn.tools.truncation import declared_duration, inspect_file, truncation

PART_SUFFIX = ".part"


@dataclass(frozen=True)
class ResizeSettings:
    short_side: int = 320
    crf: int = 23
    preset: str = "fast"
    upscale: bool = False


def output_size(width: int, height: int, *, short_side: int, sar: Fraction = Fraction(1),
                rotation: int = 0, upscale: bool = False) -> tuple[int, int]:
    """(width, height) of the output, as displayed: square pixels, rotation applied, short side
    `short_side` (or the source's own if it is smaller and not `upscale`), both sides even."""
    dw, dh = Fraction(width) * (sar if sar and sar > 0 else 1), Fraction(height)
    if rotation % 180:
        dw, dh = dh, dw
    short = min(dw, dh)
    scale = Fraction(short_side) / short if (short > short_side or upscale) else Fraction(1)

    def even(x: Fraction) -> int:  # yuv420p and H.264 need even sides
        return max(2, 2 * round(x * scale / 2))

    return even(dw), even(dh)


@dataclass(frozen=True)
class _Colour:
    """How the source's YUV is read as RGB (FFmpeg's AVColorSpace/Primaries/Trc codes, 2 =
    unspecified) and its range ("JPEG" = full, 0-255; "MPEG" = limited, 16-235)."""
    matrix: int
    primaries: int
    trc: int
    range: str


def _colour_of(frame) -> _Colour:
    full = frame.color_range == 2 or frame.format.name.startswith("yuvj")  # yuvj*: JPEG's full range
    if not frame.format.name.startswith("yuv"):  # RGB/grey sources: converted with FFmpeg's default
        return _Colour(2, 2, 2, "JPEG" if full else "MPEG")
    return _Colour(int(frame.colorspace), int(frame.color_primaries), int(frame.color_trc),
                   "JPEG" if full else "MPEG")


def _tag_colour(codec_context, colour: _Colour) -> None:
    """Tag the output as the source is, so decoders read its YUV with the source's matrix: scaling
    YUV keeps the matrix, and an untagged video is read as BT.601 by FFmpeg (decord), so a BT.709
    source (YouTube's HD) would change colour by up to 25 levels. The range becomes limited: the
    scaler converts full-range sources (phones, MJPEG), since limited is what players assume."""
    codec_context.colorspace = colour.matrix
    codec_context.color_primaries = colour.primaries
    codec_context.color_trc = colour.trc
    codec_context.color_range = 1  # limited (MPEG)


def _rotate_yuv420p(frame, quarter_turns: int):
    """`frame` (yuv420p) rotated counterclockwise by `quarter_turns` x 90 degrees."""
    import av
    import numpy as np

    h, w = frame.height, frame.width
    planes = frame.to_ndarray()  # (h * 3 / 2, w): the Y plane, then U and V, each (h/2, w/2)
    y = planes[:h]
    uv = planes[h:].reshape(2, h // 2, w // 2)
    y = np.rot90(y, quarter_turns)
    u, v = (np.rot90(p, quarter_turns) for p in uv)
    out = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(-1, y.shape[1])
    return av.VideoFrame.from_ndarray(out, format="yuv420p")


def transcode(src: str, out_path: str, settings: ResizeSettings) -> int:
    """Decode `src`, scale, encode H.264 to `out_path` (mp4); the number of frames written.

    Raises ValueError (with the reason) for a source that is unusable; FFmpeg's errors pass through.
    """
    import av

    with av.open(src) as inp:
        if not inp.streams.video:
            raise ValueError("no video stream" if inp.streams else
                             "no streams at all: not a video, or cut short before its header")
        ist = inp.streams.best("video")  # the stream FFmpeg (and decord) would show, as prepared
        # One decode thread and one x264 thread per video: parallelism comes from --workers, which
        # scales better than threads inside one small video.
        ist.thread_count = 1
        declared = declared_duration(inp, ist)
        out = av.open(out_path, "w", format="mp4")
        try:
            ost, turns, frames = None, 0, 0
            durations: dict[int, int] = {}  # pts -> duration, to give packets the source's
            last_pts = None
            end_s = 0.0
            for frame in inp.decode(ist):
                if ost is None:
                    sar = ist.codec_context.sample_aspect_ratio or ist.sample_aspect_ratio or Fraction(1)
                    turns = round((frame.rotation or 0) / 90) % 4
                    width, height = output_size(frame.width, frame.height, short_side=settings.short_side,
                                                sar=sar, rotation=90 * turns, upscale=settings.upscale)
                    rate = ist.average_rate or ist.guessed_rate or 25
                    ost = out.add_stream("libx264", rate=rate, options={
                        "crf": str(settings.crf), "preset": settings.preset})
                    ost.width, ost.height, ost.pix_fmt = width, height, "yuv420p"
                    ost.thread_count = 1
                    colour = _colour_of(frame)
                    _tag_colour(ost.codec_context, colour)
                    # The source's time base, so every pts carries over exactly (VFR included).
                    ost.codec_context.time_base = ist.time_base
                    ost.time_base = ist.time_base
                    # Scaled in the source's orientation; rotated after.
                    scaled_size = (height, width) if turns % 2 else (width, height)
                pts = frame.pts
                if pts is None:  # no timestamp (some AVI/raw streams): the next one at the nominal rate
                    pts = 0 if last_pts is None else last_pts + max(1, round(1 / (rate * ist.time_base)))
                elif last_pts is not None and pts <= last_pts:
                    # Repeated/backwards pts (broken muxers): nudge by one tick, keeping every frame;
                    # mp4 needs strictly increasing timestamps.
                    pts = last_pts + 1
                last_pts = pts
                img = frame.reformat(width=scaled_size[0], height=scaled_size[1], format="yuv420p",
                                     interpolation="BICUBIC",  # ffmpeg's default scaler
                                     src_color_range=colour.range, dst_color_range="MPEG")
                if turns:
                    img = _rotate_yuv420p(img, turns)
                img.pts, img.time_base = pts, ist.time_base
                durations[pts] = frame.duration or 0
                end_s = float((pts + (frame.duration or 0) - (ist.start_time or 0)) * ist.time_base)
                for packet in ost.encode(img):
                    _mux(out, packet, durations)
                frames += 1
            if ost is None:
                raise ValueError("no frame decodes")
            for packet in ost.encode():
                _mux(out, packet, durations)
        finally:
            out.close()
    # Resizing would hide the damage: the new file would declare its shorter duration, or have
    # smooth frame times over the frames that are gone.
    damaged = truncation(end_s, declared) or inspect_file(src)[1]
    if damaged:
        raise ValueError(damaged)
    return frames


def _mux(out, packet, durations: dict[int, int]) -> None:
    # libx264 (with B-frames) does not hand frame durations on to its packets; without them the mp4
    # muxer guesses the last frame's duration from the one before, changing a VFR video's duration.
    if packet.pts is not None:
        packet.duration = durations.pop(packet.pts, 0) or packet.duration
    out.mux(packet)


def _count_video_packets(path: str) -> int:
    import av

    with av.open(path) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size)


def resize_video(src: str, dst: str, settings: ResizeSettings) -> str | None:
    """Resize `src` to `dst`; None when done, else the reason it failed. Runs in a worker process.

    Written to `.NAME.<pid>.part` beside `dst` and renamed when complete, so `dst` exists only
    complete. The pid in the name keeps a worker of an earlier, killed run (still finishing its
    video) from ever renaming this run's half-written file.
    """
    if not os.path.exists(src):
        return "file not found"
    if os.path.getsize(src) == 0:
        return "empty file"
    out_dir, name = os.path.split(dst)
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_parts(out_dir, name)
    part = os.path.join(out_dir, f".{name}.{os.getpid()}{PART_SUFFIX}")
    try:
        frames = transcode(src, part, settings)
        written = _count_video_packets(part)
        if written != frames:
            return f"wrote {written} of {frames} frames"
        os.replace(part, dst)
        return None
    except Exception as e:  # FFmpeg errors, unusable sources: reported, the run goes on
        import av

        if isinstance(e, av.error.FFmpegError):
            return f"{type(e).__name__}: {e.strerror or e}"
        return str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
    finally:
        if os.path.exists(part):
            os.unlink(part)


def remove_stale_parts(out_dir: str, name: str) -> None:
    """Remove the temporary files of output `name` in `out_dir` (any pid's: a killed run's too)."""
    prefix = f".{name}."
    if not os.path.isdir(out_dir):
        return
    for entry in os.listdir(out_dir):
        if entry.startswith(prefix) and entry.endswith(PART_SUFFIX):
            try:
                os.unlink(os.path.join(out_dir, entry))
            except FileNotFoundError:
                pass

