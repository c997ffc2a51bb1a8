"""`vidgn check-videos LIST`: find the videos in a list that cannot be decoded, before training does.

Every video is opened with decord in a pool of worker processes and every frame is decoded, in
order, in chunks of CHECK_CHUNK: corrupt files often open fine (the index is intact) and fail only
where the damage is, which a training clip may cross. A video whose frames end well before the duration its container declares is reported as
truncated too. Missing and empty files are reported without opening them.

Exit status: 0 all readable, 1 some unreadable, 2 usage error (bad arguments, unusable list).
`--write-clean OUT` writes the list lines of the readable videos, unchanged, to OUT.

A worker killed by a crashing decoder does not stop the check. Only a bounded window of videos
(twice the number of workers) is handed to the pool at a time, so when a crash breaks the pool the
videos that can have been in flight are known: each of them is re-checked alone, in a process of its
own (the one that crashes again is reported as such), and the videos not yet started go on in a new
shared pool (`vidgn.tools.pool`). A decoder that hangs is not interrupted (decord offers no
timeout); Ctrl-C stops the workers at once.

A check of Kinetics' 240k training videos takes hours, so it can be stopped and resumed: every
result is appended to a results file (`--results`, default `LIST_STEM.check.tsv` beside the list) as
soon as the video is done, and a later run with the same results file checks only the videos that
have no result yet (or whose file changed since: size and mtime are recorded). The report and
`--write-clean` of a resumed check are those of an uninterrupted one (the file:
`vidgn.tools.check_results`). Progress (done/total, videos/s, ETA) goes to stderr.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from vidgn.data.lists import ListError, parse_list, read_classes, resolve
from vidgn.tools.check_results import ResultsFile, ResultsFileError, Stamp, default_results_path
from vidgn.tools.files import cannot_create_in, write_text_atomic
from vidgn.tools.pool import run_isolating_crashes
from vidgn.tools.progress import Progress, plural
from vidgn.tools.truncation import inspect_file, truncation

CHECK_CHUNK = 64  # frames decoded per call: a Table 8 clip's span at 32x2


def check_video(path: str, num_threads: int = 1) -> str | None:
    """None if `path` decodes (every frame), else the reason it does not.

    Decodes through `vidgn.data.video`, the same code the training pipeline uses, so a video passes
    here exactly when training can read it. The reader is created here, i.e. inside the worker
    process (never before a fork). decord's log times (`[14:00:55] `) and C++ locations are taken
    out of the reason, so that checking a file twice gives the same report (a resumed check included).
    """
    from vidgn.data.video import decord_text  # torch: only in workers

    reason = _check_video(path, num_threads)
    return None if reason is None else decord_text(reason)


def _check_video(path: str, num_threads: int) -> str | None:
    from vidgn.data.video import VideoDecodeError, decode_frames, open_video  # torch: only in workers

    if not os.path.exists(path):
        return "file not found"
    try:
        vr, info = open_video(path, num_threads=num_threads)
        n = info.num_frames
        # Every frame, in order (no seeks; 1.5x the CPU of decoding 3 frames far apart, see
        # docs/benchmarks.md): damage anywhere fails some training clip, so it must fail here too.
        for start in range(0, n, CHECK_CHUNK):
            idx = list(range(start, min(n, start + CHECK_CHUNK)))
            try:
                decode_frames(vr, idx, path)
            except VideoDecodeError as e:
                return f"{e.reason} (of {n} frames)"
    except VideoDecodeError as e:
        return e.reason
    declared, missing = inspect_file(path)  # one read of the packet headers with PyAV
    if missing:
        return missing
    if declared is None:
        return None
    end_s = float(vr.get_frame_timestamp(len(vr) - 1)[1])  # decord's last (frames an edit list hides count)
    if not (math.isfinite(end_s) and end_s >= 0) and info.fps > 0:
        # No usable timestamps (e.g. H.264 in AVI: decord reads -3e17): judge by the frame count.
        end_s = n / info.fps
    return truncation(end_s, declared)


def check_videos(paths: list[str], *, workers: int = 4, num_threads: int = 1,
                 progress: bool | Progress = False, on_result=None) -> dict[str, str | None]:
    """Check every path in parallel, in a crash-safe pool (`vidgn.tools.pool`); {path: None or reason}.

    At most `2 * workers` videos are in flight; after a decoder crash those are checked again each
    alone (pinning the crash on its video), the rest go on in a new shared pool. `on_result(path,
    reason)` is called in the caller's process as each video's result is known (the results file is
    written from it); `progress` is True (a `Progress` on stderr) or one.
    """
    results: dict[str, str | None] = {}
    unique = list(dict.fromkeys(paths))
    if progress is True:
        progress = Progress(len(unique))

    def record(call: tuple, result: str | None) -> None:
        path = call[0]
        results[path] = result
        if on_result is not None:
            on_result(path, result)
        if progress:
            progress.update()

    run_isolating_crashes(check_video, [(p, num_threads) for p in unique], workers=workers,
                          on_result=record)
    if progress:
        progress.finish()
    return results


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "check-videos", help="decode every video of a list; report unreadable ones",
        description=__doc__.split("\n\n")[0])
    p.add_argument("list", help="list file (`path label` lines)")
    p.add_argument("--data-root", required=True, help="folder that the list's paths are relative to")
    p.add_argument("--classes", help="classes.txt (default: beside the list or in the data root)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="worker processes (default: min(8, CPUs), here %(default)s)")
    p.add_argument("--num-threads", type=int, default=1,
                   help="decord decoding threads per worker (default: %(default)s)")
    p.add_argument("--write-clean", metavar="OUT", help="write the lines of the readable videos here")
    p.add_argument("--results", metavar="FILE",
                   help="results file, appended to as each video is checked; a check stopped for any "
                        "reason resumes from it when run again (default: LIST_STEM.check.tsv beside "
                        "the list)")
    p.set_defaults(func=run)


def _unwritable_clean_list(out: Path, list_path: Path, results_path: Path) -> str | None:
    """Why the clean list cannot be written to `out` (its folder is created), or None. Tried by
    creating a file there: permissions, read-only disks and pseudo file systems all answer that."""
    for other, what in ((list_path, "the list being checked"), (results_path, "the check's results file")):
        if os.path.realpath(out) == os.path.realpath(other):
            return f"that is {what}; write the clean list to another file (e.g. LIST_STEM.clean.txt)."
    if out.is_dir():
        return "is a folder; give a file name."
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return f"{blocker} is a file, not a folder."
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot be written ({e.strerror or e}); choose another file."
    why = cannot_create_in(out.parent)
    return None if why is None else f"cannot be written ({why}); choose another file."


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
    results_path = Path(args.results or default_results_path(args.list))
    if args.write_clean:
        problem = _unwritable_clean_list(Path(args.write_clean), Path(args.list), results_path)
        if problem:  # said now, not after hours of checking
            print(f"vidgn check-videos: error: --write-clean {args.write_clean}: {problem}", file=sys.stderr)
            return 2
    paths = [str(resolve(e, args.data_root)) for e in entries]
    store = ResultsFile(results_path, list_path=args.list,
                        data_root=args.data_root)
    try:
        earlier = store.load()
        store.open()
    except ResultsFileError as e:
        print(f"vidgn check-videos: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"vidgn check-videos: error: cannot write the results file {store.path} "
              f"({e.strerror or e}). Fix: pass --results FILE in a folder you can write to.", file=sys.stderr)
        return 2
    unique = list(dict.fromkeys(paths))
    results: dict[str, str | None] = {}
    for p in unique:  # an earlier result holds only for the same, unchanged file
        if p in earlier and earlier[p][1] == Stamp.of(p):
            results[p] = earlier[p][0]
    todo = [p for p in unique if p not in results]
    if unique and not todo:
        # A rerun of a finished check: the report below comes from the results file alone.
        every = "the video has" if len(unique) == 1 else f"all {len(unique)} videos have"
        print(f"nothing left to check: {every} a result in {store.path}", file=sys.stderr)
    elif results:
        print(f"resuming from {store.path}: {len(results)} of {len(unique)} videos already checked, "
              f"{len(todo)} to check", file=sys.stderr)
    progress = Progress(len(unique), already=len(results))
    stamps: dict[str, Stamp] = {}
    try:
        # The stamp is taken before the check: a file replaced during its check is checked again.
        for p in todo:
            stamps[p] = Stamp.of(p)
        if todo:  # else no pool to start, and no progress line
            results.update(check_videos(todo, workers=args.workers, num_threads=args.num_threads,
                                        progress=progress,
                                        on_result=lambda p, r: store.append(p, r, stamps[p])))
    except KeyboardInterrupt:
        done = len(unique) - len(todo) + progress.done
        print(f"{chr(10) if progress.tty else ''}interrupted: {done} of {plural(len(unique), 'video')} "
              f"checked, results kept in {store.path}; run the same command again to check the rest",
              file=sys.stderr)
        return 130
    finally:
        store.close()
    bad = [(e, p, results[p]) for e, p in zip(entries, paths) if results[p] is not None]
    for e, p, reason in bad:
        print(f"UNREADABLE {args.list}:{e.line}: {p}: {reason}")
    print(f"checked {plural(len(entries), 'video')}: {len(entries) - len(bad)} readable, "
          f"{len(bad)} unreadable (results: {store.path})")
    if args.write_clean:
        lines = Path(args.list).read_text(encoding="utf-8-sig").splitlines()
        bad_lines = {e.line for e, _, _ in bad}
        keep = [lines[e.line - 1].strip() + "\n" for e in entries if e.line not in bad_lines]
        out = Path(args.write_clean)
        write_text_atomic(out, "".join(keep))
        print(f"wrote {plural(len(keep), 'readable video')} to {out}")
    return 1 if bad else 0
