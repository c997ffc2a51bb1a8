"""prepare-kinetics on a small fake Kinetics tree: official CSVs, clips flat and in class folders,
trimmed and plain names, mp4/webm, some clips missing."""
from __future__ import annotations

import csv
import shutil

import pytest

from vidgn.cli import main
from vidgn.data.lists import parse_list, read_classes, resolve

CLASSES = ["zumba", "passing American football (in game)", "abseiling"]  # unsorted on purpose


@pytest.fixture
def kinetics(synthetic_dataset, tmp_path):
    """Annotations + a video folder; returns (csv dir, video root, expected {split: {path: label}})."""
    sources = [resolve(e, synthetic_dataset.root) for e in parse_list(synthetic_dataset.train_list,
                                                                       synthetic_dataset.root)]
    mp4s = [p for p in sources if p.suffix == ".mp4"]
    webm = [p for p in sources if p.suffix == ".webm"][0]
    videos = tmp_path / "videos"
    ann = tmp_path / "annotations"
    ann.mkdir()

    def put(src, rel):
        (videos / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, videos / rel)

    # (label, youtube_id, start, end, file written or None if missing)
    train = [
        ("abseiling", "0wR5jVB-WPk", 417, 427, "train/abseiling/0wR5jVB-WPk_000417_000427.mp4"),
        ("abseiling", "Ab_cD-efGh_", 5, 15, "train/abseiling/Ab_cD-efGh__000005_000015.webm"),
        ("passing American football (in game)", "1DmJKu0RzRs", 10, 20,
         "train/passing American football (in game)/1DmJKu0RzRs_000010_000020.mp4"),
        ("passing American football (in game)", "gonegonegon", 0, 10, None),
        ("zumba", "zzzzzzzzzz1", 30, 40, "zzzzzzzzzz1.mp4"),  # flat, plain {id}.mp4
        ("zumba", "zzzzzzzzzz2", 0, 10, None),
    ]
    val = [
        ("zumba", "vvvvvvvvvv1", 12, 22, "vvvvvvvvvv1_000012_000022.mp4"),  # flat, trimmed name
        ("abseiling", "vvvvvvvvvv2", 0, 10, None),
        ("passing American football (in game)", "vvvvvvvvvv3", 3, 13, "val/x/vvvvvvvvvv3_000003_000013.mkv"),
    ]
    test = [("tttttttttt1", 1, 11, "test/tttttttttt1_000001_000011.mp4"), ("tttttttttt2", 0, 10, None)]
    k = 0
    for rows in (train, val):
        for *_, rel in rows:
            if rel:
                put(webm if rel.endswith(".webm") else mp4s[k % len(mp4s)], rel)
                k += 1
    # The same clip in two formats: the mp4 is listed.
    put(webm, "train/zumba/zzzzzzzzzz1.webm")
    for *_, rel in test:
        if rel:
            put(mp4s[0], rel)

    with open(ann / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split", "is_cc"])
        for label, yid, s, e, _ in train:
            w.writerow([label, yid, s, e, "train", 0])
    with open(ann / "validate.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        for label, yid, s, e, _ in val:
            w.writerow([label, yid, s, e, "val"])
    with open(ann / "test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["youtube_id", "time_start", "time_end", "split"])
        for yid, s, e, _ in test:
            w.writerow([yid, s, e, "test"])
    idx = {c: i for i, c in enumerate(sorted(CLASSES))}
    expected = {
        "train": {rel: idx[label] for label, _, _, _, rel in train if rel},
        "val": {rel: idx[label] for label, _, _, _, rel in val if rel},
        "test": {rel: -1 for *_, rel in test if rel},
    }
    missing = {("gonegonegon", "train"), ("zzzzzzzzzz2", "train"), ("vvvvvvvvvv2", "val"),
               ("tttttttttt2", "test")}
    return ann, videos, expected, missing


def _run(argv):
    return main(["prepare-kinetics", *argv])


def test_prepare_kinetics_lists_classes_and_missing(kinetics, tmp_path, capsys):
    ann, videos, expected, missing = kinetics
    out = tmp_path / "lists"
    status = _run(["--data-root", str(videos), "--train-csv", str(ann / "train.csv"),
                   "--val-csv", str(ann / "validate.csv"), "--test-csv", str(ann / "test.csv"),
                   "--out", str(out)])
    assert status == 0
    report = capsys.readouterr().out
    assert read_classes(out / "classes.txt") == sorted(CLASSES)
    for split in ("train", "val", "test"):
        entries = parse_list(out / f"{split}.txt", videos, allow_unlabeled=(split == "test"))
        assert {e.path: e.label for e in entries} == expected[split], split
    assert "train: 4 of 6 annotated clips found, 2 missing (33.3%)" in report
    assert "val  : 2 of 3 annotated clips found, 1 missing (33.3%)" in report
    assert "test : 1 of 2 annotated clips found, 1 missing (50.0%)" in report
    assert "have no label" in report and "data.predict_list" in report  # the unlabeled test clip
    with open(out / "missing.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["youtube_id"], r["split"]) for r in rows} == missing
    assert next(r for r in rows if r["youtube_id"] == "gonegonegon")["label"] == \
        "passing American football (in game)"
    assert "vidgn check-videos" in report  # tells the user the next step


def test_prepare_kinetics_writes_beside_videos_by_default(kinetics):
    ann, videos, expected, _ = kinetics
    assert _run(["--data-root", str(videos), "--train-csv", str(ann / "train.csv")]) == 0
    assert {e.path for e in parse_list(videos / "train.txt", videos)} == set(expected["train"])
    assert not (videos / "val.txt").exists()


def test_prepare_kinetics_bad_inputs(kinetics, tmp_path, capsys):
    ann, videos, _, _ = kinetics
    bad = tmp_path / "bad.csv"
    bad.write_text("youtube_id,start,end\nabc,0,10\n")
    assert _run(["--data-root", str(videos), "--train-csv", str(bad)]) == 2
    assert "lacks column(s)" in capsys.readouterr().err
    assert _run(["--data-root", str(tmp_path / "nowhere"), "--train-csv", str(ann / "train.csv")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(["--data-root", str(empty), "--train-csv", str(ann / "train.csv")]) == 1
    assert "no clips at all" in capsys.readouterr().err


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_label_spelling_variants_are_the_train_class(kinetics, tmp_path, capsys):
    """Case and spacing variants in val (and train) are train's class, not new ones that would
    shift every index after them."""
    ann, videos, expected, _ = kinetics
    header, *train = _rows(ann / "train.csv")
    train[2][0] = " passing  American football (in game)"  # a spacing variant inside train itself
    _write_csv(ann / "train.csv", header, train)
    header, *val = _rows(ann / "validate.csv")
    val[0][0] = "Zumba "  # case + trailing space
    val[1][0] = "  abseiling"  # leading spaces (its clip is missing: still checked against train)
    val[2][0] = "PASSING American\tfootball  (in game)"  # case, tab, double inner space
    _write_csv(ann / "validate.csv", header, val)
    # A labelled test CSV: its labels are matched the same way.
    test_csv = _write_csv(tmp_path / "test_labelled.csv", ["label", "youtube_id", "time_start", "time_end", "split"],
                          [["ZUMBA", "tttttttttt1", 1, 11, "test"]])
    out = tmp_path / "lists"
    status = _run(["--data-root", str(videos), "--train-csv", str(ann / "train.csv"),
                   "--val-csv", str(ann / "validate.csv"), "--test-csv", str(test_csv), "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    # The class names are train's spellings (case kept), sorted as before: nothing was added.
    assert read_classes(out / "classes.txt") == sorted(CLASSES)
    for split in ("train", "val"):
        entries = parse_list(out / f"{split}.txt", videos)
        assert {e.path: e.label for e in entries} == expected[split], split
    assert [e.label for e in parse_list(out / "test.txt", videos)] == [sorted(CLASSES).index("zumba")]
    # missing.csv names the missing clips' classes in train's spelling.
    missing = {r["youtube_id"]: r["label"] for r in csv.DictReader(open(out / "missing.csv", newline=""))}
    assert missing["vvvvvvvvvv2"] == "abseiling"


def test_a_val_or_test_class_not_in_train_is_refused(kinetics, tmp_path, capsys):
    ann, videos, _, _ = kinetics
    header, *val = _rows(ann / "validate.csv")
    val[1][0] = "abseilling"  # a typo: line 3 of the file
    val_csv = _write_csv(tmp_path / "val_typo.csv", header, val)
    out = tmp_path / "lists"
    status = _run(["--data-root", str(videos), "--train-csv", str(ann / "train.csv"),
                   "--val-csv", str(val_csv), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2
    assert f"{val_csv}:3" in err and "'abseilling'" in err
    assert "train" in err and "Fix" in err
    assert not out.exists() or not any(out.iterdir())  # nothing written

    test_csv = _write_csv(tmp_path / "test_labelled.csv", ["label", "youtube_id", "time_start", "time_end", "split"],
                          [["zumba", "tttttttttt1", 1, 11, "test"], ["yoga", "tttttttttt2", 0, 10, "test"]])
    status = _run(["--data-root", str(videos), "--train-csv", str(ann / "train.csv"),
                   "--test-csv", str(test_csv), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2
    assert f"{test_csv}:3" in err and "'yoga'" in err
    assert not out.exists() or not any(out.iterdir())


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_existing_lists_are_kept_unless_overwrite(kinetics, tmp_path, capsys):
    ann, videos, expected, _ = kinetics
    out = tmp_path / "lists"
    args = ["--data-root", str(videos), "--train-csv", str(ann / "train.csv"),
            "--val-csv", str(ann / "validate.csv"), "--out", str(out)]
    assert _run(args) == 0
    (out / "notes.txt").write_text("mine\n")  # not an output: never touched
    before = _snapshot(out)
    assert {"train.txt", "val.txt", "classes.txt", "missing.csv", "missing_classes.txt"} <= set(before)
    capsys.readouterr()

    # Again without --overwrite: refused, naming the files and the flag; nothing changed.
    assert _run(args) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "train.txt" in err and "classes.txt" in err
    assert _snapshot(out) == before

    # A run that fails (wrong data root: no clips at all) with --overwrite: nothing changed, no
    # temporary files left behind.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(["--data-root", str(empty), "--train-csv", str(ann / "train.csv"),
                 "--val-csv", str(ann / "validate.csv"), "--out", str(out), "--overwrite"]) == 1
    assert "no clips at all" in capsys.readouterr().err
    assert _snapshot(out) == before
    # ... nor one that fails on a bad CSV.
    bad = tmp_path / "bad.csv"
    bad.write_text("youtube_id,start,end\nabc,0,10\n")
    assert _run([*args[:-4], "--val-csv", str(bad), "--out", str(out), "--overwrite"]) == 2
    assert _snapshot(out) == before

    # With --overwrite a good run replaces the lists.
    header, *train = _rows(ann / "train.csv")
    fewer = _write_csv(tmp_path / "train_fewer.csv", header, train[:2])
    assert _run(["--data-root", str(videos), "--train-csv", str(fewer), "--out", str(out), "--overwrite"]) == 0
    after = _snapshot(out)
    assert set(after) == set(before)  # no temporary files left behind
    assert after["train.txt"] != before["train.txt"] and after["notes.txt"] == b"mine\n"
    assert read_classes(out / "classes.txt") == ["abseiling"]


# --- Standard class lists, Kinetics-600/700 CSVs, the CVDF layout ---

import random
from pathlib import Path

from vidgn.tools.kinetics_labels import CLASS_LISTS_DIR, standard_classes

STANDARD_SIZES = {"k400": 400, "k600": 600, "k700": 700}


@pytest.mark.parametrize("dataset", sorted(STANDARD_SIZES))
def test_shipped_class_lists_are_complete_distinct_and_in_index_order(dataset):
    names = standard_classes(dataset)
    assert len(names) == STANDARD_SIZES[dataset]
    assert len({" ".join(n.split()).casefold() for n in names}) == len(names)  # distinct as matched
    assert all(n == n.strip() and n for n in names)
    assert names == sorted(names)  # the order every Kinetics codebase indexes them in
    assert read_classes(CLASS_LISTS_DIR / f"kinetics{STANDARD_SIZES[dataset]}.txt") == names


def _clip_source(synthetic_dataset):
    return [resolve(e, synthetic_dataset.root)
            for e in parse_list(synthetic_dataset.train_list, synthetic_dataset.root)]


# The header of each version's CSVs: K400 has is_cc, K600 and K700(-2020) do not.
HEADERS = {"k400": ["label", "youtube_id", "time_start", "time_end", "split", "is_cc"],
           "k600": ["label", "youtube_id", "time_start", "time_end", "split"],
           "k700": ["label", "youtube_id", "time_start", "time_end", "split"]}


def _standard_csv(path, dataset, names, split="train"):
    rows = [[name, f"id{i:09d}", 10, 20, split] + ([0] if dataset == "k400" else [])
            for i, name in enumerate(names)]
    return _write_csv(path, HEADERS[dataset], rows)


@pytest.mark.parametrize("dataset", sorted(STANDARD_SIZES))
def test_a_download_lacking_classes_keeps_the_standard_indices(dataset, synthetic_dataset, tmp_path, capsys):
    standard = standard_classes(dataset)
    rng = random.Random(dataset)
    absent = sorted(rng.sample(standard, 3))  # no row in train.csv at all
    present = [n for n in standard if n not in absent]
    rng.shuffle(present)  # CSV order says nothing about indices
    train_csv = _standard_csv(tmp_path / "train.csv", dataset, present)
    # Only three clips were downloaded; their ids are those of the first three CSV rows.
    videos = tmp_path / "videos"
    for i, src in enumerate(_clip_source(synthetic_dataset)[:3]):
        (videos / "train").mkdir(parents=True, exist_ok=True)
        shutil.copy(src, videos / "train" / f"id{i:09d}_000010_000020.mp4")
    out = tmp_path / "lists"
    assert _run(["--data-root", str(videos), "--train-csv", str(train_csv), "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert read_classes(out / "classes.txt") == standard  # auto found the version; nothing re-indexed
    assert {e.path: e.label for e in parse_list(out / "train.txt", videos)} == {
        f"train/id{i:09d}_000010_000020.mp4": standard.index(present[i]) for i in range(3)}
    assert f"{len(standard)} classes (the standard Kinetics-{STANDARD_SIZES[dataset]} list)" in report
    assert f"3 of the {len(standard)} classes have no row in the train CSV" in report
    assert all(repr(name) in report for name in absent)
    assert f"{len(standard) - 6} of the {len(standard)} classes have no train clip" in report
    # Hundreds of classes without a clip: the first 10 are named, all are in missing_classes.txt.
    assert f"... and {len(standard) - 6 - 10} more; all listed in {out / 'missing_classes.txt'}" in report
    listed = [line.split("\t") for line in (out / "missing_classes.txt").read_text().splitlines()]
    assert listed[0] == ["index", "class", "why"]
    assert {name: why for _, name, why in listed[1:]} == {
        **{name: "no train clip found" for name in present[3:]},
        **{name: "no train row" for name in absent}}
    assert all(standard[int(i)] == name for i, name, _ in listed[1:])


def test_a_partial_download_names_ten_absent_classes_and_lists_all(kinetics, tmp_path, capsys):
    """The new-user review: 3 Kinetics-400 classes with --dataset k400 printed all 397 others on one
    line. Now the first 10, the count and the file holding all of them."""
    ann, videos, _, _ = kinetics
    out = tmp_path / "lists"
    assert _run(["--data-root", str(videos), "--train-csv", str(ann / "train.csv"), "--out", str(out),
                 "--dataset", "k400"]) == 0
    report = capsys.readouterr().out
    line = next(l for l in report.splitlines() if "have no row in the train CSV" in l)
    absent = [c for c in standard_classes("k400") if c not in CLASSES]
    assert line.startswith("warning: 397 of the 400 classes have no row in the train CSV")
    assert all(repr(c) in line for c in absent[:10]) and repr(absent[10]) not in line
    assert f"... and 387 more; all listed in {out / 'missing_classes.txt'}" in line
    rows = (out / "missing_classes.txt").read_text().splitlines()[1:]
    assert [r.split("\t")[1] for r in rows] == absent
    assert "no train clip" not in report  # each class with rows has a clip

    # An output like the others: kept without --overwrite, and replaced (here: every class
    # present, header only) with it, never left behind from the earlier run.
    assert _run(["--data-root", str(videos), "--train-csv", str(ann / "train.csv"), "--out", str(out)]) == 2
    assert "missing_classes.txt" in capsys.readouterr().err
    assert _run(["--data-root", str(videos), "--train-csv", str(ann / "train.csv"), "--out", str(out),
                 "--overwrite"]) == 0
    assert (out / "missing_classes.txt").read_text() == "index\tclass\twhy\n"

    # One class without a clip: said in the singular, listed with its index.
    header, *train = _rows(ann / "train.csv")
    one = _write_csv(tmp_path / "one.csv", header, [train[0], train[5]])  # abseiling found, zumba not
    capsys.readouterr()
    assert _run(["--data-root", str(videos), "--train-csv", str(one), "--out", str(out), "--overwrite"]) == 0
    assert "warning: 1 of the 2 classes has no train clip under the data root" in capsys.readouterr().out
    assert (out / "missing_classes.txt").read_text() == "index\tclass\twhy\n1\tzumba\tno train clip found\n"


def test_dataset_option_forces_or_refuses_a_standard_list(kinetics, tmp_path, capsys):
    ann, videos, expected, _ = kinetics
    base = ["--data-root", str(videos), "--train-csv", str(ann / "train.csv"),
            "--val-csv", str(ann / "validate.csv")]
    # 3 Kinetics-400 classes: auto keeps the CSV's classes (a subset) and says how to keep K400's.
    assert _run(base + ["--out", str(tmp_path / "auto")]) == 0
    report = capsys.readouterr().out
    assert read_classes(tmp_path / "auto" / "classes.txt") == sorted(CLASSES)
    assert "--dataset k400" in report
    # --dataset k400: the standard 400, the labels their standard indices.
    assert _run(base + ["--out", str(tmp_path / "k400"), "--dataset", "k400"]) == 0
    k400 = standard_classes("k400")
    assert read_classes(tmp_path / "k400" / "classes.txt") == k400
    by_index = sorted(CLASSES)
    for split in ("train", "val"):
        got = {e.path: e.label for e in parse_list(tmp_path / "k400" / f"{split}.txt", videos)}
        assert got == {p: k400.index(by_index[i]) for p, i in expected[split].items()}
    # A class Kinetics-400 does not have: refused, naming the line and the fix; nothing written.
    header, *val = _rows(ann / "validate.csv")
    val[0][0] = "dabbing"  # a Kinetics-700 class
    val_csv = _write_csv(tmp_path / "val700.csv", header, val)
    assert _run(base[:4] + ["--val-csv", str(val_csv), "--out", str(tmp_path / "bad"),
                            "--dataset", "k400"]) == 2
    err = capsys.readouterr().err
    assert f"{val_csv}:2: 'dabbing'" in err and "Kinetics-400 class list" in err and "--dataset" in err
    assert not (tmp_path / "bad").exists()


def _cvdf_tree(root: Path, synthetic_dataset):
    """A CVDF Kinetics-400 download (k400_downloader.sh + k400_extractor.sh): clips flat in
    {train,val,test}/, CSVs in annotations/, and a replacement for one corrupted train clip."""
    src = _clip_source(synthetic_dataset)
    names = standard_classes("k400")
    splits = {"train": names, "val": names[:5], "test": names[5:8]}
    expected = {}
    for split, labels in splits.items():
        rows = [[name, f"{split[:2]}{i:09d}", 0, 10, split] + ([0] if split == "train" else [])
                for i, name in enumerate(labels)]
        header = HEADERS["k400"] if split == "train" else HEADERS["k400"][:5]
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        _write_csv(root / "annotations" / f"{split}.csv", header, rows)
        (root / split).mkdir()
        expected[split] = {}
        for i in range(2):  # the first two clips of each split were downloaded
            rel = f"{split}/{split[:2]}{i:09d}_000000_000010.mp4"
            shutil.copy(src[i], root / rel)
            expected[split][rel] = i if split == "train" else names.index(labels[i])
    replacement = "replacement/replacement_for_corrupted_k400/tr000000001_000000_000010.mp4"
    (root / replacement).parent.mkdir(parents=True)
    shutil.copy(src[5], root / replacement)
    expected["train"][replacement] = expected["train"].pop("train/tr000000001_000000_000010.mp4")
    return expected


def test_cvdf_layout_in_one_option(synthetic_dataset, tmp_path, capsys):
    k400 = tmp_path / "k400"
    expected = _cvdf_tree(k400, synthetic_dataset)
    assert _run(["--cvdf-root", str(k400)]) == 0
    report = capsys.readouterr().out
    assert read_classes(k400 / "classes.txt") == standard_classes("k400")
    for split in ("train", "val", "test"):
        assert {e.path: e.label for e in parse_list(k400 / f"{split}.txt", k400)} == expected[split], split
    assert "1 of them from replacement/" in report
    assert "train: 2 of 400 annotated clips found" in report

    # Without the annotations the scripts download: what is missing and what to do.
    (k400 / "annotations" / "val.csv").unlink()
    assert _run(["--cvdf-root", str(k400), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert str(k400 / "annotations" / "val.csv") in err and "--train-csv" in err
    # An explicit option overrides what --cvdf-root implies (here: the val CSV kept elsewhere).
    _write_csv(tmp_path / "my_val.csv", HEADERS["k400"][:5], [["abseiling", "va000000001", 0, 10, "val"]])
    assert _run(["--cvdf-root", str(k400), "--val-csv", str(tmp_path / "my_val.csv"),
                 "--out", str(tmp_path / "lists")]) == 0
    assert [e.label for e in parse_list(tmp_path / "lists" / "val.txt", k400)] == [0]


def test_neither_cvdf_root_nor_data_root_is_a_usage_error(tmp_path, capsys):
    assert _run(["--train-csv", str(tmp_path / "train.csv")]) == 2
    assert "--cvdf-root" in capsys.readouterr().err


# --- Clips named by id alone, repeated clips, stale clean lists, underscores, short rows ---
# prepare-kinetics only matches names, so empty placeholder files stand in for the clips here.

KHEADER = ["label", "youtube_id", "time_start", "time_end", "split"]


def _touch(root: Path, *rels: str) -> Path:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()
    return root


def _listed(path: Path) -> dict[str, int]:
    return {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in path.read_text().splitlines()}


def test_a_file_named_by_id_alone_is_used_only_for_an_id_with_one_clip(tmp_path, capsys):
    """`X.mp4` cannot tell which of X's clips it is: it once became `X.mp4 0` and `X.mp4 1` in
    train.txt and X's val clip as well. Such clips are now not listed but reported as ambiguous."""
    videos = _touch(tmp_path / "videos", "XXXXXXXXXXX.mp4", "one_clip_id.mp4", "VVVVVVVVVVV_000000_000010.mp4",
                    "TTTTTTTTTTT.mp4", "TTTTTTTTTTT_000020_000030.mp4")
    train = _write_csv(tmp_path / "train.csv", KHEADER, [
        ["abseiling", "XXXXXXXXXXX", 0, 10, "train"],
        ["zumba", "XXXXXXXXXXX", 20, 30, "train"],
        ["zumba", "one_clip_id", 5, 15, "train"],  # the only clip of its id: the plain name is it
        ["abseiling", "TTTTTTTTTTT", 0, 10, "train"],  # plain name only: ambiguous ...
        ["zumba", "TTTTTTTTTTT", 20, 30, "train"],  # ... but this one has its trimmed name: exact
    ])
    val = _write_csv(tmp_path / "val.csv", KHEADER, [
        ["zumba", "VVVVVVVVVVV", 0, 10, "val"],
        ["abseiling", "XXXXXXXXXXX", 40, 50, "val"],  # X's third clip, in another CSV
    ])
    out = tmp_path / "lists"
    assert _run(["--data-root", str(videos), "--train-csv", str(train), "--val-csv", str(val),
                 "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert _listed(out / "train.txt") == {"one_clip_id.mp4": 1, "TTTTTTTTTTT_000020_000030.mp4": 1}
    assert _listed(out / "val.txt") == {"VVVVVVVVVVV_000000_000010.mp4": 1}
    assert "train: 2 of 5 annotated clips found, 0 missing (0.0%), 3 ambiguous" in report
    assert "val  : 1 of 2 annotated clips found, 0 missing (0.0%), 1 ambiguous" in report
    assert "XXXXXXXXXXX.mp4 (3 clips)" in report and "TTTTTTTTTTT.mp4 (2 clips)" in report
    assert "cannot tell which clip it is" in report and "{youtube_id}_{time_start:06d}_{time_end:06d}" in report
    # In missing.csv, where the clips to fetch again are.
    with open(out / "missing.csv", newline="") as f:
        rows = {(r["youtube_id"], r["time_start"], r["split"]) for r in csv.DictReader(f)}
    assert rows == {("XXXXXXXXXXX", "0", "train"), ("XXXXXXXXXXX", "20", "train"),
                    ("TTTTTTTTTTT", "0", "train"), ("XXXXXXXXXXX", "40", "val")}
    assert "and the 4 ambiguous ones" in report


def test_repeated_clips_are_listed_once_conflicting_ones_not_and_leaks_are_warned(tmp_path, capsys):
    videos = _touch(tmp_path / "videos", *(f"{c * 11}_000000_000010.mp4" for c in "ABCDE"))
    train = _write_csv(tmp_path / "train.csv", KHEADER, [
        ["abseiling", "AAAAAAAAAAA", 0, 10, "train"],  # line 2
        ["Abseiling ", "AAAAAAAAAAA", 0, 10, "train"],  # 3: the same clip, the same class: once
        ["abseiling", "BBBBBBBBBBB", 0, 10, "train"],  # 4
        ["zumba", "BBBBBBBBBBB", 0, 10, "train"],  # 5: the same clip, another class: not listed
        ["zumba", "CCCCCCCCCCC", 0, 10, "train"],  # 6: also in val
        ["zumba", "DDDDDDDDDDD", 0, 10, "train"],  # 7
    ])
    val = _write_csv(tmp_path / "val.csv", KHEADER, [
        ["zumba", "EEEEEEEEEEE", 0, 10, "val"],  # 2
        ["zumba", "CCCCCCCCCCC", 0, 10, "val"],  # 3: train's line 6
    ])
    out = tmp_path / "lists"
    assert _run(["--data-root", str(videos), "--train-csv", str(train), "--val-csv", str(val),
                 "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert _listed(out / "train.txt") == {"AAAAAAAAAAA_000000_000010.mp4": 0, "CCCCCCCCCCC_000000_000010.mp4": 1,
                                          "DDDDDDDDDDD_000000_000010.mp4": 1}
    # The leak is kept in both lists (as the official CSVs say), and warned about with both lines.
    assert _listed(out / "val.txt") == {"EEEEEEEEEEE_000000_000010.mp4": 1, "CCCCCCCCCCC_000000_000010.mp4": 1}
    assert "train: 3 of 4 annotated clips found, 0 missing (0.0%), 1 with conflicting labels" in report
    assert f"1 row of {train} repeats a clip with the same label: listed once" in report
    assert f"{train}:4 'abseiling' vs {train}:5 'zumba'" in report and "not listed" in report
    assert f"{train}:2" not in report  # a repeat with the same label is only counted
    assert f"1 clip of val ({val}) is also in train: a train/val leak" in report
    assert f"{train}:6 = {val}:3" in report
    with open(out / "missing.csv", newline="") as f:
        assert list(csv.DictReader(f)) == []  # a conflicting clip is not missing


def test_overwrite_moves_the_stale_clean_lists_aside_and_keeps_the_check_results(kinetics, tmp_path, capsys):
    """train.clean.txt (check-videos --write-clean), which the Kinetics configs train on, kept the
    old lines and labels after the lists were rewritten."""
    ann, videos, _, _ = kinetics
    out = tmp_path / "lists"
    args = ["--data-root", str(videos), "--train-csv", str(ann / "train.csv"),
            "--val-csv", str(ann / "validate.csv"), "--out", str(out)]
    assert _run(args) == 0
    (out / "train.clean.txt").write_text("old train lines\n")
    (out / "val.clean.txt").write_text("old val lines\n")
    (out / "train.check.tsv").write_text("#vidgn check-videos results\n")
    capsys.readouterr()
    # Runs that write nothing move nothing: without --overwrite, and one that fails.
    assert _run(args) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(["--data-root", str(empty), *args[2:], "--overwrite"]) == 1
    assert (out / "train.clean.txt").read_text() == "old train lines\n"
    assert not list(out.glob("replaced-*"))
    capsys.readouterr()

    assert _run(args + ["--overwrite"]) == 0
    report = capsys.readouterr().out
    [aside] = list(out.glob("replaced-*"))
    assert aside.name[len("replaced-"):].endswith("Z")  # UTC time
    assert (aside / "train.clean.txt").read_text() == "old train lines\n"
    assert (aside / "val.clean.txt").read_text() == "old val lines\n"
    assert not (out / "train.clean.txt").exists() and not (out / "val.clean.txt").exists()
    assert (out / "train.check.tsv").read_text() == "#vidgn check-videos results\n"  # kept as is
    assert f"was moved to {aside / 'train.clean.txt'}" in report and "check-videos --write-clean" in report
    assert f"{out / 'train.check.tsv'} kept and reused" in report
    # Another rewrite: its own folder, nothing lost.
    (out / "train.clean.txt").write_text("newer train lines\n")
    assert _run(args + ["--overwrite"]) == 0
    assert sorted(p.read_text() for p in out.glob("replaced-*/train.clean.txt")) == [
        "newer train lines\n", "old train lines\n"]


def test_a_val_class_train_lacks_names_the_standard_list_option(kinetics, tmp_path, capsys):
    """The train CSV lacks classes (a partial one), val has one of them: the error says --dataset
    k400, the fix, which the user only saw on success before."""
    ann, videos, _, _ = kinetics
    header, *train = _rows(ann / "train.csv")
    partial = _write_csv(tmp_path / "train_partial.csv", header, [r for r in train if r[0] != "zumba"])
    base = ["--data-root", str(videos), "--train-csv", str(partial), "--out", str(tmp_path / "lists")]
    assert _run(base + ["--val-csv", str(ann / "validate.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{ann / 'validate.csv'}:2: 'zumba'" in err
    assert "pass --dataset k400" in err and "Kinetics-400 class" in err
    assert _run(base + ["--val-csv", str(ann / "validate.csv"), "--dataset", "k400"]) == 0  # that fix works
    # A class in no standard list (a typo): no such hint, the typo fix only.
    header, *val = _rows(ann / "validate.csv")
    val[0][0] = "zumbba"
    typo = _write_csv(tmp_path / "val_typo.csv", header, val)
    assert _run(base + ["--val-csv", str(typo), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"{typo}:2: 'zumbba'" in err and "--dataset k400" not in err and "a typo?" in err


def test_underscores_read_as_spaces_against_the_standard_lists(tmp_path, capsys):
    """`air_drumming` (some re-distributions) is Kinetics-400's `air drumming`: with --dataset k400
    it was refused although the error claimed spacing was ignored, and auto took a custom class list
    without a word."""
    k400 = standard_classes("k400")
    videos = _touch(tmp_path / "videos", "id000000001_000010_000020.mp4", "id000000005_000010_000020.mp4")
    train = _standard_csv(tmp_path / "train.csv", "k400", [c.replace(" ", "_") for c in k400])
    expected = {"id000000001_000010_000020.mp4": 1, "id000000005_000010_000020.mp4": 5}
    assert k400[1] == "air drumming"  # the underscore form is what the CSV holds
    for dataset in ("k400", "auto"):
        out = tmp_path / dataset
        assert _run(["--data-root", str(videos), "--train-csv", str(train), "--out", str(out),
                     "--dataset", dataset]) == 0, capsys.readouterr().err
        assert read_classes(out / "classes.txt") == k400  # the standard spelling
        assert _listed(out / "train.txt") == expected
        assert "the standard Kinetics-400 list" in capsys.readouterr().out
    # A class set that is in no standard list: auto says why it takes the CSV's classes.
    custom = _write_csv(tmp_path / "custom.csv", KHEADER, [["my_class", "id000000001", 10, 20, "train"]])
    assert _run(["--data-root", str(videos), "--train-csv", str(custom), "--out", str(tmp_path / "custom")]) == 0
    note = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("note:"))
    assert "'my_class'" in note and "no standard Kinetics class list" in note
    assert read_classes(tmp_path / "custom" / "classes.txt") == ["my_class"]  # spelled as in the CSV


def test_a_row_with_too_few_fields_names_the_counts(tmp_path, capsys):
    videos = _touch(tmp_path / "videos", "AAAAAAAAAAA_000000_000010.mp4")
    short = tmp_path / "t_short.csv"
    short.write_text("label,youtube_id,time_start,time_end,split,is_cc\n"
                     "abseiling,AAAAAAAAAAA,0,10,train,0\n"
                     "abseiling,AAAAAAAAAAA,0,10,train\n"  # without is_cc, which is not read: fine
                     "\n"  # a blank line is no row
                     "zumba,BBBBBBBBBBB\n")
    assert _run(["--data-root", str(videos), "--train-csv", str(short), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{short}:5: this row has 2 fields, the header has 6" in err and "Fix:" in err
    assert "None" not in err
    short.write_text(short.read_text().replace("zumba,BBBBBBBBBBB\n", ""))
    assert _run(["--data-root", str(videos), "--train-csv", str(short), "--out", str(tmp_path / "o")]) == 0
