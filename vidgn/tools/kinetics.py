"""`vidgn prepare-kinetics`: official Kinetics-400 annotation CSVs + downloaded clips -> list files.

Inputs
* annotation CSVs with a header row: `label,youtube_id,time_start,time_end,split[,is_cc]`
  (train.csv, validate.csv; test.csv may have no `label` column);
* `--data-root`: the folder of downloaded clips, flat or in per-class (or per-split) folders, named
  `{youtube_id}_{time_start:06d}_{time_end:06d}.{mp4,webm,mkv}` (the trimmed-clip name used by the
  common downloaders) or plainly `{youtube_id}.{ext}`.

Outputs (in `--out`, default the data root): `classes.txt` (the train split's class names, sorted:
the standard Kinetics index order), `train.txt`, `val.txt` and, if a test CSV is given, `test.txt`
(lines `path label`, paths relative to the data root, labels class indices; unlabeled test clips get
only a path), and `missing.csv`: the annotated clips that were not found, in the official CSV format
so that it can be handed back to a downloader. A few percent of Kinetics clips are typically missing
(videos removed from YouTube); that is reported, not an error.

Class names are normalised the same way in every split: surrounding whitespace stripped, inner
whitespace collapsed to one space, and matched across splits ignoring case, so `Abseiling ` in
validate.csv is train's `abseiling` (the name written is train's spelling, case kept). A val/test
class that train does not have is an error naming the CSV line: it would add a class and shift every
class index after it.

Nothing is written unless everything succeeded: the outputs are written to temporary files in the
output folder and renamed into place at the end. Existing outputs are replaced only with
`--overwrite`.

Files that exist but do not decode are found by `vidgn check-videos`, run next (see data/README.md).
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vidgn.data.lists import CLASSES_FILENAME, write_list

VIDEO_EXTS = (".mp4", ".webm", ".mkv")  # preference order when one clip exists in several formats
_CLIP_RE = re.compile(r"^(?P<id>.+)_(?P<start>\d{6})_(?P<end>\d{6})$")
REQUIRED_COLUMNS = ("youtube_id", "time_start", "time_end")
MAX_SHOWN = 5  # offending CSV lines quoted in an error; the total is always given


MISSING_FILENAME = "missing.csv"


class KineticsError(ValueError):
    """Unusable input (CSV without the needed columns, no data root, a val class train lacks,
    existing outputs without --overwrite); the message says what to do."""


class NoClipsError(KineticsError):
    """A split has annotated clips but none was found under the data root (wrong --data-root?)."""


@dataclass
class SplitReport:
    split: str
    annotated: int = 0
    found: int = 0
    unlabeled: int = 0  # found clips without a label: the list is for prediction only
    respelled: int = 0  # rows whose label differs from train's class name only by case/spacing
    missing_rows: list[dict] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return len(self.missing_rows)


def index_videos(data_root: Path) -> tuple[dict[tuple[str, int, int], str], dict[str, str]]:
    """Map every video under `data_root` to its path relative to it.

    Returns (by_clip, by_id): `by_clip[(youtube_id, start, end)]` for trimmed-clip names and
    `by_id[youtube_id]` for plain `{youtube_id}.{ext}` names. Where a clip exists in several formats
    the first of VIDEO_EXTS wins, so the result does not depend on directory order.
    """
    by_clip: dict[tuple[str, int, int], str] = {}
    by_id: dict[str, str] = {}
    rank = {ext: i for i, ext in enumerate(VIDEO_EXTS)}

    def put(table, key, rel, ext):
        old = table.get(key)
        if old is None or (rank[ext], rel) < (rank[Path(old).suffix.lower()], old):
            table[key] = rel

    for dirpath, dirnames, filenames in os.walk(data_root, followlinks=True):
        dirnames.sort()
        for name in filenames:
            stem, ext = os.path.splitext(name)
            ext = ext.lower()
            if ext not in rank:
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), data_root).replace(os.sep, "/")
            m = _CLIP_RE.match(stem)
            if m:
                put(by_clip, (m["id"], int(m["start"]), int(m["end"])), rel, ext)
            else:
                put(by_id, stem, rel, ext)
    return by_clip, by_id


def normalize_label(label: str) -> str:
    """A class name with surrounding whitespace stripped and inner whitespace collapsed to one space."""
    return " ".join(label.split())


def read_annotations(csv_path: Path, *, need_label: bool) -> list[dict]:
    """Rows of an official Kinetics CSV as dicts with int time_start/time_end, the label normalised
    by `normalize_label` (None if absent) and `line`, the row's line in the file."""
    try:
        f = open(csv_path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise KineticsError(f"{csv_path}: cannot read annotation CSV ({e.strerror or e}).") from e
    with f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        needed = REQUIRED_COLUMNS + (("label",) if need_label else ())
        absent = [c for c in needed if c not in header]
        if absent:
            raise KineticsError(
                f"{csv_path}: header {header} lacks column(s) {absent}; expected the official "
                "Kinetics format `label,youtube_id,time_start,time_end,split[,is_cc]` with a header row.")
        rows = []
        for row in reader:
            lineno = reader.line_num
            try:
                start, end = int(float(row["time_start"])), int(float(row["time_end"]))
            except (TypeError, ValueError):
                raise KineticsError(f"{csv_path}:{lineno}: time_start/time_end are not numbers: "
                                    f"{row['time_start']!r}, {row['time_end']!r}") from None
            raw_label = row.get("label") or ""
            label = normalize_label(raw_label) or None
            if need_label and label is None:
                raise KineticsError(f"{csv_path}:{lineno}: empty label")
            rows.append({"label": label, "youtube_id": row["youtube_id"].strip(),
                         "time_start": start, "time_end": end,
                         "split": (row.get("split") or "").strip(), "line": lineno, "raw_label": raw_label})
    return rows


def output_names(split_names) -> list[str]:
    """The files prepare-kinetics writes for these splits."""
    return [CLASSES_FILENAME, *(f"{name}.txt" for name in split_names), MISSING_FILENAME]


def train_classes(rows: list[dict]) -> dict[str, str]:
    """{casefolded name: class name} of the train split.

    Labels are already normalised (`normalize_label`); names that differ only by case are one class,
    spelled as most train rows spell it (the first seen on a tie).
    """
    spellings: dict[str, Counter] = {}
    for r in rows:
        spellings.setdefault(r["label"].casefold(), Counter())[r["label"]] += 1
    return {key: counts.most_common(1)[0][0] for key, counts in spellings.items()}


def _unknown_classes_error(unknown: list[tuple[Path, int, str]], train_csv: Path) -> KineticsError:
    names = sorted({label for _, _, label in unknown})
    shown = "\n".join(f"  {path}:{line}: {label!r}" for path, line, label in unknown[:MAX_SHOWN])
    more = f"\n  ... and {len(unknown) - MAX_SHOWN} more" if len(unknown) > MAX_SHOWN else ""
    return KineticsError(
        f"{len(unknown)} val/test row(s) have a class that {train_csv} does not have (names compared "
        f"ignoring case and spacing): {', '.join(map(repr, names[:10]))}"
        f"{' ...' if len(names) > 10 else ''}\n{shown}{more}\n"
        "Fix: correct the label in that CSV (a typo?) or remove the row, and check that --train-csv "
        "is the matching train CSV. A class train does not have would be added to classes.txt and "
        "shift every class index after it. Nothing was written.")


def prepare_kinetics(data_root, *, train_csv, val_csv=None, test_csv=None, out_dir=None,
                     overwrite: bool = False) -> tuple[list[str], list[SplitReport]]:
    """Write classes.txt, train/val(/test) lists and missing.csv; see the module docstring.

    Returns the class names and one SplitReport per split. Raises KineticsError (nothing written)
    for unusable inputs, for existing outputs without `overwrite`, and NoClipsError (nothing
    written) when a split has annotated clips but none of them was found.
    """
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise KineticsError(f"--data-root {data_root} is not a folder; point it at the downloaded clips.")
    out_dir = Path(out_dir) if out_dir is not None else data_root
    splits = [("train", Path(train_csv), True)]
    if val_csv is not None:
        splits.append(("val", Path(val_csv), True))
    if test_csv is not None:
        splits.append(("test", Path(test_csv), False))
    names = output_names(name for name, _, _ in splits)
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not overwrite:
        raise KineticsError(
            f"{out_dir} already holds {', '.join(existing)} (from an earlier run?); nothing was written. "
            "Pass --overwrite to replace them (they are replaced only once all the new files are "
            "written), or choose another --out.")
    annotations = {name: read_annotations(path, need_label=need) for name, path, need in splits}
    csv_of = {name: path for name, path, _ in splits}

    # Classes: the train split's names, sorted (the index order every Kinetics codebase uses).
    # Val/test labels must be train classes: a new one would shift every index after it.
    canonical = train_classes(annotations["train"])
    unknown = [(csv_of[name], r["line"], r["label"]) for name in csv_of if name != "train"
               for r in annotations[name]
               if r["label"] is not None and r["label"].casefold() not in canonical]
    if unknown:
        raise _unknown_classes_error(unknown, csv_of["train"])
    classes = sorted(canonical.values())
    class_index = {c: i for i, c in enumerate(classes)}
    by_clip, by_id = index_videos(data_root)

    reports, lists = [], {}
    for name, _, _ in splits:
        report = SplitReport(split=name)
        rows, seen = [], set()
        for r in annotations[name]:
            key = (r["youtube_id"], r["time_start"], r["time_end"])
            if key in seen:  # the official CSVs have no duplicates, merged ones might
                continue
            seen.add(key)
            report.annotated += 1
            label = r["label"]
            if label is not None:
                label = canonical[label.casefold()]
                report.respelled += label != r["raw_label"]
            rel = by_clip.get(key) or by_id.get(r["youtube_id"])
            if rel is None:
                report.missing_rows.append({**r, "label": label, "split": r["split"] or name})
                continue
            report.found += 1
            rows.append((rel, class_index[label] if label is not None else None))
            report.unlabeled += label is None
        lists[name] = rows
        reports.append(report)
    empty = [r for r in reports if r.annotated and not r.found]
    if empty:
        raise NoClipsError(
            "; ".join(f"{r.split} has no clips at all (none of its {r.annotated} annotated clips found)"
                      for r in empty)
            + f" under {data_root}. Is --data-root the folder of downloaded clips, named "
            "{youtube_id}_{start:06d}_{end:06d}.mp4 or {youtube_id}.mp4? Nothing was written.")

    def write_missing(path: Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for rep in reports:
                for r in rep.missing_rows:
                    w.writerow([r["label"] or "", r["youtube_id"], r["time_start"], r["time_end"], r["split"]])

    writers = {CLASSES_FILENAME: lambda path: path.write_text("".join(c + "\n" for c in classes),
                                                              encoding="utf-8"),
               MISSING_FILENAME: write_missing}
    for name, rows in lists.items():
        if any(lab is None for _, lab in rows):
            writers[f"{name}.txt"] = lambda path, rows=rows: _write_mixed(path, rows)
        else:
            writers[f"{name}.txt"] = lambda path, rows=rows: write_list(path, rows)
    _write_all(out_dir, [(n, writers[n]) for n in names])
    return classes, reports


def _write_all(out_dir: Path, outputs) -> None:
    """Write every (file name, writer(path)) to a temporary file in `out_dir`, then rename them all
    into place; if any writer fails, the temporary files are removed and nothing is replaced."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
    temps: list[tuple[Path, Path]] = []
    try:
        for name, write in outputs:
            tmp = out_dir / f".{name}.{tag}.tmp"
            temps.append((tmp, out_dir / name))
            write(tmp)
        for tmp, final in temps:
            os.replace(tmp, final)
    finally:
        for tmp, _ in temps:
            if tmp.exists():
                tmp.unlink()


def _write_mixed(path: Path, rows) -> None:
    # Unlabeled clips (test split): the path alone, read back with parse_list(allow_unlabeled=True).
    with open(path, "w", encoding="utf-8") as f:
        for rel, label in rows:
            f.write(f"{rel}\n" if label is None else f"{rel} {label}\n")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare-kinetics", help="Kinetics annotation CSVs + downloaded clips -> list files",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", required=True, help="folder of downloaded clips (flat or per class)")
    p.add_argument("--train-csv", required=True, help="official train.csv")
    p.add_argument("--val-csv", help="official validate.csv")
    p.add_argument("--test-csv", help="official test.csv (a label column is optional)")
    p.add_argument("--out", help="where to write the lists (default: the data root)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing classes.txt/train.txt/val.txt/test.txt/missing.csv in --out "
                        "(only once all the new files are written)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        classes, reports = prepare_kinetics(args.data_root, train_csv=args.train_csv,
                                            val_csv=args.val_csv, test_csv=args.test_csv,
                                            out_dir=args.out, overwrite=args.overwrite)
    except NoClipsError as e:
        print(f"vidgn prepare-kinetics: error: {e}", file=sys.stderr)
        return 1
    except KineticsError as e:
        print(f"vidgn prepare-kinetics: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out or args.data_root)
    print(f"{len(classes)} classes -> {out / CLASSES_FILENAME}")
    total_missing = 0
    for r in reports:
        pct = 100.0 * r.missing / r.annotated if r.annotated else 0.0
        print(f"{r.split:5s}: {r.found} of {r.annotated} annotated clips found, {r.missing} missing "
              f"({pct:.1f}%) -> {out / (r.split + '.txt')}")
        total_missing += r.missing
        if r.respelled:
            print(f"       {r.respelled} rows spell their class differently from train (case/spacing "
                  "only): read as train's class")
        if r.unlabeled:
            print(f"       {r.unlabeled} of them have no label: use {out / (r.split + '.txt')} as "
                  "data.predict_list (`vidgn predict`), not as a test list")
    print(f"missing clips listed in {out / MISSING_FILENAME} ({total_missing})")
    written = {r.split for r in reports}
    stale = [f"{s}.txt" for s in ("train", "val", "test") if s not in written and (out / f"{s}.txt").exists()]
    if stale:
        print(f"note: {', '.join(stale)} in {out} (from an earlier run) left as is; their labels "
              f"index the classes.txt of that run, not necessarily this one")
    print(f"next: vidgn check-videos {out / 'train.txt'} --data-root {args.data_root} --workers 8 "
          f"--write-clean {out / 'train.clean.txt'}  (and the same for val)")
    return 0
