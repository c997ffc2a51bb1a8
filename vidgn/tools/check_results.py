"""What `vidgn check-videos` remembers between runs: the results file, appended to as each video is
checked, from which a stopped check resumes (`ResultsFile`), and the file stamp (size, mtime) that
says whether a recorded result still holds (`Stamp`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RESULTS_MAGIC = "#vidgn check-videos results"
RESULTS_COLUMNS = ("path", "status", "reason", "size", "mtime_ns")


class ResultsFileError(ValueError):
    """A results file that belongs to another check (other list or data root); says what to do."""


@dataclass(frozen=True)
class Stamp:
    """What a video file was when it was checked: a result holds only while the file is unchanged."""
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> "Stamp":
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

    def load(self) -> dict[str, tuple[str | None, Stamp]]:
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
        results: dict[str, tuple[str | None, Stamp]] = {}
        lines = data[:cut].decode("utf-8", "replace").split("\n")[1:]
        for line in lines:
            row = line.split("\t")
            if len(row) != len(RESULTS_COLUMNS) or row[0] == "path":
                continue
            path, status, reason, size, mtime = map(_unescape, row)
            try:
                stamp = Stamp(int(size), int(mtime))
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

    def append(self, path: str, reason: str | None, stamp: Stamp) -> None:
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

