"""What `vidgn prepare-kinetics` reads: the official annotation CSVs (`read_annotations`), the
downloaded clips under the data root (`index_videos`) and the CVDF download layout (`cvdf_inputs`).
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from vidgn.tools.kinetics_labels import normalize_label
from vidgn.tools.progress import plural
from vidgn.tools.walk import walk_files

VIDEO_EXTS = (".mp4", ".webm", ".mkv")  # preference order when one clip exists in several formats
_CLIP_RE = re.compile(r"^(?P<id>.+)_(?P<start>\d{6})_(?P<end>\d{6})$")
REQUIRED_COLUMNS = ("youtube_id", "time_start", "time_end")
# CVDF layout (cvdfoundation/kinetics-dataset k400_extractor.sh): clips per split folder, CSVs in
# annotations/, and the replacements for ~1400 corrupted K400 train clips in this folder.
CVDF_CSVS = {"train": "annotations/train.csv", "val": "annotations/val.csv", "test": "annotations/test.csv"}
CVDF_REPLACEMENT_DIR = "replacement"


class KineticsError(ValueError):
    """Unusable input (CSV without the needed columns, no data root, a val class train lacks,
    existing outputs without --overwrite); the message says what to do."""


def index_videos(data_root: Path) -> tuple[dict[tuple[str, int, int], str], dict[str, str]]:
    """Map every video under `data_root` to its path relative to it.

    Returns (by_clip, by_id): `by_clip[(youtube_id, start, end)]` for trimmed-clip names and
    `by_id[youtube_id]` for plain `{youtube_id}.{ext}` names. Where a clip exists in several formats
    the first of VIDEO_EXTS wins, so the result does not depend on directory order; a clip under
    the CVDF `replacement/` folder wins over any other copy (it replaces a corrupted original).
    """
    by_clip: dict[tuple[str, int, int], str] = {}
    by_id: dict[str, str] = {}
    rank = {ext: i for i, ext in enumerate(VIDEO_EXTS)}

    def order(rel: str, ext: str):
        return (not rel.startswith(CVDF_REPLACEMENT_DIR + "/"), rank[ext], rel)

    def put(table, key, rel, ext):
        old = table.get(key)
        if old is None or order(rel, ext) < order(old, Path(old).suffix.lower()):
            table[key] = rel

    for rel, name in walk_files(data_root):
        stem, ext = os.path.splitext(name)
        ext = ext.lower()
        if ext not in rank:
            continue
        m = _CLIP_RE.match(stem)
        if m:
            put(by_clip, (m["id"], int(m["start"]), int(m["end"])), rel, ext)
        else:
            put(by_id, stem, rel, ext)
    return by_clip, by_id


def read_annotations(csv_path: Path, *, need_label: bool) -> list[dict]:
    """Rows of an official Kinetics CSV as dicts with int time_start/time_end, the label normalised
    by `normalize_label` (None if absent) and `line`, the row's line in the file."""
    try:
        f = open(csv_path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise KineticsError(f"{csv_path}: cannot read annotation CSV ({e.strerror or e}).") from e
    with f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        needed = REQUIRED_COLUMNS + (("label",) if need_label else ())
        absent = [c for c in needed if c not in header]
        if absent:
            raise KineticsError(
                f"{csv_path}: header {header} lacks column(s) {absent}; expected the official "
                f"Kinetics format `{OFFICIAL_HEADER}` with a header row.")
        return [_annotation(csv_path, reader.line_num, header, fields, need_label)
                for fields in reader if fields]  # blank lines are no rows


# Columns prepare-kinetics reads; a row cut short before one of them is refused (is_cc may be absent).
_USED_COLUMNS = (*REQUIRED_COLUMNS, "label", "split")
OFFICIAL_HEADER = "label,youtube_id,time_start,time_end,split[,is_cc]"


def _annotation(csv_path: Path, lineno: int, header: list[str], fields: list[str], need_label: bool) -> dict:
    """One CSV row (`fields`, at line `lineno`) as read_annotations returns it; KineticsError naming
    the line for a row that is cut short, has no usable times, or lacks a needed label."""
    cut = [c for c in header[len(fields):] if c in _USED_COLUMNS]
    if cut:
        raise KineticsError(
            f"{csv_path}:{lineno}: this row has {plural(len(fields), 'field')}, the header has {len(header)} "
            f"({', '.join(header)}); it lacks {', '.join(cut)}. Fix: complete the row (a comma too "
            "few, or a file cut short?) or remove it.")
    row = dict(zip(header, fields))
    try:
        start, end = int(float(row["time_start"])), int(float(row["time_end"]))
    except ValueError:
        # More fields than the header: usually a label with an unquoted comma, shifting the rest.
        extra = (f" (this row has {len(fields)} fields, the header has {len(header)}: a label with "
                 "an unquoted comma?)" if len(fields) > len(header) else "")
        raise KineticsError(f"{csv_path}:{lineno}: time_start/time_end are not numbers: "
                            f"{row['time_start']!r}, {row['time_end']!r}{extra}. Fix: correct or "
                            "remove the row.") from None
    raw_label = row.get("label") or ""
    label = normalize_label(raw_label) or None
    if need_label and label is None:
        raise KineticsError(f"{csv_path}:{lineno}: empty label. Fix: give the row its class or "
                            "remove it.")
    return {"label": label, "youtube_id": row["youtube_id"].strip(), "time_start": start,
            "time_end": end, "split": (row.get("split") or "").strip(), "line": lineno,
            "raw_label": raw_label}


def cvdf_inputs(cvdf_root, **given) -> dict:
    """prepare_kinetics arguments for a CVDF download folder (`k400`, `k700-2020`): the clips and
    the annotation CSVs in it (test only when its CSV is there), each replaced by the `given` one
    that is not None. KineticsError when a train or val CSV it implies is not where the CVDF
    scripts put it."""
    root = Path(cvdf_root)
    csvs = {f"{split}_csv": root / rel for split, rel in CVDF_CSVS.items()}
    inputs = {"data_root": root, **csvs}
    if not csvs["test_csv"].is_file():
        inputs["test_csv"] = None
    inputs.update({k: v for k, v in given.items() if v is not None})
    absent = [str(csvs[k]) for k in ("train_csv", "val_csv")
              if given.get(k) is None and not csvs[k].is_file()]
    if absent:
        raise KineticsError(
            f"--cvdf-root {root}: {' and '.join(absent)} not found; a CVDF download "
            "(cvdfoundation/kinetics-dataset, k400_downloader.sh) has annotations/train.csv and "
            "annotations/val.csv there. Fix: point --cvdf-root at the folder holding train/, val/ and "
            "annotations/ (e.g. k400), or give the CSV with --train-csv / --val-csv.")
    return inputs
