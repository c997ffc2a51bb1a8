"""The progress line of a long tool run: `checked D/T (P%)  R videos/s  ETA H:MM:SS  elapsed H:MM:SS`.

Used by `vidgn check-videos` and `vidgn resize-videos` (stderr).
"""
from __future__ import annotations

import sys
import time

# Progress updates: a few per second on a terminal (one line rewritten in place), one line every
# PLAIN_PROGRESS_S in a log file (a 240k-video check would otherwise write tens of thousands of lines).
TTY_PROGRESS_S = 0.25
PLAIN_PROGRESS_S = 30.0


class Progress:
    """`VERB D/T (P%)  R videos/s  ETA H:MM:SS` on a stream, at most once per `interval` seconds.

    On a terminal the line is rewritten in place; elsewhere (a log file, a pipe) each update is a
    line of its own. The rate counts only the videos done by this run (not `already`, e.g. those
    resumed from a results file or finished by an earlier run), so the ETA is what is really left.
    """

    def __init__(self, total: int, *, already: int = 0, stream=None, interval: float | None = None,
                 verb: str = "checked"):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if interval is None:
            interval = TTY_PROGRESS_S if self.tty else PLAIN_PROGRESS_S
        self.interval = interval
        self.verb = verb
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
        return (f"{self.verb} {done}/{self.total} ({pct:.1f}%)  {rate:.1f} videos/s  ETA {eta}"
                f"  elapsed {_hms(elapsed)}")

    def message(self, text: str) -> None:
        """A line of its own (e.g. a failure) between progress updates; on a terminal it replaces
        the progress line, which comes back with the next update."""
        self.stream.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.done == 0 and self.already >= self.total:
            return  # nothing was left to do: a rate of 0 and an unknown ETA would only puzzle
        self._write(self.line(), end="\n")

    def _write(self, text: str, end: str | None = None) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + text + (end or ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def plural(n: int, noun: str) -> str:
    """`1 video`, `2 videos`: the counts in the tools' messages are often 1 (a one-video list)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
