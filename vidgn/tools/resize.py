"""`vidgn resize-videos SRC DST --short-side 320`: re-encode a folder of videos once, before training.

Decoding dominates the data pipeline and costs roughly in proportion to the pixels decoded, while
the training transform wants a short side of 256-320 anyway (the GN paper's recipe; MMAction2 and
PySlowFast resize Kinetics the same way before training). Every video found under SRC (recursively,
any of VIDEO_EXTS), or only those of `--list FILE` (a vidgn list, paths relative to SRC), is decoded
with PyAV and written to DST at the same relative path with the extension `.mp4`:

* H.264 (libx264, `--crf`, `--preset`), yuv420p, square pixels, both sides even, the short side
  `--short-side` and the display aspect ratio kept. A video already smaller is not upscaled (it is
  re-encoded at its own size, rounded to even) unless `--upscale` is given.
* The same frames at the same timestamps: every decoded frame is encoded with its own pts (and the
  last frame's duration), so the frame count, variable frame rates and the duration are kept.
* Rotation metadata (phone videos) is applied to the pixels, as ffmpeg does by default: decord
  ignores the metadata, so a rotated source would otherwise train sideways. Anamorphic sources
  (sample aspect ratio != 1) are scaled to square pixels. Audio and subtitles are dropped: nothing
  in this pipeline reads them.
* AV1, VP9, HEVC, ... in: H.264 out, which decord (and every other reader) decodes.

A run can be interrupted and rerun: each video is written to a hidden temporary name beside its
output (`.NAME.mp4.<pid>.part`) and renamed when it is complete and verified, so a file at its final
name is always a finished one and is skipped by the next run (`--overwrite` redoes it). Leftover
temporary files are removed when their video is redone. One run per DST at a time (a lock in DST).
SRC is only read; DST may not be SRC or inside it.

Videos that fail (do not decode, no video stream, frames ending well before the duration the
container declares, a decoder crash) are listed with the reason in DST/resize_failures.csv
(`path,reason`, paths relative to SRC; removed when a run has no failures) and the others go on.
Two sources that map to the same output (Kinetics downloads with both `a.webm` and `a.mp4`) are
reported there too; the one prepare-kinetics would pick (.mp4, then .webm, then .mkv, then the
others by name) is resized.

Exit status: 0 every video done (or already there), 1 some failed, 2 usage error, 130 interrupted.

Workers are processes (spawn); a worker killed by a crashing decoder does not stop the run: as in
check-videos, only a bounded window of videos is in flight, and after a crash those are redone each
in a process of its own, so the crash is pinned on its video and the rest go on in a new pool.
"""
from __future__ import annotations

import argparse
import csv
import fcntl
import io
import os
import signal
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path

from vidgn.data.lists import ListError, parse_list
from vidgn.tools.check_videos import TRUNCATION_SLACK_FRAC, TRUNCATION_SLACK_S

# What SRC is searched for. The first three are Kinetics', in prepare-kinetics' preference order
# (used to pick one of two sources that map to the same output).
VIDEO_EXTS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv",
              ".3gp", ".ogv", ".ts")
FAILURES_FILENAME = "resize_failures.csv"
LOCK_FILENAME = ".resize-videos.lock"
PART_SUFFIX = ".part"
CRASHED = "the decoder crashed the process"
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
           "veryslow")


class ResizeUsageError(ValueError):
    """Unusable arguments (DST inside SRC, a list path outside SRC, ...); the message says the fix."""


@dataclass(frozen=True)
class ResizeSettings:
    short_side: int = 320
    crf: int = 23
    preset: str = "fast"
    upscale: bool = False


# ----------------------------------------------------------------------------- what to resize

def find_videos(src: Path) -> list[str]:
    """Paths (relative to `src`, '/'-separated, sorted) of every video under `src`, recursively.

    Hidden files are skipped: they are temporary files of tools like this one (or macOS's `._x.mp4`).
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
        dirnames.sort()
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTS:
                found.append(os.path.relpath(os.path.join(dirpath, name), src).replace(os.sep, "/"))
    return sorted(found)


def videos_from_list(list_path: Path, src: Path, classes: list[str] | None = None) -> list[str]:
    """The list's video paths relative to `src` (absolute paths must lie inside `src`)."""
    entries = parse_list(list_path, src, classes, check_files=False, allow_unlabeled=True)
    rels, outside = [], []
    src_real = os.path.realpath(src)
    for e in entries:
        if os.path.isabs(e.path):
            real = os.path.realpath(e.path)
            if os.path.commonpath([real, src_real]) != src_real:
                outside.append(f"  {list_path}:{e.line}: {e.path}")
                continue
            rels.append(os.path.relpath(real, src_real).replace(os.sep, "/"))
        else:
            rels.append(os.path.normpath(e.path).replace(os.sep, "/"))
    if outside:
        raise ResizeUsageError(
            f"{len(outside)} absolute path(s) in {list_path} are not inside SRC {src}, so they have no "
            "place in DST's mirror of SRC:\n" + "\n".join(outside[:5])
            + "\nFix: make SRC the folder that holds every listed video, or list them relative to SRC.")
    return list(dict.fromkeys(rels))


def output_rel(rel: str) -> str:
    """DST path (relative) of the video at `rel` in SRC: same folders and stem, extension .mp4."""
    return os.path.splitext(rel)[0] + ".mp4"


def plan_outputs(rels: list[str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """({output rel: source rel}, [(source rel, reason)] for sources left out because another one
    maps to the same output). The kept one is the one prepare-kinetics prefers: by extension in
    VIDEO_EXTS order, then by name."""
    rank = {ext: i for i, ext in enumerate(VIDEO_EXTS)}
    groups: dict[str, list[str]] = {}
    for rel in rels:
        groups.setdefault(output_rel(rel), []).append(rel)
    jobs, clashes = {}, []
    for out, srcs in groups.items():
        srcs.sort(key=lambda r: (rank.get(os.path.splitext(r)[1].lower(), len(rank)), r))
        jobs[out] = srcs[0]
        for other in srcs[1:]:
            clashes.append((other, f"not resized: {srcs[0]} maps to the same output {out} and was "
                                   "resized instead (delete one of the two to silence this)"))
    return jobs, clashes


def check_dst(src: Path, dst: Path) -> None:
    """Refuse a DST that is SRC or inside it: DST is written, SRC must never be."""
    src_real, dst_real = os.path.realpath(src), os.path.realpath(dst)
    if not os.path.isdir(src_real):
        raise ResizeUsageError(f"SRC {src} is not a folder; give the folder of videos to resize.")
    if os.path.commonpath([src_real, dst_real]) == src_real:
        raise ResizeUsageError(
            f"DST {dst} is {'SRC itself' if src_real == dst_real else 'inside SRC ' + str(src)}; "
            "resize-videos never writes into SRC. Fix: choose a DST outside SRC, e.g. the sibling "
            f"folder {Path(src_real).name}_320.")


# ----------------------------------------------------------------------------- one video (worker)

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


def _declared_duration_s(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1e6  # microseconds
    return None


def transcode(src: str, out_path: str, settings: ResizeSettings) -> int:
    """Decode `src`, scale, encode H.264 to `out_path` (mp4); the number of frames written.

    Raises ValueError (with the reason) for a source that is unusable; FFmpeg's errors pass through.
    """
    import av

    with av.open(src) as inp:
        if not inp.streams.video:
            raise ValueError("no video stream")
        ist = inp.streams.video[0]
        # One decode thread and one x264 thread per video: parallelism comes from --workers, which
        # scales better than threads inside one small video.
        ist.thread_count = 1
        declared = _declared_duration_s(inp, ist)
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
                                     interpolation="BICUBIC")  # ffmpeg's default scaler
                if turns:
                    img = _rotate_yuv420p(img, turns)
                img.pts, img.time_base = pts, ist.time_base
                durations[pts] = frame.duration or 0
                end_s = float((pts + (frame.duration or 0)) * ist.time_base)
                for packet in ost.encode(img):
                    _mux(out, packet, durations)
                frames += 1
            if ost is None:
                raise ValueError("no frame decodes")
            for packet in ost.encode():
                _mux(out, packet, durations)
        finally:
            out.close()
    if declared is not None and end_s < declared - max(TRUNCATION_SLACK_S, TRUNCATION_SLACK_FRAC * declared):
        # Resizing would hide the damage: the new file would declare its shorter duration.
        raise ValueError(f"truncated: frames end at {end_s:.2f} s but the container declares "
                         f"{declared:.2f} s")
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
    _remove_stale_parts(out_dir, name)
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


def _remove_stale_parts(out_dir: str, name: str) -> None:
    prefix = f".{name}."
    if not os.path.isdir(out_dir):
        return
    for entry in os.listdir(out_dir):
        if entry.startswith(prefix) and entry.endswith(PART_SUFFIX):
            try:
                os.unlink(os.path.join(out_dir, entry))
            except FileNotFoundError:
                pass


# ----------------------------------------------------------------------------- many videos

def _die_with_parent(parent_pid: int) -> None:
    """Pool initializer: a worker whose run was killed (kill -9, a closed terminal) must not go on
    resizing the videos still queued to it. Linux: the kernel sends it SIGTERM when the parent dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: workers then end when they find the call queue closed
    if os.getppid() != parent_pid:  # died before prctl took effect
        os._exit(1)


def _pool(workers: int, ctx) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_die_with_parent,
                               initargs=(os.getpid(),))


def resize_all(jobs: list[tuple[str, str]], settings: ResizeSettings, *, workers: int = 4,
               on_done=None) -> dict[str, str | None]:
    """Run `resize_video(src, dst)` for every (src, dst) in a crash-safe process pool.

    {src: None or reason}. `on_done(src, result)` is called as each video finishes. At most
    `2 * workers` videos are in flight; when a worker dies (a decoder crash breaks the pool and fails
    every pending future) those are redone each alone in a 1-process pool, pinning the crash on its
    video, and the rest go on in a new shared pool (the approach of check-videos).
    """
    results: dict[str, str | None] = {}
    ctx = get_context("spawn")  # fresh workers: no torch/decord state of the caller
    workers = max(1, workers)
    window = 2 * workers
    todo = deque(jobs)

    def done(src: str, result: str | None) -> None:
        results[src] = result
        if on_done is not None:
            on_done(src, result)

    while todo:
        in_flight: dict = {}  # future -> (src, dst)
        broken = False
        pool = _pool(workers, ctx)
        try:
            while not broken and (todo or in_flight):
                while todo and len(in_flight) < window:
                    try:
                        future = pool.submit(resize_video, todo[0][0], todo[0][1], settings)
                    except BrokenProcessPool:
                        broken = True
                        break
                    in_flight[future] = todo.popleft()
                if broken:
                    break
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    done(in_flight.pop(future)[0], result)
        except BaseException:
            # Ctrl-C or kill: do not wait for the videos in flight; stop their workers (their
            # temporary files are tidied here; after a kill -9 they are when their videos are redone).
            procs = list((getattr(pool, "_processes", None) or {}).values())  # no public API for it
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.join(timeout=5)
            pool.shutdown(wait=False, cancel_futures=True)
            for _, dst in in_flight.values():
                _remove_stale_parts(*os.path.split(dst))
            raise
        pool.shutdown(wait=True)
        if not broken:
            break
        suspects = []
        for future, job in in_flight.items():
            if not future.cancelled() and future.exception() is None:
                done(job[0], future.result())
            else:
                suspects.append(job)
        for i in range(0, len(suspects), workers):
            batch = suspects[i:i + workers]
            pools = [_pool(1, ctx) for _ in batch]
            try:
                futures = [p.submit(resize_video, s, d, settings) for p, (s, d) in zip(pools, batch)]
                for (s, _), future in zip(batch, futures):
                    try:
                        done(s, future.result())
                    except BrokenProcessPool:
                        done(s, CRASHED)
            finally:
                for p in pools:
                    p.shutdown()
    return results


def write_failures(path: Path, rows: list[tuple[str, str]]) -> None:
    """`path,reason` CSV (temporary name, then renamed); removed when there is nothing to report, so
    a stale report never outlives the failures it lists."""
    if not rows:
        if path.exists():
            path.unlink()
        return
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "reason"])
    w.writerows(sorted(rows))
    tmp = path.with_name(f".{path.name}.{os.getpid()}{PART_SUFFIX}")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- command line

def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "resize-videos", help="re-encode videos to H.264 at a short side (e.g. 320), resumable",
        description=__doc__.split("\n\n")[0], epilog="Details: `pydoc vidgn.tools.resize`.")
    p.add_argument("src", help="folder of videos (searched recursively); only read")
    p.add_argument("dst", help="output folder: SRC's relative paths, extension .mp4 (not inside SRC)")
    p.add_argument("--short-side", type=int, default=320,
                   help="short side of the output in pixels, even (default: 320)")
    p.add_argument("--list", help="only the videos of this vidgn list (paths relative to SRC)")
    p.add_argument("--classes", help="classes.txt, if the list's labels are class names and no "
                   "classes.txt is beside it")
    p.add_argument("--upscale", action="store_true",
                   help="also scale up videos whose short side is smaller (default: keep their size)")
    p.add_argument("--crf", type=int, default=23, help="x264 quality, lower = better/bigger (default: 23)")
    p.add_argument("--preset", default="fast", choices=PRESETS,
                   help="x264 speed/size trade-off (default: fast)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="videos resized in parallel, one process each (default: min(8, CPUs))")
    p.add_argument("--overwrite", action="store_true", help="redo videos whose output already exists")
    p.set_defaults(func=run)


def _usage_error(message: str) -> int:
    print(f"vidgn resize-videos: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    src, dst = Path(args.src), Path(args.dst)
    if args.short_side < 2 or args.short_side % 2:
        return _usage_error(f"--short-side {args.short_side}: must be even and >= 2 (H.264 yuv420p "
                            "needs even sides); e.g. --short-side 320.")
    if args.workers < 1:
        return _usage_error("--workers must be >= 1.")
    if not 0 <= args.crf <= 51:
        return _usage_error(f"--crf {args.crf}: x264's scale is 0-51 (23 is its default).")
    try:
        check_dst(src, dst)
        if args.list:
            from vidgn.data.lists import read_classes

            classes = read_classes(args.classes) if args.classes else None
            rels = videos_from_list(Path(args.list), src, classes)
        else:
            rels = find_videos(src)
        jobs, clashes = plan_outputs(rels)
        src_real = os.path.realpath(src)
        for out in jobs:  # a DST that contains SRC could still map an output into it
            real = os.path.realpath(dst / out)
            if os.path.commonpath([src_real, real]) == src_real:
                raise ResizeUsageError(f"the output {dst / out} would be inside SRC {src}; resize-videos "
                                       "never writes into SRC. Fix: choose a DST that does not contain SRC.")
    except (ResizeUsageError, ListError) as e:
        return _usage_error(str(e))
    if not rels:
        return _usage_error(f"no videos ({', '.join(VIDEO_EXTS)}) found in "
                            f"{args.list or src}; is SRC the folder of videos?")

    dst.mkdir(parents=True, exist_ok=True)
    with open(dst / LOCK_FILENAME, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _usage_error(f"another resize-videos run is writing to {dst}; wait for it or stop it.")
        return _resize_locked(args, src, dst, jobs, clashes)


def _resize_locked(args: argparse.Namespace, src: Path, dst: Path, jobs: dict[str, str],
                   clashes: list[tuple[str, str]]) -> int:
    todo = [(str(src / s), str(dst / o)) for o, s in jobs.items()
            if args.overwrite or not (dst / o).exists()]
    skipped = len(jobs) - len(todo)
    settings = ResizeSettings(short_side=args.short_side, crf=args.crf, preset=args.preset,
                              upscale=args.upscale)
    done_note = "--overwrite: finished ones redone" if args.overwrite else f"{skipped} already done"
    print(f"{len(jobs)} videos ({done_note}), {len(todo)} to resize to short side "
          f"{args.short_side} ({args.workers} workers)", file=sys.stderr, flush=True)
    rel_of = {s: os.path.relpath(s, src).replace(os.sep, "/") for s, _ in todo}
    failures = list(clashes)
    t0 = time.monotonic()
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="video", file=sys.stderr, dynamic_ncols=True,
               mininterval=1 if sys.stderr.isatty() else 30)

    def on_done(s, result):
        bar.update(1)
        if result is not None:
            bar.write(f"FAILED {rel_of[s]}: {result}", file=sys.stderr)

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt  # `kill`: stop as Ctrl-C does, workers included

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (called as a library): leave signals alone
        previous = None
    try:
        results = resize_all(todo, settings, workers=args.workers, on_done=on_done)
    except KeyboardInterrupt:
        bar.close()
        print(f"vidgn resize-videos: interrupted; finished videos are in {dst}, rerun the same "
              "command to resume.", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    bar.close()
    failures += [(rel_of[s], r) for s, r in results.items() if r is not None]
    report = dst / FAILURES_FILENAME
    write_failures(report, failures)
    elapsed = time.monotonic() - t0
    done = sum(r is None for r in results.values())
    rate = f", {done / elapsed:.2f} videos/s" if done and elapsed > 0 else ""
    print(f"resized {done}, skipped {skipped} (already done), failed {len(failures)} "
          f"in {elapsed:.1f} s{rate}" + (f"; failures listed in {report}" if failures else ""))
    return 1 if failures else 0
