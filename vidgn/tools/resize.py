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
* Rotation metadata (phone videos) is applied to the pixels, as ffmpeg does by default, so every
  reader shows the video upright, not only those that honour the metadata (decord does, see
  docs/decoders.md; many tools do not). Anamorphic sources
  (sample aspect ratio != 1) are scaled to square pixels. Audio and subtitles are dropped: nothing
  in this pipeline reads them.
* AV1, VP9, HEVC, ... in: H.264 out, which decord (and every other reader) decodes.
* The colours the source decodes to: its colour matrix, primaries and transfer are tagged on the
  output (YouTube's HD is BT.709: untagged, it would be read as BT.601); full range (phones, MJPEG)
  is converted to the limited range players assume.

A run can be interrupted and rerun: each video is written to a hidden temporary name beside its
output (`.NAME.mp4.<pid>.part`) and renamed when it is complete and verified, so a file at its final
name is always a finished one and is skipped by the next run (`--overwrite` redoes it). Leftover
temporary files are removed when their video is redone. The settings are recorded in
DST/.resize-videos.json: a rerun with other settings is refused (its finished videos would be kept
at the old ones) unless `--overwrite` redoes them all. One run per DST at a time: a run holds an
flock on DST/.resize-videos.lock (holding the pid of the run, for the message to a second one) and
removes the file when it ends, however it ends; the kernel drops the flock of a killed run, so a file
left behind by a kill -9 does not block the next run.
SRC is only read; DST may not be SRC or inside it.

Videos that fail (do not decode, no video stream, frames ending well before the duration the
container declares, frames missing in the middle (a jump in their times), a decoder crash) are
listed with the reason in DST/resize_failures.csv (`path,reason`, paths relative to SRC; removed
when a run has no failures) and the others go on.
Two sources that map to the same output (Kinetics downloads with both `a.webm` and `a.mp4`) are
listed there too, as not resized (not a failure); the one prepare-kinetics would pick (.mp4, then
.webm, then .mkv, then the others by name) is resized.

Exit status: 0 every video done (or already there), 1 some failed, 2 usage error, 130 interrupted.

Workers are processes (spawn); a worker killed by a crashing decoder does not stop the run: as in
check-videos (the same pool, `vidgn.tools.pool`), only a bounded window of videos is in flight, and
after a crash those are redone each in a process of its own, so the crash is pinned on its video and
the rest go on in a new pool. One video's decoding and encoding is `vidgn.tools.transcode`.
"""
from __future__ import annotations

import argparse
import csv
import fcntl
import io
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

from vidgn.data.lists import ListError, list_paths
from vidgn.tools.kinetics_inputs import VIDEO_EXTS as KINETICS_EXTS
from vidgn.tools.pool import run_isolating_crashes
from vidgn.tools.progress import Progress, plural
from vidgn.tools.files import write_text_atomic
from vidgn.tools.transcode import ResizeSettings, remove_stale_parts, resize_video
from vidgn.tools.walk import walk_files

# What SRC is searched for. Kinetics' formats first, in prepare-kinetics' preference order (used to
# pick one of two sources that map to the same output).
VIDEO_EXTS = KINETICS_EXTS + (".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv",
                              ".ts")
FAILURES_FILENAME = "resize_failures.csv"
LOCK_FILENAME = ".resize-videos.lock"
SETTINGS_FILENAME = ".resize-videos.json"
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
           "veryslow")


class ResizeUsageError(ValueError):
    """Unusable arguments (DST inside SRC, a list path outside SRC, ...); the message says the fix."""


# ----------------------------------------------------------------------------- what to resize

def find_videos(src: Path) -> list[str]:
    """Paths (relative to `src`, '/'-separated, sorted) of every video under `src`, recursively.

    Hidden files are skipped: they are temporary files of tools like this one (or macOS's `._x.mp4`).
    """
    found = []
    for rel, name in walk_files(src):
        if not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTS:
            found.append(rel)
    return sorted(found)


def videos_from_list(list_path: Path, src: Path) -> list[str]:
    """The list's video paths relative to `src` (absolute paths must lie inside `src`); its labels
    are not read (class names need no classes.txt here)."""
    entries = list_paths(list_path, src)
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
                                   "resized instead (prepare-kinetics also prefers it); not a failure"))
    return jobs, clashes


def check_dst(src: Path, dst: Path) -> None:
    """Refuse a DST that is SRC or inside it (DST is written, SRC must never be), or a file."""
    src_real, dst_real = os.path.realpath(src), os.path.realpath(dst)
    if not os.path.isdir(src_real):
        raise ResizeUsageError(f"SRC {src} is not a folder; give the folder of videos to resize.")
    if os.path.exists(dst_real) and not os.path.isdir(dst_real):
        raise ResizeUsageError(f"DST {dst} is a file; give a folder (created if missing) for the resized videos.")
    if os.path.commonpath([src_real, dst_real]) == src_real:
        raise ResizeUsageError(
            f"DST {dst} is {'SRC itself' if src_real == dst_real else 'inside SRC ' + str(src)}; "
            "resize-videos never writes into SRC. Fix: choose a DST outside SRC, e.g. the sibling "
            f"folder {Path(src_real).name}_320.")


# ----------------------------------------------------------------------------- many videos

def resize_all(jobs: list[tuple[str, str]], settings: ResizeSettings, *, workers: int = 4,
               on_done=None) -> dict[str, str | None]:
    """Run `resize_video(src, dst)` for every (src, dst) in a crash-safe process pool
    (`vidgn.tools.pool`: at most `2 * workers` videos in flight, a crash pinned on its video).

    {src: None or reason}. `on_done(src, result)` is called as each video finishes. When the run is
    stopped (Ctrl-C, SIGTERM) the workers are stopped at once and the temporary files of the videos
    in flight are removed (after a kill -9 they are when their videos are redone).
    """
    results: dict[str, str | None] = {}

    def done(call: tuple, result: str | None) -> None:
        results[call[0]] = result
        if on_done is not None:
            on_done(call[0], result)

    def tidy(calls: list[tuple]) -> None:
        for _, dst, _ in calls:
            remove_stale_parts(*os.path.split(dst))

    run_isolating_crashes(resize_video, [(src, dst, settings) for src, dst in jobs], workers=workers,
                          on_result=done, on_abort=tidy)
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
    write_text_atomic(path, buf.getvalue())


# ----------------------------------------------------------------------------- command line

def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "resize-videos", help="re-encode videos to H.264 at a short side (e.g. 320), resumable",
        description=__doc__.split("\n\n")[0], epilog="Details: `pydoc vidgn.tools.resize`.")
    p.add_argument("src", help="folder of videos (searched recursively); only read")
    p.add_argument("dst", help="output folder: SRC's relative paths, extension .mp4 (not inside SRC)")
    p.add_argument("--short-side", type=int, default=320,
                   help="short side of the output in pixels, even (default: 320)")
    p.add_argument("--list", help="only the videos of this vidgn list (paths relative to SRC; "
                                  "default: every video under SRC)")
    p.add_argument("--upscale", action="store_true",
                   help="also scale up videos whose short side is smaller (default: keep their size)")
    p.add_argument("--crf", type=int, default=23, help="x264 quality, lower = better/bigger (default: 23)")
    p.add_argument("--preset", default="fast", choices=PRESETS,
                   help="x264 speed/size trade-off (default: fast)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="videos resized in parallel, one process each (default: min(8, CPUs), "
                        "here %(default)s)")
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
            rels = videos_from_list(Path(args.list), src)
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

    try:
        dst.mkdir(parents=True, exist_ok=True)
        lock = lock_dst(dst)
    except OSError as e:
        return _usage_error(f"cannot write to DST {dst}: {e.strerror or e}. Fix: choose a DST you can "
                            "write to (a folder on a disk with room for the resized videos).")
    if isinstance(lock, str):
        return _usage_error(f"another resize-videos run{lock} is writing to {dst}; wait for it or stop it.")
    try:
        settings = ResizeSettings(short_side=args.short_side, crf=args.crf, preset=args.preset,
                                  upscale=args.upscale)
        try:
            finished = sum((dst / out).exists() for out in jobs)
            record_settings(dst, settings, overwrite=args.overwrite, finished=finished)
        except ResizeUsageError as e:
            return _usage_error(str(e))
        return _resize_locked(args, src, dst, jobs, clashes, settings)
    finally:
        unlock_dst(dst, lock)


def record_settings(dst: Path, settings: ResizeSettings, *, overwrite: bool, finished: int = 0) -> None:
    """Write `settings` to DST/.resize-videos.json; refuse settings other than those recorded
    there (the `finished` videos, skipped by this run, are at the recorded ones) unless `overwrite`.
    With no record but finished videos (made by a vidgn that kept none), nothing is known of their
    settings: no record is written (it could be false), and a note says so."""
    path = dst / SETTINGS_FILENAME
    wanted = asdict(settings)
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        recorded = None  # a first run, a DST of an older vidgn, or a damaged record
    if recorded is None and finished and not overwrite:
        print(f"note: {dst} holds {plural(finished, 'finished video')} but no record of the settings they "
              f"were made with ({path}): they are kept as they are; add --overwrite to redo them with "
              "these settings.", file=sys.stderr)
        return
    if isinstance(recorded, dict) and recorded != wanted and not overwrite:
        differ = ", ".join(f"--{k.replace('_', '-')} {recorded.get(k)} -> {v}"
                           for k, v in wanted.items() if recorded.get(k) != v)
        raise ResizeUsageError(
            f"DST {dst} holds videos resized with other settings ({differ}; recorded in {path}), and "
            "this run would skip them. Fix: rerun with the recorded settings, choose a new DST, or add "
            "--overwrite to redo every video with these settings.")
    write_text_atomic(path, json.dumps(wanted, indent=1) + "\n")


def lock_dst(dst: Path):
    """Take DST's lock: the open lock file (pass it to `unlock_dst`), or, when another run holds
    it, a string for the message: ` (pid N)` or empty.

    flock, not the file's existence, is the lock: the kernel releases it when its holder dies, so
    the file a killed run leaves behind is simply taken over.
    """
    path = dst / LOCK_FILENAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not truncated: it may be the holder's
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            return f" (pid {holder})" if holder.isdigit() else ""
        # The holder removes the file as it ends (unlock_dst): if that happened between our open and
        # our flock, we hold a lock on a removed file while a third run may lock a new one at the
        # path. Only a lock on the file that is at the path counts; otherwise try again.
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        mine = os.fstat(fd)
        if st is not None and (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def unlock_dst(dst: Path, lock: int) -> None:
    """Remove the lock file, then release the lock: removed while still held, so no other run can
    have locked it in between (a run that opened it before the removal retries, see lock_dst)."""
    try:
        os.unlink(dst / LOCK_FILENAME)
    except FileNotFoundError:
        pass
    finally:
        os.close(lock)


def _resize_locked(args: argparse.Namespace, src: Path, dst: Path, jobs: dict[str, str],
                   clashes: list[tuple[str, str]], settings: ResizeSettings) -> int:
    todo = [(str(src / s), str(dst / o)) for o, s in jobs.items()
            if args.overwrite or not (dst / o).exists()]
    skipped = len(jobs) - len(todo)
    done_note = "--overwrite: finished ones redone" if args.overwrite else f"{skipped} already done"
    print(f"{plural(len(jobs), 'video')} ({done_note}), {len(todo)} to resize to short side "
          f"{args.short_side} ({args.workers} workers)", file=sys.stderr, flush=True)
    rel_of = {s: os.path.relpath(s, src).replace(os.sep, "/") for s, _ in todo}
    failures = list(clashes)
    t0 = time.monotonic()
    progress = Progress(len(todo), verb="finished")

    def on_done(s, result):
        if result is not None:
            progress.message(f"FAILED {rel_of[s]}: {result}")
        progress.update()

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt  # `kill`: stop as Ctrl-C does, workers included

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (called as a library): leave signals alone
        previous = None
    try:
        results = resize_all(todo, settings, workers=args.workers, on_done=on_done)
    except KeyboardInterrupt:
        progress.finish()
        print(f"vidgn resize-videos: interrupted; finished videos are in {dst}, rerun the same "
              "command to resume.", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    progress.finish()
    failed = [(rel_of[s], r) for s, r in results.items() if r is not None]
    report = dst / FAILURES_FILENAME
    write_failures(report, failures + failed)
    elapsed = time.monotonic() - t0
    done = sum(r is None for r in results.values())
    rate = f", {done / elapsed:.2f} videos/s" if done and elapsed > 0 else ""
    twins = f", {len(clashes)} not resized (another format of the same clip was)" if clashes else ""
    print(f"resized {done}, skipped {skipped} (already done), failed {len(failed)}{twins} "
          f"in {elapsed:.1f} s{rate}" + (f"; listed in {report}" if failed or clashes else ""))
    return 1 if failed else 0
