"""`vidgn prepare-kinetics`: official Kinetics-400/600/700 annotation CSVs + downloaded clips -> list files.

Inputs
* annotation CSVs with a header row: `label,youtube_id,time_start,time_end,split[,is_cc]`
  (train.csv, validate.csv; test.csv may have no `label` column);
* `--data-root`: the folder of downloaded clips, flat or in per-class (or per-split) folders, named
  `{youtube_id}_{time_start:06d}_{time_end:06d}.{mp4,webm,mkv}` (the trimmed-clip name used by the
  common downloaders) or plainly `{youtube_id}.{ext}`.

The CVDF download (github.com/cvdfoundation/kinetics-dataset: `k400/{train,val,test}/*.mp4`,
`k400/annotations/{train,val,test}.csv`, `k400/replacement/replacement_for_corrupted_k400/*.mp4`;
`k700-2020/...` alike) is one option: `--cvdf-root k400` (the replacement clips are used in place of
the corrupted originals).

Outputs (in `--out`, default the data root): `classes.txt` (the standard Kinetics-400/600/700 class
list shipped in `kinetics_classes/`, or with `--dataset csv` the train split's class names, sorted:
the standard Kinetics index order), `train.txt`, `val.txt` and, if a test CSV is given, `test.txt`
(lines `path label`, paths relative to the data root, labels class indices; unlabeled test clips get
only a path), `missing.csv`: the annotated clips that were not found, in the official CSV format
so that it can be handed back to a downloader, and `missing_classes.txt`: the classes without any
train clip, tab-separated `index, class, why` lines under a header (`why`: `no train row`, or `no
train clip found`; only the header when every class has clips). A few percent of Kinetics clips are
typically missing (videos removed from YouTube); that is reported, not an error.

Class names are normalised the same way in every split: surrounding whitespace stripped, inner
whitespace collapsed to one space, and matched across splits ignoring case, so `Abseiling ` in
validate.csv is train's `abseiling` (the name written is train's spelling, case kept). A val/test
class that train does not have is an error naming the CSV line: it would add a class and shift every
class index after it.

With a standard class list (`--dataset k400|k600|k700`, or `auto`: the smallest shipped list that
holds every train class, when the train CSV has at least 90% of its classes), `classes.txt` is that
list, spelled as shipped: a train CSV or a download that lacks some classes keeps the standard
indices, and the classes without train rows or without any train clip found are listed. A class
that is not in the list (in any CSV) is an error naming the line.

Nothing is written unless everything succeeded: the outputs are written to temporary files in the
output folder and renamed into place at the end. Existing outputs are replaced only with
`--overwrite`.

Files that exist but do not decode are found by `vidgn check-videos`, run next (see data/README.md).
What is read (CSVs, clips, the CVDF layout) is `vidgn.tools.kinetics_inputs`; the class lists and the
`--dataset` choice are `vidgn.tools.kinetics_labels`.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vidgn.data.lists import CLASSES_FILENAME, write_list
from vidgn.tools.kinetics_inputs import (CVDF_REPLACEMENT_DIR, KineticsError, cvdf_inputs, index_videos,
                                         read_annotations)
from vidgn.tools.kinetics_labels import (CLASS_LISTS_DIR, DATASET_NAMES, STANDARD_LISTS, ClassesReport,
                                         choose_dataset, standard_classes, train_classes)

MAX_SHOWN = 5  # offending CSV lines quoted in an error; the total is always given
# Classes named in a warning: a partial download can lack hundreds, which would be one unreadable
# line; the count is always given and every one is in MISSING_CLASSES_FILENAME.
MAX_CLASSES_SHOWN = 10
MISSING_FILENAME = "missing.csv"
MISSING_CLASSES_FILENAME = "missing_classes.txt"
NO_ROWS, NO_CLIPS = "no train row", "no train clip found"  # the `why` of missing_classes.txt


class NoClipsError(KineticsError):
    """A split has annotated clips but none was found under the data root (wrong --data-root?)."""


@dataclass
class SplitReport:
    split: str
    annotated: int = 0
    found: int = 0
    unlabeled: int = 0  # found clips without a label: the list is for prediction only
    respelled: int = 0  # rows whose label differs from train's class name only by case/spacing
    replaced: int = 0  # clips taken from the CVDF replacement folder instead of the split's copy
    missing_rows: list[dict] = field(default_factory=list)
    found_per_class: Counter = field(default_factory=Counter)  # class index -> clips found
    rows_per_class: Counter = field(default_factory=Counter)  # class index -> annotated clips

    @property
    def missing(self) -> int:
        return len(self.missing_rows)


def output_names(split_names) -> list[str]:
    """The files prepare-kinetics writes for these splits."""
    return [CLASSES_FILENAME, *(f"{name}.txt" for name in split_names), MISSING_FILENAME,
            MISSING_CLASSES_FILENAME]


def _bad_rows(rows: list[tuple[Path, int, str]]) -> tuple[str, str]:
    """(the first names, the first `file:line: label` rows) of CSV rows with a bad label, for errors."""
    names = sorted({label for _, _, label in rows})
    shown = "\n".join(f"  {path}:{line}: {label!r}" for path, line, label in rows[:MAX_SHOWN])
    more = f"\n  ... and {len(rows) - MAX_SHOWN} more" if len(rows) > MAX_SHOWN else ""
    return f"{', '.join(map(repr, names[:10]))}{' ...' if len(names) > 10 else ''}", shown + more


def _not_standard_error(rows: list[tuple[Path, int, str]], dataset: str) -> KineticsError:
    names, shown = _bad_rows(rows)
    return KineticsError(
        f"{len(rows)} row(s) have a class that is not in the {DATASET_NAMES[dataset]} class list "
        f"({CLASS_LISTS_DIR / STANDARD_LISTS[dataset]}; compared ignoring case and spacing): "
        f"{names}\n{shown}\n"
        f"Fix: pass the --dataset these CSVs are from (k400, k600, k700), or --dataset csv to take "
        "the classes from the train CSV (a custom class set). Nothing was written.")


def _unknown_classes_error(unknown: list[tuple[Path, int, str]], train_csv: Path) -> KineticsError:
    names, shown = _bad_rows(unknown)
    return KineticsError(
        f"{len(unknown)} val/test row(s) have a class that {train_csv} does not have (names compared "
        f"ignoring case and spacing): {names}\n{shown}\n"
        "Fix: correct the label in that CSV (a typo?) or remove the row, and check that --train-csv "
        "is the matching train CSV. A class train does not have would be added to classes.txt and "
        "shift every class index after it. Nothing was written.")


def prepare_kinetics(data_root, *, train_csv, val_csv=None, test_csv=None, out_dir=None,
                     overwrite: bool = False, dataset: str = "auto",
                     classes_report: ClassesReport | None = None) -> tuple[list[str], list[SplitReport]]:
    """Write classes.txt, train/val(/test) lists, missing.csv and missing_classes.txt; see the
    module docstring.

    Returns the class names and one SplitReport per split; `classes_report`, when given, is filled
    in (which class list, the classes without train rows or clips). Raises KineticsError (nothing
    written) for unusable inputs, for existing outputs without `overwrite`, and NoClipsError
    (nothing written) when a split has annotated clips but none of them was found.
    """
    if dataset not in ("auto", "csv", *STANDARD_LISTS):
        raise KineticsError(f"--dataset {dataset!r}: expected auto, csv, {', '.join(STANDARD_LISTS)}.")
    classes_report = classes_report if classes_report is not None else ClassesReport("csv")
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

    # Classes: a standard list (its order), or the train split's names, sorted (the index order
    # every Kinetics codebase uses). Val/test labels must be classes of that list: a new one would
    # shift every index after it.
    from_train = train_classes(annotations["train"])
    source, note = choose_dataset(set(from_train), dataset)
    classes_report.source, classes_report.note = source, note
    if source == "csv":
        canonical = from_train
        classes = sorted(canonical.values())
    else:
        classes = standard_classes(source)
        canonical = {c.casefold(): c for c in classes}
        outside = [(csv_of[name], r["line"], r["label"]) for name in csv_of for r in annotations[name]
                   if r["label"] is not None and r["label"].casefold() not in canonical]
        if outside:
            raise _not_standard_error(outside, source)
        classes_report.without_rows = [c for c in classes if c.casefold() not in from_train]
    unknown = [(csv_of[name], r["line"], r["label"]) for name in csv_of if name != "train"
               for r in annotations[name]
               if r["label"] is not None and r["label"].casefold() not in canonical]
    if unknown:
        raise _unknown_classes_error(unknown, csv_of["train"])
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
                report.rows_per_class[class_index[label]] += 1
            rel = by_clip.get(key) or by_id.get(r["youtube_id"])
            if rel is None:
                report.missing_rows.append({**r, "label": label, "split": r["split"] or name})
                continue
            report.found += 1
            report.replaced += rel.startswith(CVDF_REPLACEMENT_DIR + "/")
            rows.append((rel, class_index[label] if label is not None else None))
            report.unlabeled += label is None
            if label is not None:
                report.found_per_class[class_index[label]] += 1
        lists[name] = rows
        reports.append(report)
    train_found = reports[0].found_per_class
    classes_report.without_clips = [c for i, c in enumerate(classes)
                                    if not train_found[i] and c not in classes_report.without_rows]
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

    def write_missing_classes(path: Path) -> None:
        # Written (header only) even when no class is missing, so that an earlier run's list, once
        # replaced with --overwrite, never outlives the download it described.
        why = {**{c: NO_ROWS for c in classes_report.without_rows},
               **{c: NO_CLIPS for c in classes_report.without_clips}}
        path.write_text("index\tclass\twhy\n" + "".join(
            f"{i}\t{c}\t{why[c]}\n" for i, c in enumerate(classes) if c in why), encoding="utf-8")

    writers = {CLASSES_FILENAME: lambda path: path.write_text("".join(c + "\n" for c in classes),
                                                              encoding="utf-8"),
               MISSING_FILENAME: write_missing, MISSING_CLASSES_FILENAME: write_missing_classes}
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
    p.add_argument("--cvdf-root", metavar="DIR",
                   help="a CVDF download (cvdfoundation/kinetics-dataset), e.g. k400 or k700-2020: "
                        "clips in DIR/{train,val,test}, CSVs in DIR/annotations; the options below "
                        "override what it implies")
    p.add_argument("--data-root", help="folder of downloaded clips (flat or per class); required "
                                       "without --cvdf-root")
    p.add_argument("--train-csv", help="official train.csv; required without --cvdf-root")
    p.add_argument("--val-csv", help="official validate.csv")
    p.add_argument("--test-csv", help="official test.csv (a label column is optional)")
    p.add_argument("--dataset", choices=["auto", "k400", "k600", "k700", "csv"], default="auto",
                   help="class list: the standard Kinetics-400/600/700 one (indices fixed even when "
                        "classes are missing), csv: the train CSV's classes, sorted; auto: the "
                        "standard list holding every train class when the CSV has >= 90%% of it, "
                        "else csv (default: auto)")
    p.add_argument("--out", help="where to write the lists (default: the data root)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing classes.txt/train.txt/val.txt/test.txt/missing.csv/"
                        "missing_classes.txt in --out (only once all the new files are written)")
    p.set_defaults(func=run)


def _first_names(names: list[str]) -> str:
    """The first MAX_CLASSES_SHOWN names, quoted, and how many more there are."""
    more = len(names) - MAX_CLASSES_SHOWN
    return ", ".join(map(repr, names[:MAX_CLASSES_SHOWN])) + (f" ... and {more} more" if more > 0 else "")


def _have(names: list[str]) -> str:
    return "has" if len(names) == 1 else "have"


def run(args: argparse.Namespace) -> int:
    if args.cvdf_root is None and (args.data_root is None or args.train_csv is None):
        print("vidgn prepare-kinetics: error: give --cvdf-root DIR (a CVDF download such as k400), or "
              "--data-root and --train-csv", file=sys.stderr)
        return 2
    info = ClassesReport("csv")
    try:
        given = {key: getattr(args, key) for key in ("data_root", "train_csv", "val_csv", "test_csv")}
        inputs = cvdf_inputs(args.cvdf_root, **given) if args.cvdf_root is not None else given
        args.data_root = inputs["data_root"]
        classes, reports = prepare_kinetics(inputs.pop("data_root"), **inputs, out_dir=args.out,
                                            overwrite=args.overwrite, dataset=args.dataset,
                                            classes_report=info)
    except NoClipsError as e:
        print(f"vidgn prepare-kinetics: error: {e}", file=sys.stderr)
        return 1
    except KineticsError as e:
        print(f"vidgn prepare-kinetics: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out or args.data_root)
    if info.source == "csv":
        print(f"{len(classes)} classes (the train CSV's) -> {out / CLASSES_FILENAME}")
    else:
        print(f"{len(classes)} classes (the standard {DATASET_NAMES[info.source]} list) -> "
              f"{out / CLASSES_FILENAME}")
    if info.note:
        print(f"note: {info.note}")
    all_listed = f"all listed in {out / MISSING_CLASSES_FILENAME}"
    if info.without_rows:
        print(f"warning: {len(info.without_rows)} of the {len(classes)} classes {_have(info.without_rows)} "
              "no row in the train CSV (their indices are kept, they have nothing to train on): "
              f"{_first_names(info.without_rows)}; {all_listed}")
    if info.without_clips:
        print(f"warning: {len(info.without_clips)} of the {len(classes)} classes {_have(info.without_clips)} "
              f"no train clip under the data root (their indices are kept; their clips are in {MISSING_FILENAME}): "
              f"{_first_names(info.without_clips)}; {all_listed}")
    total_missing = 0
    for r in reports:
        pct = 100.0 * r.missing / r.annotated if r.annotated else 0.0
        print(f"{r.split:5s}: {r.found} of {r.annotated} annotated clips found, {r.missing} missing "
              f"({pct:.1f}%) -> {out / (r.split + '.txt')}")
        total_missing += r.missing
        if r.replaced:
            print(f"       {r.replaced} of them from {CVDF_REPLACEMENT_DIR}/ (CVDF's replacements for "
                  "corrupted clips)")
        if r.respelled:
            print(f"       {r.respelled} rows spell their class differently from {CLASSES_FILENAME} "
                  "(case/spacing only): read as that class")
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
