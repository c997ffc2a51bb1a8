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

A check of Kinetics' 240k training videos takes hours, so it can be stopped and resumed: every
result is appended to a results file (`--results`, default `LIST_STEM.check.tsv` beside the list) as
soon as the video is done, and a later run with the same results file checks only the videos that
have no result yet (or whose file changed since: size and mtime are recorded). The report and
`--write-clean` of a resumed check are those of an uninterrupted one. Progress (done/total,
videos/s, ETA) goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from vidgn.data.lists import ListError, parse_list, read_classes, resolve

# A video whose decodable frames stop this much short of the container's declared duration is
# reported as truncated; the slack keeps clips whose audio outlasts the video by a little readable.
TRUNCATION_SLACK_S = 0.5
TRUNCATION_SLACK_FRAC = 0.1
CRASHED = "the decoder crashed the process"
_DECORD_TIME_RE = re.compile(r"\[\d{2}:\d{2}:\d{2}\] ")
# Progress updates: a few per second on a terminal (one line rewritten in place), one line every
# PLAIN_PROGRESS_S in a log file (a 240k-video check would otherwise write tens of thousands of lines).
TTY_PROGRESS_S = 0.25
PLAIN_PROGRESS_S = 30.0
RESULTS_MAGIC = "#vidgn check-videos results"
RESULTS_COLUMNS = ("path", "status", "reason", "size", "mtime_ns")


def check_video(path: str, num_threads: int = 1) -> str | None:
    """None if `path` decodes (first, middle, last frame), else the reason it does not.

    Decodes through `vidgn.data.video`, the same code the training pipeline uses, so a video passes
    here exactly when training can read it. The reader is created here, i.e. inside the worker
    process (never before a fork). decord's time stamps (`[14:00:55] `) are taken out of the
    reason, so that checking a file twice gives the same report (a resumed check included).
    """
    reason = _check_video(path, num_threads)
    return None if reason is None else _DECORD_TIME_RE.sub("", reason)


def _check_video(path: str, num_threads: int) -> str | None:
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


class Progress:
    """`checked D/T (P%)  R videos/s  ETA H:MM:SS` on a stream, at most once per `interval` seconds.

    On a terminal the line is rewritten in place; elsewhere (a log file, a pipe) each update is a
    line of its own. The rate counts only the videos checked by this run (not those resumed from a
    results file), so the ETA is what is really left.
    """

    def __init__(self, total: int, *, already: int = 0, stream=None, interval: float | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if interval is None:
            interval = TTY_PROGRESS_S if self.tty else PLAIN_PROGRESS_S
        self.interval = interval
        self.total, self.already, self.done = total, already, 0
        self.start = time.monotonic()
        self.last = self.start

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._write(self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.start, 1e-9)
        done = self.already + self.done
        rate = self.done / elapsed
        left = self.total - done
        eta = _hms(left / rate) if rate > 0 else "?"
        pct = 100.0 * done / self.total if self.total else 100.0
        return (f"checked {done}/{self.total} ({pct:.1f}%)  {rate:.1f} videos/s  ETA {eta}"
                f"  elapsed {_hms(elapsed)}")

    def finish(self) -> None:
        self._write(self.line(), end="\n")

    def _write(self, text: str, end: str | None = None) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + text + (end or ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def check_videos(paths: list[str], *, workers: int = 4, num_threads: int = 1,
                 progress: bool | Progress = False, on_result=None) -> dict[str, str | None]:
    """Check every path in parallel; {path: None or reason}.

    At most `2 * workers` videos are submitted to the pool at a time. A worker killed by a decoder
    crash breaks the pool and fails every submitted future, so the window bounds what has to be
    re-checked: the videos of the window that did not finish are checked again each alone in a
    1-process pool (pinning the crash on its video), the rest go on in a new shared pool.

    `on_result(path, reason)` is called in the caller's process as each video's result is known
    (the results file is written from it); `progress` is True (a `Progress` on stderr) or one.
    """
    results: dict[str, str | None] = {}
    # spawn: workers start without the caller's decord/torch state (decord must not cross a fork).
    ctx = get_context("spawn")
    workers = max(1, workers)
    window = 2 * workers
    unique = list(dict.fromkeys(paths))
    todo = deque(unique)
    if progress is True:
        progress = Progress(len(unique))

    def record(path: str, result: str | None) -> None:
        results[path] = result
        if on_result is not None:
            on_result(path, result)
        if progress:
            progress.update()

    while todo:
        in_flight: dict = {}  # future -> path, for the videos handed to this pool
        broken = False
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_ignore_sigint)
        try:
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
                    record(in_flight.pop(future), result)
        except BaseException:
            # Ctrl-C (or a failing on_result): drop what is queued, do not wait for a full window.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        if not broken:
            break
        # Every submitted future is done now (the pool is shut down). Those that finished before
        # the pool broke keep their result; the others can have been running when it broke.
        suspects = []
        for future, path in in_flight.items():
            if not future.cancelled() and future.exception() is None:
                record(path, future.result())
            else:
                suspects.append(path)
        for path, result in _check_each_alone(suspects, ctx, workers, num_threads).items():
            record(path, result)
    if progress:
        progress.finish()
    return results


def _ignore_sigint() -> None:
    # Ctrl-C reaches the workers too (same process group); the parent alone handles it (keeps the
    # results, says how to resume) and the workers just finish their video, without tracebacks.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _check_each_alone(paths: list[str], ctx, workers: int, num_threads: int) -> dict[str, str | None]:
    """Check each path in a 1-process pool of its own, `workers` of them at a time, so that a crash
    is pinned on the video that causes it."""
    results: dict[str, str | None] = {}
    for i in range(0, len(paths), workers):
        batch = paths[i:i + workers]
        pools = [ProcessPoolExecutor(1, mp_context=ctx, initializer=_ignore_sigint) for _ in batch]
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


class ResultsFileError(ValueError):
    """A results file that belongs to another check (other list or data root); says what to do."""


@dataclass(frozen=True)
class _Stamp:
    """What a video file was when it was checked: a result holds only while the file is unchanged."""
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> "_Stamp":
        try:
            st = os.stat(path)
        except OSError:
            return cls(-1, -1)  # missing: the result ("file not found") holds while it stays missing
        return cls(st.st_size, st.st_mtime_ns)


class ResultsFile:
    """Append-only TSV of check results, one line per video, flushed as each video finishes.

    Line 1 names the check (`#vidgn check-videos results`, the list, the data root); line 2 is the
    column header `path status reason size mtime_ns`. Paths are the resolved video paths. A later
    line for the same path replaces an earlier one (a video re-checked after it changed), and a
    last line cut short by a kill is dropped (its video is checked again). Lines for videos that
    are not in the list any more (an edited list) are ignored, and kept in the file.

    A results file of another list or data root is refused rather than merged: its results would
    be those of other videos, or would mix two lists' results in one file.
    """

    def __init__(self, path: str | Path, *, list_path: str | Path, data_root: str | Path):
        self.path = Path(path)
        self.header = (f"{RESULTS_MAGIC}\tlist={Path(list_path).resolve()}"
                       f"\tdata_root={Path(data_root).resolve()}")
        self._file = None

    def load(self) -> dict[str, tuple[str | None, _Stamp]]:
        """{path: (reason or None, stamp)} from an earlier run; {} when there is no file yet."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise ResultsFileError(f"{self.path}: cannot read the results file ({e.strerror or e}).") from e
        first = data.split(b"\n", 1)[0].decode("utf-8", "replace")
        if not first.startswith(RESULTS_MAGIC):
            raise ResultsFileError(
                f"{self.path}: not a check-videos results file (its first line is {first[:80]!r}). "
                "Fix: pass another --results file, or move this one away.")
        if first.rstrip("\r") != self.header:
            raise ResultsFileError(
                f"{self.path}:1: these are the results of another check:\n  {first.rstrip()}\n"
                f"this check is\n  {self.header}\n"
                "Fix: pass --results FILE for this list (each list keeps its own results), or, if "
                "the list or data root only moved, delete the file to check everything again.")
        cut = data.rfind(b"\n") + 1
        if cut != len(data):  # a last line without its newline was cut short by a kill: drop it
            with open(self.path, "r+b") as f:
                f.truncate(cut)
        results: dict[str, tuple[str | None, _Stamp]] = {}
        lines = data[:cut].decode("utf-8", "replace").split("\n")[1:]
        for line in lines:
            row = line.split("\t")
            if len(row) != len(RESULTS_COLUMNS) or row[0] == "path":
                continue
            path, status, reason, size, mtime = map(_unescape, row)
            try:
                stamp = _Stamp(int(size), int(mtime))
            except ValueError:
                continue
            results[path] = (None if status == "ok" else reason, stamp)
        return results

    def open(self) -> None:
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8", newline="")
        if new:
            self._file.write(self.header + "\n" + "\t".join(RESULTS_COLUMNS) + "\n")
            self._file.flush()

    def append(self, path: str, reason: str | None, stamp: _Stamp) -> None:
        # Flushed per line: a killed check loses at most the videos in flight, never a finished one.
        fields = [path, "ok" if reason is None else "unreadable", reason or "", str(stamp.size),
                  str(stamp.mtime_ns)]
        self._file.write("\t".join(map(_escape, fields)) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


# One record per line whatever a decoder's message holds: backslash, tab and line breaks are
# escaped (as in PostgreSQL's text COPY format), so a kill can only cut the last line.
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}


def _escape(text: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in text) if any(c in _ESCAPES for c in text) else text


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(_UNESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def default_results_path(list_path: str | Path) -> Path:
    """`train.check.tsv` beside `train.txt`."""
    list_path = Path(list_path)
    return list_path.with_name(list_path.stem + ".check.tsv")


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
    p.add_argument("--results", metavar="FILE",
                   help="results file, appended to as each video is checked; a check stopped for any "
                        "reason resumes from it when run again (default: LIST_STEM.check.tsv beside "
                        "the list)")
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
    store = ResultsFile(args.results or default_results_path(args.list), list_path=args.list,
                        data_root=args.data_root)
    try:
        earlier = store.load()
        store.open()
    except (ResultsFileError, OSError) as e:
        print(f"vidgn check-videos: error: {e}", file=sys.stderr)
        return 2
    unique = list(dict.fromkeys(paths))
    results: dict[str, str | None] = {}
    for p in unique:  # an earlier result holds only for the same, unchanged file
        if p in earlier and earlier[p][1] == _Stamp.of(p):
            results[p] = earlier[p][0]
    todo = [p for p in unique if p not in results]
    if results:
        print(f"resuming from {store.path}: {len(results)} of {len(unique)} videos already checked, "
              f"{len(todo)} to check", file=sys.stderr)
    progress = Progress(len(unique), already=len(results))
    stamps: dict[str, _Stamp] = {}
    try:
        # The stamp is taken before the check: a file replaced during its check is checked again.
        for p in todo:
            stamps[p] = _Stamp.of(p)
        results.update(check_videos(todo, workers=args.workers, num_threads=args.num_threads,
                                    progress=progress,
                                    on_result=lambda p, r: store.append(p, r, stamps[p])))
    except KeyboardInterrupt:
        done = len(unique) - len(todo) + progress.done
        print(f"{chr(10) if progress.tty else ''}interrupted: {done} of {len(unique)} videos "
              f"checked, results kept in {store.path}; run the same command again to check the rest",
              file=sys.stderr)
        return 130
    finally:
        store.close()
    bad = [(e, p, results[p]) for e, p in zip(entries, paths) if results[p] is not None]
    for e, p, reason in bad:
        print(f"UNREADABLE {args.list}:{e.line}: {p}: {reason}")
    print(f"checked {len(entries)} videos: {len(entries) - len(bad)} readable, {len(bad)} unreadable "
          f"(results: {store.path})")
    if args.write_clean:
        lines = Path(args.list).read_text(encoding="utf-8-sig").splitlines()
        bad_lines = {e.line for e, _, _ in bad}
        keep = [lines[e.line - 1].strip() + "\n" for e in entries if e.line not in bad_lines]
        out = Path(args.write_clean)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(keep), encoding="utf-8")
        print(f"wrote {len(keep)} readable videos to {out}")
    return 1 if bad else 0
