"""Kinetics class names and indices for `vidgn prepare-kinetics`: the shipped standard class lists
(`kinetics_classes/*.txt`), the `--dataset` choice among them (`auto` resolved), and the train CSV's
own class names (`normalize_label`, `label_key`, `train_classes`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

CLASS_LISTS_DIR = Path(__file__).parent / "kinetics_classes"
STANDARD_LISTS = {"k400": "kinetics400.txt", "k600": "kinetics600.txt", "k700": "kinetics700.txt"}
DATASET_NAMES = {"k400": "Kinetics-400", "k600": "Kinetics-600", "k700": "Kinetics-700"}
# `--dataset auto` takes a standard list only when the train CSV has this share of its classes: a
# download missing a few classes keeps the standard indices, while a deliberate subset (e.g.
# Mini-Kinetics-200, half of Kinetics-400) gets its own compact classes.txt.
AUTO_MIN_COVERAGE = 0.9


@dataclass
class ClassesReport:
    source: str  # "k400" / "k600" / "k700" (a shipped list) or "csv" (the train CSV's names)
    note: str | None = None  # why auto took the train CSV's names rather than a standard list
    without_rows: list[str] = field(default_factory=list)  # standard classes train.csv lacks
    without_clips: list[str] = field(default_factory=list)  # classes with no train clip found


def normalize_label(label: str) -> str:
    """A class name with surrounding whitespace stripped and inner whitespace collapsed to one space."""
    return " ".join(label.split())


def label_key(label: str) -> str:
    """What two class names are compared by: case, spacing and underscores ignored.

    Some re-distributions of Kinetics write `air_drumming` for `air drumming`; no shipped standard
    name has an underscore, so reading `_` as a space maps those CSVs to the standard indices. The
    name written (classes.txt) is still the standard list's or train's own spelling.
    """
    return " ".join(label.replace("_", " ").split()).casefold()


def train_classes(rows: list[dict]) -> dict[str, str]:
    """{label_key: class name} of the train split.

    Names with the same `label_key` are one class, spelled as most train rows spell it (the first
    seen on a tie).
    """
    spellings: dict[str, Counter] = {}
    for r in rows:
        spellings.setdefault(label_key(r["label"]), Counter())[r["label"]] += 1
    return {key: counts.most_common(1)[0][0] for key, counts in spellings.items()}


def standard_classes(dataset: str) -> list[str]:
    """The shipped class list of `dataset` (k400, k600, k700), in index order."""
    return (CLASS_LISTS_DIR / STANDARD_LISTS[dataset]).read_text(encoding="utf-8").splitlines()


@lru_cache(maxsize=None)
def _standard_keys(dataset: str) -> frozenset[str]:
    return frozenset(label_key(c) for c in standard_classes(dataset))


def standard_list_holding(keys) -> str | None:
    """The smallest standard list (k400, k600, k700) holding every one of these `label_key`s, or
    None."""
    for name in sorted(STANDARD_LISTS, key=lambda d: len(_standard_keys(d))):  # smallest first
        if set(keys) <= _standard_keys(name):
            return name
    return None


def choose_dataset(train: dict[str, str], dataset: str) -> tuple[str, str | None]:
    """(dataset, note): which class list to use for `--dataset` (auto resolved), and, when auto
    takes the train CSV's names, a note saying why (the user may have expected a standard list).

    `train` is `train_classes`: {label_key: train's spelling}.
    """
    if dataset != "auto":
        return dataset, None
    name = standard_list_holding(train)
    if name is None:
        return "csv", _custom_note(train)
    size = len(_standard_keys(name))
    if len(train) >= AUTO_MIN_COVERAGE * size:
        return name, None
    return "csv", (f"the train CSV's {len(train)} classes are all {DATASET_NAMES[name]} "
                   f"classes but only {100 * len(train) / size:.0f}% of them, so "
                   f"classes.txt holds just these {len(train)} (new indices). If this is "
                   f"{DATASET_NAMES[name]} with classes missing, pass --dataset {name} to keep "
                   "the standard indices.")


def _custom_note(train: dict[str, str]) -> str:
    # Said even for a genuinely custom class set: a Kinetics CSV landing here (a renamed class,
    # another spelling) would otherwise silently get new indices.
    known = frozenset().union(*map(_standard_keys, STANDARD_LISTS))
    outside = sorted(name for key, name in train.items() if key not in known)
    if outside:
        shown = ", ".join(map(repr, outside[:5])) + (f" ... and {len(outside) - 5} more" if len(outside) > 5 else "")
        why = (f"{len(outside)} of the train CSV's {len(train)} classes {'is' if len(outside) == 1 else 'are'} "
               "in no standard Kinetics "
               f"class list ({shown}; compared ignoring case, spacing and underscores)")
    else:
        why = (f"the train CSV's {len(train)} classes are all standard Kinetics classes, but no one "
               "list (Kinetics-400, -600 or -700) holds all of them")
    return (f"{why}, so classes.txt holds the train CSV's classes, sorted (new indices). If these "
            "CSVs are Kinetics, pass --dataset k400, k600 or k700 to see which rows do not match "
            "its class list.")
