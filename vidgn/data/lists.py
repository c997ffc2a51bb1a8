"""Video list files: one video per line, `path label`.

The PySlowFast / MMAction2 / pytorchvideo convention, with all the variants they accept:

    abseiling/0wR5jVB-WPk_000417_000427.mp4 0
    passing American football (in game)/1DmJKu0RzRs_000010_000020.mp4 passing American football (in game)
    /abs/path/clip.webm,3
    # comments and blank lines are ignored

* `path` is relative to a `data_root` unless it is absolute (then it is used as is).
* The separator is whitespace or a comma. Paths may contain spaces, commas and parentheses (Kinetics
  class folders do), so a line is split on its LAST separator; a label that is itself a class name
  with spaces is recognised by matching the end of the line against `classes.txt`.
* `label` is an integer class index or a class name; names are mapped to indices by `classes.txt`
  (one name per line, index = line number - 1).
* A path may be wrapped in double quotes (CSV style), e.g. `"a, b.mp4",3`.
* Header: a first data line whose label field is literally `label` (any case), e.g. `path label`
  or `video,label`, is a header and is skipped (unless `label` is a class name).
* Unlabeled lists (to predict on) are lines with only a path; they need `allow_unlabeled=True` and
  get label -1.

Every problem (missing video, unknown label, unparsable line) is collected while the list is read and
raised as ONE `ListError` naming the list file, the first offenders with their line numbers, the
total count and what to do, so that a bad list fails before any training starts.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

# How many offending lines a ListError quotes; the total count is always given.
MAX_SHOWN = 5
CLASSES_FILENAME = "classes.txt"
_INT_RE = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class VideoEntry:
    path: str  # as written in the list (relative to data_root unless absolute)
    label: int  # class index (-1 if the list has no labels, e.g. unlabeled test list)
    line: int  # 1-based line number in the list file, for error messages


class ListError(ValueError):
    """A list or classes file is unusable; the message names the file, the lines and the fix."""


def read_classes(path: str | Path) -> list[str]:
    """Class names from a `classes.txt`: one name per line, index = line number - 1.

    Surrounding whitespace is stripped and trailing blank lines are ignored; a blank line in the
    middle or a repeated name is an error (either would silently shift or merge class indices).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ListError(f"{path}: cannot read classes file ({e.strerror or e}).") from e
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    problems = []
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if not name:
            problems.append(f"  {path}:{i}: blank line (it would shift every later class index)")
        elif name in seen:
            problems.append(f"  {path}:{i}: {name!r} repeats line {seen[name]}")
        else:
            seen[name] = i
    if not names:
        raise ListError(f"{path}: classes file is empty; it needs one class name per line.")
    if problems:
        raise ListError(
            f"{path}: {len(problems)} bad line(s) in classes file:\n"
            + "\n".join(problems[:MAX_SHOWN])
            + "\nFix: one distinct class name per line, no blank lines (index = line number - 1)."
        )
    return names


def find_classes_file(list_path: str | Path, data_root: str | Path) -> Path | None:
    """`classes.txt` beside the list file, else in `data_root`, else None."""
    for folder in (Path(list_path).parent, Path(data_root)):
        candidate = folder / CLASSES_FILENAME
        if candidate.is_file():
            return candidate
    return None


def resolve(entry: VideoEntry, data_root: str | Path) -> Path:
    """Full path of the video: `data_root / path`, or `path` itself when it is absolute."""
    p = Path(entry.path)
    return p if p.is_absolute() else Path(data_root) / p


def write_list(path: str | Path, rows: Iterable[tuple[str, int | str]]) -> None:
    """Write `path label` lines (space-separated, read back by `parse_list`).

    Spaces in paths are safe because `parse_list` splits on the last separator. A path with a line
    break, or one with leading/trailing whitespace (which would be stripped on reading), cannot be
    written and raises ValueError.
    """
    out = []
    for video_path, label in rows:
        video_path = str(video_path)
        if "\n" in video_path or "\r" in video_path or video_path != video_path.strip():
            raise ValueError(f"cannot write path {video_path!r} to a list file (line break or "
                             "leading/trailing whitespace)")
        label = str(label)
        if not label.strip() or "\n" in label:
            raise ValueError(f"bad label {label!r} for {video_path!r}")
        out.append(f"{video_path} {label}\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(out), encoding="utf-8")


def _unquote(path: str) -> str:
    path = path.strip()
    if len(path) >= 2 and path[0] == path[-1] == '"':
        path = path[1:-1].replace('""', '"')  # CSV escaping of quotes inside a quoted field
    return path


def _label_index(text: str, class_index: dict[str, int] | None, num_classes: int | None) -> int | None:
    """Index for a label field, or None when it is not a valid label."""
    text = text.strip()
    if _INT_RE.match(text):
        value = int(text)
        if value < 0 or (num_classes is not None and value >= num_classes):
            return None
        return value
    if class_index is not None:
        return class_index.get(text)
    return None


def _split_line(raw: str, class_index, num_classes, spaced_names: list[str]):
    """(path, label_text, label_index or None) for one stripped, non-comment line.

    Tries, in order: the last comma; a class name containing spaces at the end of the line; the last
    whitespace run. The first split whose label is valid wins; if none is valid, the most plausible
    split is returned with index None so that the caller can report it (or treat the line as an
    unlabeled path).
    """
    candidates = []
    if "," in raw:
        p, _, lab = raw.rpartition(",")
        candidates.append((p, lab))
    for name in spaced_names:  # longest first, so "a b c" wins over "b c"
        if raw.endswith(name):
            head = raw[: -len(name)]
            if head and (head[-1].isspace() or head[-1] == ","):
                candidates.append((head[:-1], name))
                break
    parts = raw.rsplit(None, 1)
    if len(parts) == 2:
        candidates.append((parts[0], parts[1]))
    for p, lab in candidates:
        idx = _label_index(lab, class_index, num_classes)
        if idx is not None and _unquote(p):
            return _unquote(p), lab.strip(), idx
    if candidates:
        # Report the split on whichever separator comes last (a comma inside the last word wins).
        tail = parts[-1] if len(parts) == 2 else raw
        p, lab = candidates[0] if "," in tail else candidates[-1]
        return _unquote(p), lab.strip(), None
    return _unquote(raw), "", None


def parse_list(
    list_path: str | Path,
    data_root: str | Path,
    classes: list[str] | None = None,
    *,
    check_files: bool = True,
    allow_unlabeled: bool = False,
    classes_source: str | None = None,
) -> list[VideoEntry]:
    """Read a list file into `VideoEntry`s, validating every line before returning.

    Args:
        list_path: the list file.
        data_root: folder that relative paths in the list are relative to.
        classes: class names (index = position). None: use `classes.txt` beside the list or in
            `data_root` if there is one (needed only when the list uses class names as labels).
        check_files: check that every video exists (a missing one is an error).
        allow_unlabeled: accept lines with only a path (label -1): a list to predict on.
        classes_source: where `classes` came from (a classes.txt path), for error messages.

    Raises:
        ListError: one error listing the first offending lines (file:line), the total count and
            what to do.
    """
    list_path = Path(list_path)
    data_root = Path(data_root)
    try:
        text = list_path.read_text(encoding="utf-8-sig")  # -sig: tolerate a BOM from spreadsheet tools
    except OSError as e:
        raise ListError(f"{list_path}: cannot read list file ({e.strerror or e}).") from e
    classes_source = classes_source or "the classes you passed"
    if classes is None:
        found = find_classes_file(list_path, data_root)
        if found is not None:
            classes = read_classes(found)
            classes_source = str(found)
    class_index = {name: i for i, name in enumerate(classes)} if classes is not None else None
    num_classes = len(classes) if classes is not None else None
    spaced = sorted((n for n in (classes or []) if any(c.isspace() or c == "," for c in n)),
                    key=len, reverse=True)

    entries: list[VideoEntry] = []
    bad_labels: list[str] = []
    missing: list[str] = []
    first_data_line = True
    for lineno, line in enumerate(text.splitlines(), start=1):
        raw = line.strip()
        if not raw or raw.startswith("#"):
            continue
        path, label_text, idx = _split_line(raw, class_index, num_classes, spaced)
        if first_data_line:
            first_data_line = False
            if idx is None and label_text.lower() == "label":
                continue  # header row, e.g. "path label" or "video,label"
        if idx is None and allow_unlabeled and not _looks_like_label(label_text):
            whole = _unquote(raw)
            # "x.mp4 some class" where x.mp4 exists (and the whole line does not) has an unknown
            # label, not no label.
            prefix = None if _exists(whole, data_root) else _existing_prefix(raw, data_root)
            if prefix is None:
                path, idx = whole, -1
            else:
                path, label_text = prefix
        if idx is None:
            if not allow_unlabeled and label_text and _exists(_unquote(raw), data_root):
                # The whole line names a video ("moving left/x.mp4"): a path without a label.
                bad_labels.append(f"  {list_path}:{lineno}: {_unquote(raw)!r}: no label on this line")
            else:
                bad_labels.append(f"  {list_path}:{lineno}: label {label_text!r} "
                                  f"({_why_bad(label_text, num_classes)})")
            continue
        entry = VideoEntry(path=path, label=idx, line=lineno)
        if check_files and not os.path.isfile(resolve(entry, data_root)):
            missing.append(f"  {list_path}:{lineno}: {resolve(entry, data_root)} not found")
            continue
        entries.append(entry)

    if bad_labels or missing:
        parts = []
        if bad_labels:
            fix = (f"Fix the labels, or {CLASSES_FILENAME} ({classes_source}; {num_classes} classes)"
                   if classes is not None else
                   f"Labels that are class names need a {CLASSES_FILENAME} beside the list or in "
                   f"the data root (one name per line), or pass classes")
            if not allow_unlabeled and any("no label on this line" in b for b in bad_labels):
                fix += ("; a list without labels can only be predicted on: give it as data.predict_list "
                        "(`vidgn predict`); training, validation and test lists need labels")
            parts.append(_section(f"{len(bad_labels)} line(s) with an unknown or missing label",
                                  bad_labels, fix + "."))
        if missing:
            parts.append(_section(
                f"{len(missing)} video(s) not found (relative paths are taken from data root {data_root})",
                missing,
                "Check the data root (data.data_root in a config, --data-root for the vidgn tools), or "
                "drop the missing videos with "
                f"`vidgn check-videos {list_path} --data-root {data_root} --write-clean CLEAN_LIST` "
                "and train on CLEAN_LIST."))
        raise ListError(f"{list_path}: unusable list file.\n" + "\n".join(parts))
    if not entries:
        raise ListError(f"{list_path}: no videos listed (expected lines `path label`).")
    return entries


def _exists(path: str, data_root: Path) -> bool:
    return os.path.isfile(resolve(VideoEntry(path, -1, 0), data_root))


def _existing_prefix(raw: str, data_root: Path) -> tuple[str, str] | None:
    """(path, rest) for the longest prefix of `raw`, cut at a separator, that is an existing file."""
    cuts = [i for i, c in enumerate(raw) if c.isspace() or c == ","]
    for i in reversed(cuts):
        head, rest = _unquote(raw[:i]), raw[i + 1:].strip()
        if head and rest and _exists(head, data_root):
            return head, rest
    return None


def _looks_like_label(text: str) -> bool:
    # An integer last field means the user meant a label (out of range), not part of a path.
    return bool(_INT_RE.match(text.strip()))


def _why_bad(label_text: str, num_classes: int | None) -> str:
    if not label_text:
        return "no label on this line"
    if _INT_RE.match(label_text):
        if num_classes is None:
            return "negative index"
        return f"index out of range 0..{num_classes - 1}"
    if num_classes is None:
        return "a class name, but no classes.txt was found"
    return "not a class name in classes.txt"


def _section(title: str, lines: list[str], fix: str) -> str:
    shown = lines[:MAX_SHOWN]
    more = f"\n  ... and {len(lines) - len(shown)} more" if len(lines) > len(shown) else ""
    return f"{title}:\n" + "\n".join(shown) + more + f"\n{fix}"
