"""`vidgn prepare-kinetics`: official Kinetics-400/600/700 annotation CSVs + downloaded clips -> list files.

Inputs
* annotation CSVs with a header row: `label,youtube_id,time_start,time_end,split[,is_cc]`
  (train.csv, validate.csv; test.csv may have no `label` column);
* `--data-root`: the folder of downloaded clips, flat or in per-class (or per-split) folders, named
  `{youtube_id}_{time_start:06d}_{time_end:06d}.{mp4,webm,mkv}` (the trimmed-clip name used by the
  common downloaders) or plainly `{youtube_id}.{ext}`. A plain `{youtube_id}.{ext}` is used only for
  an id with one clip (one time segment) in all the CSVs given: it cannot tell which of several
  clips it is, so such clips are not listed but reported as ambiguous (and put in `missing.csv`:
  fetched again under trimmed names, they are matched exactly).

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

A clip is `(youtube_id, time_start, time_end)`. Rows repeating a clip with the same label are listed
once (counted); a clip whose rows in one CSV disagree on its label is not listed (which is right
cannot be told), with a warning quoting the lines. A clip in two splits' CSVs (train and val: a
leak) is warned about, quoting the lines, and kept in both lists, as the CSVs say.

Class names are normalised the same way in every split: surrounding whitespace stripped, inner
whitespace collapsed to one space, and matched across splits and with the standard lists ignoring
case and reading `_` as a space, so `Abseiling ` in validate.csv is train's `abseiling` and
`air_drumming` is Kinetics' `air drumming` (the name written is the standard list's, or else
train's spelling). A val/test
class that train does not have is an error naming the CSV line: it would add a class and shift every
class index after it.

With a standard class list (`--dataset k400|k600|k700`, or `auto`: the smallest shipped list that
holds every train class, when the train CSV has at least 90% of its classes), `classes.txt` is that
list, spelled as shipped: a train CSV or a download that lacks some classes keeps the standard
indices, and the classes without train rows or without any train clip found are listed. A class
that is not in the list (in any CSV) is an error naming the line. When `auto` takes the train
CSV's own classes it says why.

Nothing is written unless everything succeeded: the outputs are written to temporary files in the
output folder and renamed into place at the end. Existing outputs are replaced only with
`--overwrite`. A rewritten list's `<split>.clean.txt` in the output folder (`vidgn check-videos
--write-clean` of the earlier list, which the Kinetics configs train on) would keep the earlier
lines and labels: it is moved into a new `replaced-<UTC time>/` folder there, and the output says to
run check-videos again; `<split>.check.tsv` (its results, per video file) is kept and reused.

Files that exist but do not decode are found by `vidgn check-videos`, run next (see data/README.md).
What is read (CSVs, clips, the CVDF layout) is `vidgn.tools.kinetics_inputs`; matching clips to files,
split by split, `vidgn.tools.kinetics_clips`; the class lists and the
`--dataset` choice are `vidgn.tools.kinetics_labels`.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import os
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

from vidgn.data.lists import CLASSES_FILENAME, write_list
from vidgn.tools.kinetics_clips import SplitReport, ambiguous_ids, clips_of, leaks, list_split, where
from vidgn.tools.kinetics_inputs import (CVDF_REPLACEMENT_DIR, KineticsError, cvdf_inputs, index_videos,
                                         read_annotations)
from vidgn.tools.kinetics_labels import (CLASS_LISTS_DIR, DATASET_NAMES, STANDARD_LISTS, ClassesReport,
                                         choose_dataset, label_key, standard_classes, standard_list_holding,
                                         train_classes)
from vidgn.tools.progress import plural

MAX_SHOWN = 5  # offending CSV lines quoted in an error; the total is always given
# Classes named in a warning: a partial download can lack hundreds, which would be one unreadable
# line; the count is always given and every one is in MISSING_CLASSES_FILENAME.
MAX_CLASSES_SHOWN = 10
MISSING_FILENAME = "missing.csv"
MISSING_CLASSES_FILENAME = "missing_classes.txt"
NO_ROWS, NO_CLIPS = "no train row", "no train clip found"  # the `why` of missing_classes.txt
# What `vidgn check-videos` writes beside a list (README step 3): `--write-clean` (the Kinetics
# configs train on it) and its default results file.
CLEAN_SUFFIX, CHECK_SUFFIX = ".clean.txt", ".check.tsv"
REPLACED_PREFIX = "replaced-"  # + UTC time: where a rewritten list's stale clean list is moved

class NoClipsError(KineticsError):
    """A split has annotated clips but none was found under the data root (wrong --data-root?)."""


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
        f"({CLASS_LISTS_DIR / STANDARD_LISTS[dataset]}; compared ignoring case, spacing and "
        f"underscores): {names}\n{shown}\n"
        f"Fix: pass the --dataset these CSVs are from (k400, k600, k700), or --dataset csv to take "
        "the classes from the train CSV (a custom class set). Nothing was written.")


def _unknown_classes_error(unknown: list[tuple[Path, int, str]], train_csv: Path,
                           standard_hint: str) -> KineticsError:
    names, shown = _bad_rows(unknown)
    fix = "correct the label in that CSV (a typo?) or remove the row"
    return KineticsError(
        f"{len(unknown)} val/test row(s) have a class that {train_csv} does not have (names compared "
        f"ignoring case, spacing and underscores): {names}\n{shown}\n"
        + (f"Fix: {standard_hint} Otherwise {fix}" if standard_hint else f"Fix: {fix}")
        + ", and check that --train-csv is the matching train CSV. A class train does not have "
        "would be added to classes.txt and shift every class index after it. Nothing was written.")


def _standard_hint(annotations: dict[str, list[dict]], from_train: dict[str, str]) -> str:
    """For a val/test class that train lacks, with the train CSV's own classes: the --dataset
    whose standard list holds every CSV class (then nothing is unknown), or "" if none does."""
    keys = {label_key(r["label"]) for rows in annotations.values() for r in rows if r["label"] is not None}
    name = standard_list_holding(keys)
    if name is None:
        return ""
    size = len(standard_classes(name))
    return (f"every class in these CSVs is a {DATASET_NAMES[name]} class and the train CSV has "
            f"{len(from_train)} of its {size}: if the train CSV only lacks some classes, pass "
            f"--dataset {name} (classes.txt is then the standard list, with its indices, and these "
            "rows are read as their standard class).")


def _rows_outside(annotations, csv_of, canonical: dict[str, str], splits) -> list[tuple[Path, int, str]]:
    """(CSV, line, label) of the labelled rows of `splits` whose class is not in `canonical`."""
    return [(csv_of[name], r["line"], r["label"]) for name in splits for r in annotations[name]
            if r["label"] is not None and label_key(r["label"]) not in canonical]


def _class_list(annotations, csv_of, dataset: str, classes_report: ClassesReport):
    """(classes in index order, {label_key: class name}): a standard list (its order), or the train
    split's names, sorted (the index order every Kinetics codebase uses). Val/test labels must be
    classes of that list: a new one would shift every index after it (KineticsError)."""
    from_train = train_classes(annotations["train"])
    source, note = choose_dataset(from_train, dataset)
    classes_report.source, classes_report.note = source, note
    if source == "csv":
        canonical = from_train
        classes = sorted(canonical.values())
    else:
        classes = standard_classes(source)
        canonical = {label_key(c): c for c in classes}
        outside = _rows_outside(annotations, csv_of, canonical, csv_of)
        if outside:
            raise _not_standard_error(outside, source)
        classes_report.without_rows = [c for c in classes if label_key(c) not in from_train]
    unknown = _rows_outside(annotations, csv_of, canonical, [n for n in csv_of if n != "train"])
    if unknown:
        hint = _standard_hint(annotations, from_train) if source == "csv" else ""
        raise _unknown_classes_error(unknown, csv_of["train"], hint)
    return classes, canonical


def _no_clips_error(empty: list[SplitReport], data_root: Path) -> NoClipsError:
    def why(r: SplitReport) -> str:
        amb = (f"; {r.ambiguous} of them only as {{youtube_id}}.ext files whose id has several clips "
               "in the CSVs, which cannot tell which clip they are: name them "
               "{youtube_id}_{start:06d}_{end:06d}.ext" if r.ambiguous else "")
        return f"{r.split} has no clips at all (none of its {r.annotated} annotated clips found{amb})"
    return NoClipsError(
        "; ".join(map(why, empty))
        + f" under {data_root}. Is --data-root the folder of downloaded clips, named "
        "{youtube_id}_{start:06d}_{end:06d}.mp4 or {youtube_id}.mp4? Nothing was written.")


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
    classes, canonical = _class_list(annotations, csv_of, dataset, classes_report)
    class_index = {c: i for i, c in enumerate(classes)}
    videos = index_videos(data_root)
    clips = {name: clips_of(annotations[name]) for name in csv_of}
    ambiguous = ambiguous_ids(clips)

    reports, lists, done = [], {}, []
    for name in csv_of:
        report = SplitReport(split=name, csv_path=csv_of[name])
        lists[name] = list_split(report, clips[name], canonical, class_index, videos, ambiguous)
        report.leaks = leaks(report, clips[name], done)
        done.append((report, clips[name]))
        reports.append(report)
    train_found = reports[0].found_per_class
    classes_report.without_clips = [c for i, c in enumerate(classes)
                                    if not train_found[i] and c not in classes_report.without_rows]
    empty = [r for r in reports if r.annotated and not r.found]
    if empty:
        raise _no_clips_error(empty, data_root)

    def write_missing(path: Path) -> None:
        # Ambiguous clips too: fetched again under their trimmed names, they are matched exactly.
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for rep in reports:
                for r in rep.missing_rows + rep.ambiguous_rows:
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
    _set_aside_clean_lists(out_dir, reports)
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


def _set_aside_clean_lists(out_dir: Path, reports: list[SplitReport]) -> None:
    """Move each rewritten list's `<split>.clean.txt` (check-videos --write-clean of the earlier
    list: its lines and labels, which the Kinetics configs would train on) into one new
    `replaced-<UTC time>/` folder in `out_dir`; nothing is deleted. `<split>.check.tsv` stays:
    check-videos results are per video file and hold while the file is unchanged."""
    stale = [(r, out_dir / f"{r.split}{CLEAN_SUFFIX}") for r in reports]
    stale = [(r, path) for r, path in stale if path.is_file()]
    for r in reports:
        check = out_dir / f"{r.split}{CHECK_SUFFIX}"
        r.kept_check = check if check.is_file() else None
    if not stale:
        return
    folder = _new_replaced_dir(out_dir)
    for r, path in stale:
        try:
            os.replace(path, folder / path.name)
        except OSError as e:
            raise KineticsError(
                f"the new lists are written, but {path} (check-videos --write-clean of the earlier "
                f"{r.split}.txt) could not be moved to {folder} ({e.strerror or e}): it no longer "
                f"matches {r.split}.txt. Fix: move or delete it, then run check-videos "
                "--write-clean again.") from e
        r.moved_clean = folder / path.name


def _new_replaced_dir(out_dir: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in itertools.count(1):  # two runs within a second get their own folders
        folder = out_dir / f"{REPLACED_PREFIX}{stamp}{'' if n == 1 else f'-{n}'}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


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
                        "missing_classes.txt in --out (only once all the new files are written); "
                        "the earlier lists' <split>.clean.txt are moved into --out/replaced-<UTC time>/")
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
    _print_classes(info, classes, out)
    for r in reports:
        _print_split(r, out)
    _print_csv_warnings(reports)
    missing = sum(r.missing for r in reports)
    ambiguous = sum(r.ambiguous for r in reports)
    print(f"missing clips listed in {out / MISSING_FILENAME} ({missing}"
          + (f", and the {ambiguous} ambiguous ones)" if ambiguous else ")"))
    written = {r.split for r in reports}
    stale = [f"{s}.txt" for s in ("train", "val", "test") if s not in written and (out / f"{s}.txt").exists()]
    if stale:
        print(f"note: {', '.join(stale)} in {out} (from an earlier run) left as is; their labels "
              f"index the classes.txt of that run, not necessarily this one")
    _print_check_files(reports)
    print(f"next: vidgn check-videos {out / 'train.txt'} --data-root {args.data_root} --workers 8 "
          f"--write-clean {out / ('train' + CLEAN_SUFFIX)}  (and the same for val)")
    return 0


def _print_classes(info: ClassesReport, classes: list[str], out: Path) -> None:
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


def _print_split(r: SplitReport, out: Path) -> None:
    pct = 100.0 * r.missing / r.annotated if r.annotated else 0.0
    extra = (f", {r.ambiguous} ambiguous" if r.ambiguous else "") + \
            (f", {len(r.conflicts)} with conflicting labels" if r.conflicts else "")
    print(f"{r.split:5s}: {r.found} of {r.annotated} annotated clips found, {r.missing} missing "
          f"({pct:.1f}%){extra} -> {out / (r.split + '.txt')}")
    if r.replaced:
        print(f"       {r.replaced} of them from {CVDF_REPLACEMENT_DIR}/ (CVDF's replacements for "
              "corrupted clips)")
    if r.respelled:
        print(f"       {plural(r.respelled, 'row')} spell{'s' if r.respelled == 1 else ''} their class "
              f"differently from {CLASSES_FILENAME} "
              "(case, spacing or underscores only): read as that class")
    if r.unlabeled:
        print(f"       {r.unlabeled} of them have no label: use {out / (r.split + '.txt')} as "
              "data.predict_list (`vidgn predict`), not as a test list")
    if r.duplicates:
        print(f"       {plural(r.duplicates, 'row')} of {r.csv_path} "
              f"{'repeats' if r.duplicates == 1 else 'repeat'} a clip with the same label: listed once")
    if r.ambiguous:
        print(f"       {_ambiguous_text(r)}")


def _ambiguous_text(r: SplitReport) -> str:
    files = {row["file"]: row["clips"] for row in r.ambiguous_rows}
    shown = ", ".join(f"{f} ({n} clips)" for f, n in list(files.items())[:MAX_SHOWN])
    more = f" ... and {len(files) - MAX_SHOWN} more" if len(files) > MAX_SHOWN else ""
    return (f"{r.ambiguous} ambiguous, not listed: only a file named by the YouTube id alone was "
            f"found for them ({shown}{more}), and that id has several clips (time segments) in the "
            "CSVs given, so the file cannot tell which clip it is. They are in "
            f"{MISSING_FILENAME}. Fix: get these clips trimmed and named "
            "{youtube_id}_{time_start:06d}_{time_end:06d}.mp4 (e.g. hand "
            f"{MISSING_FILENAME} to the downloader): such names are matched exactly.")


def _print_csv_warnings(reports: list[SplitReport]) -> None:
    """Clips the CSVs annotate twice: with different labels (not listed), or in two splits."""
    for r in reports:
        if r.conflicts:
            shown = "\n".join("  " + " vs ".join(f"{where(r.csv_path, row)} {row['raw_label']!r}"
                                                  for row in rows) for rows in r.conflicts[:MAX_SHOWN])
            more = f"\n  ... and {len(r.conflicts) - MAX_SHOWN} more" if len(r.conflicts) > MAX_SHOWN else ""
            print(f"warning: {r.split}: {plural(len(r.conflicts), 'clip')} of {r.csv_path} "
                  f"{'has' if len(r.conflicts) == 1 else 'have'} rows with different labels; which is "
                  f"right cannot be told, so {'it is' if len(r.conflicts) == 1 else 'they are'} not "
                  f"listed:\n{shown}{more}\n  Fix: keep one row per clip, with its right label, then "
                  "rerun with --overwrite.")
        for prev in dict.fromkeys(split for split, _, _ in r.leaks):
            pairs = [(a, b) for split, a, b in r.leaks if split == prev]
            shown = "\n".join(f"  {a} = {b}" for a, b in pairs[:MAX_SHOWN])
            more = f"\n  ... and {len(pairs) - MAX_SHOWN} more" if len(pairs) > MAX_SHOWN else ""
            why = ("a model is evaluated on clips it trained on" if prev == "train" else
                   "the same clips are counted in both")
            print(f"warning: {plural(len(pairs), 'clip')} of {r.split} ({r.csv_path}) "
                  f"{'is' if len(pairs) == 1 else 'are'} also in {prev}: a {prev}/{r.split} leak "
                  f"({why}); both lists keep them, as the CSVs say:\n{shown}{more}")


def _print_check_files(reports: list[SplitReport]) -> None:
    """What became of check-videos' files beside the rewritten lists."""
    for r in reports:
        if r.moved_clean is not None:
            print(f"note: the earlier {r.split}{CLEAN_SUFFIX} (check-videos --write-clean of the "
                  f"earlier {r.split}.txt: its lines and labels) was moved to {r.moved_clean}; rerun "
                  f"check-videos --write-clean (below) to make the one for the new {r.split}.txt")
        if r.kept_check is not None:
            print(f"note: {r.kept_check} kept and reused by the next check-videos of {r.split}.txt "
                  "(results are per video file and hold while the file is unchanged): only the "
                  "videos it has no result for are checked")
