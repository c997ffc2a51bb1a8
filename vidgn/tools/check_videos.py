"""`vidgn check-videos LIST`: find the videos in a list that cannot be decoded, before training does.

Every video is opened with decord in a pool of worker processes and its first, middle and last frames
are decoded: corrupt files often open fine (the index is intact) and fail only when later frames are
decoded. A video whose frames end well before the duration its container declares is reported as
truncated too. Missing and empty files are reported without opening them.

Exit status: 0 all readable, 1 some unreadable, 2 usage error (bad arguments, unusable list).
`--write-clean OUT` writes the list lines of the readable videos, unchanged, to OUT.

A worker killed by a crashing decoder does not stop the check. Only a bounded window of videos
(twice the number of workers) is handed to the pool at a time, so when a crash breaks the pool the
videos that can have been in flight are known: each of them is re-checked alone, in a process of its
own (the one that crashes again is reported as such), and the videos not yet started go on in a new
shared pool. A decoder that hangs is not interrupted (decord offers no timeout).
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

from vidgn.data.lists import ListError, parse_list, read_classes, resolve

# A video whose decodable frames stop this much short of the container's declared duration is
# reported as truncated; the slack keeps clips whose audio outlasts the video by a little readable.
TRUNCATION_SLACK_S = 0.5
TRUNCATION_SLACK_FRAC = 0.1
CRASHED = "the decoder crashed the process"


def check_video(path: str, num_threads: int = 1) -> str | None:
    """None if `path` decodes (first, middle, last frame), else the reason it does not.

    Decodes through `vidgn.data.video`, the same code the training pipeline uses, so a video passes
    here exactly when training can read it. The reader is created here, i.e. inside the worker
    process (never before a fork).
    """
    from vidgn.data.video import VideoDecodeError, decode_frames, open_video  # torch: only in workers

    if not os.path.exists(path):
        return "file not found"
    try:
        vr, info = open_video(path, num_threads=num_threads)
        n = info.num_frames
        for idx in sorted({0, n // 2, n - 1}):
            try:
                decode_frames(vr, [idx], path)
            except VideoDecodeError as e:
                return f"frame {idx} of {n} does not decode: {e.reason}"
    except VideoDecodeError as e:
        return e.reason
    declared = _declared_duration(path)
    if declared is not None:
        decoded = float(vr.get_frame_timestamp(n - 1)[1])
        if decoded < declared - max(TRUNCATION_SLACK_S, TRUNCATION_SLACK_FRAC * declared):
            return (f"truncated: frames end at {decoded:.2f} s but the container declares "
                    f"{declared:.2f} s")
    return None


def _declared_duration(path: str) -> float | None:
    """Video duration declared by the container (seconds), or None if it declares none."""
    try:
        import av

        with av.open(path) as c:
            stream = c.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if c.duration is not None:
                return c.duration / 1e6  # av.time_base: microseconds
    except Exception:
        return None  # decord decoded it; a header PyAV cannot read is no reason to reject the video
    return None


def check_videos(paths: list[str], *, workers: int = 4, num_threads: int = 1,
                 progress: bool = False) -> dict[str, str | None]:
    """Check every path in parallel; {path: None or reason}.

    At most `2 * workers` videos are submitted to the pool at a time. A worker killed by a decoder
    crash breaks the pool and fails every submitted future, so the window bounds what has to be
    re-checked: the videos of the window that did not finish are checked again each alone in a
    1-process pool (pinning the crash on its video), the rest go on in a new shared pool.
    """
    results: dict[str, str | None] = {}
    # spawn: workers start without the caller's decord/torch state (decord must not cross a fork).
    ctx = get_context("spawn")
    workers = max(1, workers)
    window = 2 * workers
    unique = list(dict.fromkeys(paths))
    todo = deque(unique)

    def report_progress() -> None:
        if progress and len(results) % 1000 == 0:
            print(f"  checked {len(results)}/{len(unique)}", file=sys.stderr, flush=True)

    while todo:
        in_flight: dict = {}  # future -> path, for the videos handed to this pool
        broken = False
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            while not broken and (todo or in_flight):
                while todo and len(in_flight) < window:
                    try:
                        future = pool.submit(check_video, todo[0], num_threads)
                    except BrokenProcessPool:
                        broken = True
                        break
                    in_flight[future] = todo.popleft()
                if broken:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True  # a worker died (decoder crash); sorted out below
                        continue
                    results[in_flight.pop(future)] = result
                    report_progress()
        if not broken:
            break
        # Every submitted future is done now (the pool is shut down). Those that finished before
        # the pool broke keep their result; the others can have been running when it broke.
        suspects = []
        for future, path in in_flight.items():
            if not future.cancelled() and future.exception() is None:
                results[path] = future.result()
                report_progress()
            else:
                suspects.append(path)
        for path, result in _check_each_alone(suspects, ctx, workers, num_threads).items():
            results[path] = result
            report_progress()
    return results


def _check_each_alone(paths: list[str], ctx, workers: int, num_threads: int) -> dict[str, str | None]:
    """Check each path in a 1-process pool of its own, `workers` of them at a time, so that a crash
    is pinned on the video that causes it."""
    results: dict[str, str | None] = {}
    for i in range(0, len(paths), workers):
        batch = paths[i:i + workers]
        pools = [ProcessPoolExecutor(1, mp_context=ctx) for _ in batch]
        try:
            futures = [pool.submit(check_video, p, num_threads) for pool, p in zip(pools, batch)]
            for p, future in zip(batch, futures):
                try:
                    results[p] = future.result()
                except BrokenProcessPool:
                    results[p] = CRASHED
        finally:
            for pool in pools:
                pool.shutdown()
    return results


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "check-videos", help="decode every video of a list; report unreadable ones",
        description=__doc__.split("\n\n")[0])
    p.add_argument("list", help="list file (`path label` lines)")
    p.add_argument("--data-root", required=True, help="folder that the list's paths are relative to")
    p.add_argument("--classes", help="classes.txt (default: beside the list or in the data root)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="worker processes")
    p.add_argument("--num-threads", type=int, default=1, help="decord decoding threads per worker")
    p.add_argument("--write-clean", metavar="OUT", help="write the lines of the readable videos here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        classes = read_classes(args.classes) if args.classes else None
        # Missing files are reported as unreadable below, not as a list error.
        entries = parse_list(args.list, args.data_root, classes, check_files=False,
                             allow_unlabeled=True)
    except ListError as e:
        print(f"vidgn check-videos: error: {e}", file=sys.stderr)
        return 2
    if args.workers < 1 or args.num_threads < 1:
        print("vidgn check-videos: error: --workers and --num-threads must be >= 1", file=sys.stderr)
        return 2
    paths = [str(resolve(e, args.data_root)) for e in entries]
    results = check_videos(paths, workers=args.workers, num_threads=args.num_threads, progress=True)
    bad = [(e, p, results[p]) for e, p in zip(entries, paths) if results[p] is not None]
    for e, p, reason in bad:
        print(f"UNREADABLE {args.list}:{e.line}: {p}: {reason}")
    print(f"checked {len(entries)} videos: {len(entries) - len(bad)} readable, {len(bad)} unreadable")
    if args.write_clean:
        lines = Path(args.list).read_text(encoding="utf-8-sig").splitlines()
        bad_lines = {e.line for e, _, _ in bad}
        keep = [lines[e.line - 1].strip() + "\n" for e in entries if e.line not in bad_lines]
        out = Path(args.write_clean)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(keep), encoding="utf-8")
        print(f"wrote {len(keep)} readable videos to {out}")
    return 1 if bad else 0
