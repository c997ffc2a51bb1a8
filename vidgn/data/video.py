"""Reading frames with decord: open a video, decode exactly the sampled indices as uint8.

Rules that keep decord fast and safe in DataLoader workers:
* A VideoReader is created in the process that uses it (a worker), never before a fork: decord
  holds FFmpeg contexts and decoder threads that do not survive fork. `open_video` is only called
  from Dataset.__getitem__.
* `num_threads` is explicit (default 1 per worker): decord's 0 means "one per core" in EVERY
  worker, which oversubscribes the CPU as soon as there are several workers.
* `get_batch(indices)` decodes only what is needed (seeking to the keyframe before each jump) and
  returns the frames at exactly those indices.
* `get_batch` seeks by decord's keyframe index, which two kinds of file break (measured with
  `vidgn bench decoders`, docs/decoders.md, in decord 0.6.0 and decord2 3.4 alike): H.264 with
  B-frames in AVI (decord has no timestamps for it: every seek lands on frame 0) and open-GOP
  keyframes (x265's default CRA frames: decord counts a keyframe in decode order, which runs ahead
  of display order, so seeks land frames late). `open_video` detects both (decord's timestamps, and
  the keyframes' display positions from the container's packet headers, read with PyAV without
  decoding anything) and marks the reader; `decode_frames` then reads such a video from its first
  frame without seeking. Still decord decoding, only slower, for these rare files.
* A clip cut without re-encoding (`ffmpeg -ss ... -c copy`, `yt-dlp --download-sections`) starts at
  the keyframe before the cut: an mp4 edit list hides the frames before the cut, and open-GOP
  leading frames (which reference the GOP before the keyframe) cannot be decoded. decord counts
  these frames but its decoder drops them (so its late indices repeat the last frame);
  `open_video` counts them from the packet headers of the stream decord decodes, leaves them out
  of `num_frames` and marks the reader to be read from its first shown frame.
* decord's RGB copy fails on frames whose rows need padding (decord 0.6: widths 16, 24, 48, 72;
  decord2 3.4: 16, 24, 32, 48, 96, 144 of 16..256): those frames are read one by one, unpadded.
* decord2's reader reads ahead of the wanted frames by a racy amount, and a damaged packet it
  reaches kills that reader (the video's start decodes, a late damage fails it at random):
  `decode_frames` tries fresh readers before calling the video bad.
* MPEG-TS files are refused (decord skips their first GOP, even reading from the start);
  `vidgn resize-videos` turns them into mp4.
* Frames come in display orientation: decord applies the container's rotation (display matrix)
  as FFmpeg, browsers and YouTube do (measured: 90, -90, 180 degrees in mp4, both builds).
* pytorchvideo's decord module switches decord's bridge to torch process-wide, so get_batch may
  return a decord NDArray or a torch tensor; `decode_frames` accepts both.

Every failure (cannot open, no frames, decode error at some frame, fewer frames than asked for
because the container over-reports its length) becomes a `VideoDecodeError` carrying path and
reason, so the dataset can skip or replace the video instead of killing the worker.
"""
from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
from contextlib import contextmanager
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


# Why decord could not open a file is written to stderr only, not into its exception (`Error reading
# PATH...`): `[14:00:55] /project/src/video/video_reader.cc:86: ERROR opening: PATH, Invalid data
# found when processing input`. It is dmlc-core's LOG(ERROR), which writes to std::cerr from C++;
# decord.logging.set_level sets FFmpeg's log level only (it does silence FFmpeg's own lines, e.g.
# `moov atom not found`), and decord2 3.4 has no switch for dmlc's log. So while a reader is
# created, file descriptor 2 is pointed at a temporary file: that line's reason goes into ours, and
# anything else written meanwhile is passed on to stderr unchanged.
_DECORD_OPEN_ERROR_RE = re.compile(
    rb"^\[\d{2}:\d{2}:\d{2}\] \S*video_reader\.cc:\d+: ERROR opening: (.*?)\r?$")


@contextmanager
def _decord_open_errors():
    """Yield a list that, after the block, holds what decord's `ERROR opening:` lines written to
    file descriptor 2 during the block said (`PATH, reason`); every other line is written on to
    fd 2. Without a usable fd 2, nothing is taken and nothing is lost.

    The redirection is of the whole process for the block (a reader's construction: milliseconds);
    other threads' stderr in that window comes out after it, in order. Output of a crash inside the
    block is lost with the process; the crash itself is still reported (check-videos' pool, the
    DataLoader).
    """
    said: list[str] = []
    try:
        sys.stderr.flush()  # Python's buffered text goes before, to the real stderr
    except (AttributeError, OSError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (closed): nothing to keep clean
        yield said
        return
    try:
        tmp = tempfile.TemporaryFile()
    except OSError:
        os.close(saved)
        yield said
        return
    try:
        os.dup2(tmp.fileno(), 2)
        yield said
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        tmp.seek(0)
        captured = tmp.read()
        tmp.close()
        others = []
        for line in captured.splitlines(keepends=True):
            m = _DECORD_OPEN_ERROR_RE.match(line.rstrip(b"\n"))
            if m:
                said.append(m.group(1).decode("utf-8", "replace"))
            else:
                others.append(line)
        if others:
            os.write(2, b"".join(others))


# decord's messages carry log times and C++ source locations ("[16:45:58] /project/src/video/
# ffmpeg/threaded_decoder.cc:292: "), and sometimes a stack trace: none of it helps a user.
_DECORD_NOISE_RE = re.compile(r"\[\d{2}:\d{2}:\d{2}\] |\S+\.(?:cc|cpp|h):\d+: ")
# FFmpeg error codes in decord's "(CODE vs. 0)" checks, in words.
_AVERROR_WORDS = {-1094995529: "invalid data in the stream: the file is damaged there",
                  -541478725: "the file ends early", -11: "the decoder asked to be read first (EAGAIN)"}
_EAGAIN_HINT = ("; decord2 3.4 does not handle this FFmpeg answer: intact closed-GOP HEVC with "
                "B-frames fails so, and so can damage; `vidgn resize-videos` re-encodes an intact "
                "video to H.264, which decodes, and reports a damaged one")


def decord_text(text: str) -> str:
    """decord's message on one line, without its log times, C++ source locations or stack trace."""
    return _DECORD_NOISE_RE.sub("", " ".join(text.split())).split("Stack trace")[0].strip()


def _short(e: BaseException) -> str:
    """One informative line for a decoder exception (at most 500 characters)."""
    text = decord_text(str(e))
    m = re.search(r"\((-?\d+) vs\. 0\)", text)
    if m and int(m.group(1)) in _AVERROR_WORDS:
        code = int(m.group(1))
        text = f"{text[:200]} [{_AVERROR_WORDS[code]}{_EAGAIN_HINT if code == -11 else ''}]"
    return f"{type(e).__name__}: {text[:500]}" if text else type(e).__name__


def open_video(path: str | Path, num_threads: int = 1):
    """Open `path` with decord (call this inside the worker). Returns (VideoReader, VideoInfo).

    Raises VideoDecodeError when the file is missing, empty, not a video or has no frames.
    """
    import decord

    _quiet_ffmpeg()
    path = str(path)
    said: list[str] = []  # decord's own words on why it cannot open the file (stderr only)
    try:
        st = os.stat(path)  # also the file version the packet scan is cached under
        if st.st_size == 0:
            raise VideoDecodeError(path, "empty file (0 bytes)")
        with _decord_open_errors() as said:
            reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
        num_frames = len(reader)
        fps = float(reader.get_avg_fps())
        if num_frames < 1:
            raise VideoDecodeError(path, "no video frames")
    except VideoDecodeError:
        raise
    except Exception as e:  # decord raises RuntimeError/DECORDError/OSError for unreadable files
        # decord2's exception is just `Error reading PATH...`; the reason is what it printed.
        why = said[-1].removeprefix(f"{path}, ") if said else _short(e)
        raise VideoDecodeError(path, f"cannot open: {why}") from e
    scan = _scan_packets(path, st.st_size, st.st_mtime_ns)
    if scan is not None and scan.container == "mpegts":
        # decord loses the first GOP of an MPEG-TS file: its reads from the start begin at the
        # second keyframe (measured: frame 16 first, also with next()), and no index can mend that.
        raise VideoDecodeError(path, "MPEG-TS (.ts): decord skips its first frames; re-encode it with "
                                     "`vidgn resize-videos`, which writes mp4")
    if scan is not None and scan.hidden:
        # A clip cut without re-encoding starts with frames the decoder drops (_hidden_frames):
        # decord counts them, so its later indices run past the end (repeating the last frame).
        # Only the shown ones count.
        num_frames -= scan.hidden
        if num_frames < 1:
            raise VideoDecodeError(path, "no video frames (all are hidden: a cut before the first keyframe)")
    # Attributes on decord's (Python) reader keep the callers' (reader, info) API unchanged.
    reader.vidgn_seeks_exactly = _seeks_exactly(reader, len(reader), scan)
    reader.vidgn_num_threads = num_threads  # for the fresh readers decode_frames may open
    return reader, VideoInfo(num_frames=num_frames, fps=fps)


def _seeks_exactly(reader, num_frames: int, scan: "_PacketScan | None") -> bool:
    """Whether decord's seeks land on the frame asked for (see the module docstring)."""
    if scan is not None and scan.hidden:
        return False  # decord's indices count the hidden frames, its decoder does not
    try:
        keys = [int(k) for k in reader.get_key_indices()]
        stamps = np.asarray(reader.get_frame_timestamp(sorted({*keys, num_frames - 1})))
    except Exception:
        return True  # no index to check; decoding reports what goes wrong
    if not np.isfinite(stamps).all() or (stamps < 0).any():  # AV_NOPTS_VALUE (AVI) reads as -3e17
        return False
    return scan is None or scan.keyframes is None or list(scan.keyframes) == keys


@dataclass(frozen=True)
class _PacketScan:
    keyframes: tuple[int, ...] | None  # display positions of the keyframes; None: no timestamps
    hidden: int  # frames decord counts that its decoder never shows (see _hidden_frames)
    container: str = ""  # FFmpeg's name of the container format, e.g. "mov,mp4,m4a,3gp,3g2,mj2"


@functools.lru_cache(maxsize=4096)
def _scan_packets(path: str, size: int, mtime_ns: int) -> _PacketScan | None:
    """What the container's packet headers say about the stream decord decodes (FFmpeg's "best"
    video stream; PyAV, ~1 ms for a 10 s clip, nothing decoded); None when it cannot be read (then
    decord is trusted). Cached per file version (size, mtime): a worker opens the same videos
    again every epoch."""
    try:
        import av

        with av.open(path) as container:
            stream = container.streams.best("video")
            if stream is None:
                return None
            packets = [(p.pts, p.is_keyframe, p.is_discard) for p in container.demux(stream) if p.size]
            kind = container.format.name
    except Exception:
        return None
    hidden = _hidden_frames(packets)
    shown = [(pts, key) for pts, key, discard in packets if not discard]
    if any(pts is None for pts, _ in shown):
        return _PacketScan(None, hidden, kind)
    rank = {pts: i for i, pts in enumerate(sorted(pts for pts, _ in shown))}
    return _PacketScan(tuple(rank[pts] for pts, key in shown if key), hidden, kind)


def _hidden_frames(packets: list[tuple[int | None, bool, bool]]) -> int:
    """Frames that decord counts (one per packet) but the decoder never shows, at the start of a
    clip cut without re-encoding (`ffmpeg -ss ... -c copy`, `yt-dlp --download-sections`), which
    starts at the keyframe before the cut:
    * packets an mp4 edit list hides (FFmpeg marks them "discard");
    * in other containers, the frames shown before the first keyframe but decoded after it
      (open-GOP leading frames: x265's CRA, x264 --open-gop): they reference the GOP before the
      cut, which is not in the file, so the decoder drops them. Their times fall before the
      keyframe's, or are missing where the container cannot store negative times (Matroska).
    (packets: (pts, keyframe, discard) in decode order.)"""
    hidden = sum(discard for _, _, discard in packets)
    if all(pts is None for pts, _, _ in packets):
        return hidden  # no timestamps at all (AVI): nothing to tell leading frames by
    # The keyframe the file starts from (hidden by an edit list or not): only its leading frames
    # lack their references; a later keyframe's have the GOP before it.
    first = next((i for i, (_, key, _) in enumerate(packets) if key), None)
    if first is None or packets[first][0] is None:
        return hidden
    key_pts = packets[first][0]
    for pts, key, discard in packets[first + 1:]:
        if key:
            break  # leading frames come before the next keyframe
        if not discard and (pts is None or pts < key_pts):
            hidden += 1
    return hidden


# Fresh readers tried after a reader fails, before a video counts as bad. decord2's reader pushes
# packets to its decoder thread in a busy loop until a frame comes out, so how far it reads past
# the wanted frames is a race with the thread's scheduling, and a damaged packet it reaches kills
# that reader (the error is sticky). Measured on tests/test_bad_videos.py's late-corrupt mp4,
# frames 0..3 through open_video (2026-11-29, 2 cores): 0.1% of readers fail on an idle machine,
# 20% with 3 such loops sharing the 2 cores, independently of each other; 3 fresh readers leave
# 0 of 2000 and 10 of 4500 (0.2%) failing. A damaged wanted frame fails every reader, so a bad
# video costs 3 more tries (training retries bad videos every epoch: keep this small).
FRESH_READERS = 3


def decode_frames(reader, indices: np.ndarray | list[int], path: str | Path = "?") -> torch.Tensor:
    """Decode the frames at `indices` (in that order, repeats allowed) -> (T, H, W, 3) uint8 tensor.

    Raises VideoDecodeError when decoding fails anywhere in the batch or returns the wrong number of
    frames (e.g. the container claimed more frames than it has). When `reader` fails and `path` is
    the file, up to FRESH_READERS new readers try again first (a damaged packet read ahead of the
    wanted frames fails a reader at random; a damaged wanted frame fails every one). A reader that
    failed is marked `vidgn_failed`, so a caller that keeps readers open drops it.
    """
    indices = [int(i) for i in indices]
    if not indices:
        raise VideoDecodeError(path, "no frame indices to decode")
    try:
        return _checked(_decode(reader, indices), indices, path)
    except VideoDecodeError:
        raise
    except Exception as e:
        reader.vidgn_failed = True
        first = e
    for _ in range(FRESH_READERS if os.path.isfile(str(path)) else 0):
        try:
            fresh, _ = open_video(path, getattr(reader, "vidgn_num_threads", 1))
            return _checked(_decode(fresh, indices), indices, path)
        except Exception:
            continue
    span = f"{indices[0]}..{max(indices)}"
    raise VideoDecodeError(path, f"decode failed for frames {span}: {_short(first)}") from first


def _decode(reader, indices: list[int]) -> torch.Tensor:
    """The frames at `indices` from one reader; raises what decord raises."""
    if not getattr(reader, "vidgn_seeks_exactly", True):
        return _decode_from_start(reader, indices)
    try:
        return _to_torch(reader.get_batch(indices))
    except Exception as e:
        # decord's bug on frames whose RGB rows are padded (0.6: widths 16, 24, 48, 72 of 16..700;
        # decord2 3.4: 16, 24, 32, 48, 96, 144 of 16..256): get_batch cannot copy them, but the same
        # reader reads them one by one. Any other failure is the decoder's, with its own reason.
        if "DECORDArrayCopyFromTo" not in str(e):
            raise
    return _decode_sequential(reader, indices)


def _checked(frames: torch.Tensor, indices: list[int], path: str | Path) -> torch.Tensor:
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


def _unpad(frame: torch.Tensor) -> torch.Tensor:
    h, w, c = frame.shape  # (H, W, C') with C' * W bytes per row, 3 * W valid
    return frame if c == 3 else frame.reshape(h, w * c)[:, : w * 3].reshape(h, w, 3)


def _decode_from_start(reader, indices: list[int]) -> torch.Tensor:
    """Frames at `indices` read with `next()` from frame 0, for readers whose seeks are wrong."""
    wanted, got = set(indices), {}
    reader.seek(0)  # frame 0 is a keyframe at display position 0: this seek is exact
    for i in range(max(indices) + 1):
        frame = _to_torch(reader.next())
        if i in wanted:
            got[i] = _unpad(frame).clone()
    return torch.stack([got[i] for i in indices])  # (T, H, W, 3)


def _decode_sequential(reader, indices: list[int]) -> torch.Tensor:
    """Frames at `indices` via one accurate seek and sequential reads, with padded rows unpacked."""
    wanted = sorted(set(indices))
    reader.seek_accurate(wanted[0])
    pos, got = wanted[0], {}
    for i in wanted:
        if i > pos:
            reader.skip_frames(i - pos)
        got[i] = _unpad(_to_torch(reader.next())).clone()
        pos = i + 1
    return torch.stack([got[i] for i in indices])  # (T, H, W, 3)
