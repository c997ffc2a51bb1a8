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
* Files are UTF-8 (a byte-order mark, as spreadsheet tools write, is fine). A UTF-16/UTF-32 file
  (Windows PowerShell's `>` writes UTF-16) or bytes that are not UTF-8 raise a ListError saying so.
* Single-label only: an MMAction2 multi-label line (`path 3 7 12`) is an error, not a video whose
  name ends in numbers.

Every problem (missing video, directory listed as a video, unknown label, multi-label or unparsable
line) is collected while the list is read and raised as ONE `ListError` naming the list file, the
first offenders with their line numbers, the total count and what to do, so that a bad list fails
before any training starts.
"""
from __future__ import annotations

import codecs
import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

# How many offending lines a ListError quotes; the total count is always given.
MAX_SHOWN = 5
CLASSES_FILENAME = "classes.txt"
_INT_RE = re.compile(r"^[+-]?\d+$")
# Everything up to and including the last separator (greedy, so the LAST one); see _last_word.
_UP_TO_LAST_SEP_RE = re.compile(r".*[\s,]", re.DOTALL)
# `path 3 7 12`: two or more integer fields at the end of a line (MMAction2's multi-label lists).
_MULTI_RE = re.compile(r"^(.*?[^\s,])((?:[\s,]+[+-]?\d+){2,})[\s,]*$")
# Extensions that mark the end of a video path, to split `path label` when the label is unknown.
_VIDEO_EXTS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv",
               ".3gp", ".ogv", ".ts", ".gif")
# Byte-order marks of encodings that are not UTF-8 (UTF-32 first: its LE mark starts like UTF-16's).
_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


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
    lines = _read_text(path, "classes file").splitlines()
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


def _read_text(path: Path, what: str) -> str:
    """The text of a list or classes file, which must be UTF-8 (a BOM is skipped).

    Anything else raises a ListError naming the file (and the lines, when single bytes are not
    UTF-8) and saying to save it as UTF-8, rather than a UnicodeDecodeError traceback or, for
    UTF-16, a list of garbled labels.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ListError(f"{path}: cannot read {what} ({e.strerror or e}).") from e
    for bom, enc in _BOMS:
        if data.startswith(bom):
            raise ListError(f"{path}: the {what} is {enc}-encoded (it starts with a {enc} byte-order mark); "
                            + _save_as_utf8(path, enc))
    if b"\x00" in data:  # UTF-16/32 without a BOM: ASCII characters come with NUL bytes
        raise ListError(f"{path}: the {what} contains NUL bytes, so it is probably UTF-16-encoded; "
                        + _save_as_utf8(path, "UTF-16"))
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    bad = []
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(f"  {path}:{lineno}: {line.decode('utf-8', 'replace').strip()!r}")
    raise ListError(f"{path}: unusable {what}.\n" + _section(
        f"{len(bad)} line(s) are not valid UTF-8 (\ufffd marks the bytes)", bad,
        "Fix: " + _save_as_utf8(path, "CP1252")))


def _save_as_utf8(path: Path, encoding: str) -> str:
    return (f"save it as UTF-8 (choose UTF-8 when saving in the editor or spreadsheet, or convert it, e.g. "
            f"`iconv -f {encoding} -t UTF-8 {path} > NEW_FILE`; in PowerShell write lists with "
            f"`Out-File -Encoding utf8`).")


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


def _last_word(text: str) -> str:
    """What follows the last separator (whitespace or comma) of `text`; all of it if it has none."""
    m = _UP_TO_LAST_SEP_RE.match(text)
    return text[m.end():] if m else text


def _spaced_names_by_last_word(classes: list[str] | None) -> dict[str, list[str]]:
    """{last word: the class names with a separator that end in it, longest first}.

    A line can end with such a name only if the line's own last word is the name's last word (the
    name holds a separator, so the line's last separator lies inside it), so `_split_line` tries a
    handful of names per line instead of all of them: parsing 240k Kinetics lines took 4-8 s with
    the scan, 1-2.7 s with the index (issue 11; figures in the benchmarks docs).
    """
    spaced = sorted((n for n in (classes or []) if any(c.isspace() or c == "," for c in n)),
                    key=len, reverse=True)
    index: dict[str, list[str]] = {}
    for name in spaced:  # stable: longest first, ties in classes.txt order, as the scan tried them
        index.setdefault(_last_word(name), []).append(name)
    return index


def _split_line(raw: str, class_index, num_classes, spaced_names: dict[str, list[str]]):
    """(path, label_text, label_index or None) for one stripped, non-comment line.

    Tries, in order: the last comma; a class name containing spaces at the end of the line; the last
    whitespace run. The first split whose label is valid wins; if none is valid, the most plausible
    split is returned with index None so that the caller can report it (or treat the line as an
    unlabeled path). `spaced_names` is `_spaced_names_by_last_word(classes)`.
    """
    candidates = []
    if "," in raw:
        p, _, lab = raw.rpartition(",")
        candidates.append((p, lab))
    # Longest first, so "a b c" wins over "b c".
    for name in spaced_names.get(_last_word(raw), ()) if spaced_names else ():
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
    text = _read_text(list_path, "list file")
    classes_source = classes_source or "the classes you passed"
    if classes is None:
        found = find_classes_file(list_path, data_root)
        if found is not None:
            classes = read_classes(found)
            classes_source = str(found)
    class_index = {name: i for i, name in enumerate(classes)} if classes is not None else None
    num_classes = len(classes) if classes is not None else None
    spaced = _spaced_names_by_last_word(classes)

    entries: list[VideoEntry] = []
    bad_labels: list[str] = []
    missing: list[str] = []
    directories: list[str] = []
    multi_labels: list[str] = []
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
        multi = _multi_label(raw, path, idx, data_root)
        if multi is not None:
            head, labels = multi
            multi_labels.append(f"  {list_path}:{lineno}: {head!r} has {len(labels)} labels "
                                f"({' '.join(labels)})")
            continue
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
            elif label_text and not _INT_RE.match(label_text):
                bad_labels.append(f"  {list_path}:{lineno}: "
                                  + _unknown_name(raw, path, label_text, data_root, classes))
            else:
                bad_labels.append(f"  {list_path}:{lineno}: label {label_text!r} "
                                  f"({_why_bad(label_text, num_classes)})")
            continue
        entry = VideoEntry(path=path, label=idx, line=lineno)
        if check_files:
            full = resolve(entry, data_root)
            if not os.path.isfile(full):
                if os.path.isdir(full):
                    directories.append(f"  {list_path}:{lineno}: {full} is a directory, not a video file")
                else:
                    missing.append(f"  {list_path}:{lineno}: {full} not found")
                continue
        entries.append(entry)

    if bad_labels or missing or directories or multi_labels:
        parts = []
        if multi_labels:
            parts.append(_section(
                f"{len(multi_labels)} multi-label line(s) (several labels for one video)", multi_labels,
                "Multi-label lists are not supported: vidgn trains single-label classification, one "
                "`path label` per line. Keep one label per video."))
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
        if directories:
            parts.append(_section(
                f"{len(directories)} path(s) are directories, not video files", directories,
                "List one video file per line (`class_folder/clip.mp4 label`), not a folder; "
                "`vidgn prepare-kinetics` writes the lists for Kinetics downloads."))
        raise ListError(f"{list_path}: unusable list file.\n" + "\n".join(parts))
    if not entries:
        raise ListError(f"{list_path}: no videos listed (expected lines `path label`).")
    return entries


def list_paths(list_path: str | Path, data_root: str | Path) -> list[VideoEntry]:
    """The videos a list names, its labels not read (label -1): for tools that only need the files
    (`vidgn resize-videos --list`), so a list labelled with class names needs no classes.txt.

    A line's path is the whole line if that names an existing file, else its longest prefix (cut at
    a separator) that does, else the part before its last separator. A first line whose last field
    is `label` is a header, as in parse_list.
    """
    data_root = Path(data_root)
    entries = []
    for lineno, line in enumerate(_read_text(Path(list_path), "list file").splitlines(), start=1):
        raw = line.strip()
        if not raw or raw.startswith("#"):
            continue
        if not entries and _last_word(raw).lower() == "label" and raw.lower() != "label":
            continue  # header row
        path = _unquote(raw)
        if not _exists(path, data_root):
            split = _existing_prefix(raw, data_root) or _video_prefix(raw)
            before_last = _UP_TO_LAST_SEP_RE.match(raw)
            path = split[0] if split else _unquote(before_last.group(0)[:-1] if before_last else raw)
        entries.append(VideoEntry(path=path, label=-1, line=lineno))
    if not entries:
        raise ListError(f"{list_path}: no videos listed (expected lines `path label` or `path`).")
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


def _video_prefix(raw: str) -> tuple[str, str] | None:
    """(path, rest) for the longest prefix of `raw`, cut at a separator, that ends in a video extension."""
    cuts = [i for i, c in enumerate(raw) if c.isspace() or c == ","]
    for i in reversed(cuts):
        head, rest = _unquote(raw[:i]), raw[i + 1:].strip(" \t,")
        if head and rest and head.lower().endswith(_VIDEO_EXTS):
            return head, rest
    return None


def _multi_label(raw: str, path: str, idx: int | None, data_root: Path) -> tuple[str, list[str]] | None:
    """(path, labels) if `raw` is a multi-label line `path 3 7 12`, else None.

    Only when the part before the integers is a video (an existing file, or a name with a video
    extension) and the line is not an existing file whose name ends in numbers plus one label.
    """
    # Cheap test first (this runs on every line): the last two fields must be integers.
    before, _, last = raw.replace(",", " ").replace("\t", " ").rstrip().rpartition(" ")
    if not _INT_RE.match(last) or not _INT_RE.match(before.rstrip().rpartition(" ")[2]):
        return None
    m = _MULTI_RE.match(raw)
    if m is None:
        return None
    if idx is not None and _exists(path, data_root):
        return None
    head = _unquote(m.group(1))
    if not (head.lower().endswith(_VIDEO_EXTS) or _exists(head, data_root)):
        return None
    return head, re.split(r"[\s,]+", m.group(2).strip(" \t,"))


def _unknown_name(raw: str, path: str, label_text: str, data_root: Path, classes: list[str] | None) -> str:
    """The message for a line whose label is not an integer and matched no class name.

    A line is split on its last separator, so `x.mp4 passing American football (not in game)` has
    the "label" `game)`; quote the whole label instead: the rest of the line after the video (an
    existing file, or a name ending in a video extension). If there is no telling where the path
    ends, quote the whole line.
    """
    split = _existing_prefix(raw, data_root) or _video_prefix(raw)
    if split is not None:
        label_text = split[1]
    elif any(c.isspace() or c == "," for c in path):
        what = ("neither a class name in classes.txt nor a class index" if classes is not None else
                "not a class index (and no classes.txt was found for class names)")
        return f"{_unquote(raw)!r}: the end of the line is {what}"
    msg = f"label {label_text!r} ({_why_bad(label_text, len(classes) if classes is not None else None)}"
    close = difflib.get_close_matches(label_text, classes or [], n=1, cutoff=0.8)
    if not close and classes:
        close = [c for c in classes if c.lower() == label_text.lower()][:1]
    return msg + (f"; did you mean {close[0]!r}?)" if close else ")")


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
