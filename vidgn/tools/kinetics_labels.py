"""Kinetics class names and indices for `vidgn prepare-kinetics`: the shipped standard class lists
(`kinetics_classes/*.txt`), the `--dataset` choice among them (`auto` resolved), and the train CSV's
own class names (`normalize_label`, `train_classes`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
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
    note: str | None = None  # why auto did not take a standard list whose names these all are
    without_rows: list[str] = field(default_factory=list)  # standard classes train.csv lacks
    without_clips: list[str] = field(default_factory=list)  # classes with no train clip found


def normalize_label(label: str) -> str:
    """A class name with surrounding whitespace stripped and inner whitespace collapsed to one space."""
    return " ".join(label.split())


def train_classes(rows: list[dict]) -> dict[str, str]:
    """{casefolded name: class name} of the train split.

    Labels are already normalised (`normalize_label`); names that differ only by case are one class,
    spelled as most train rows spell it (the first seen on a tie).
    """
    spellings: dict[str, Counter] = {}
    for r in rows:
        spellings.setdefault(r["label"].casefold(), Counter())[r["label"]] += 1
    return {key: counts.most_common(1)[0][0] for key, counts in spellings.items()}


def standard_classes(dataset: str) -> list[str]:
    """The shipped class list of `dataset` (k400, k600, k700), in index order."""
    return (CLASS_LISTS_DIR / STANDARD_LISTS[dataset]).read_text(encoding="utf-8").splitlines()


def choose_dataset(train_names: set[str], dataset: str) -> tuple[str, str | None]:
    """(dataset, note): which class list to use for `--dataset` (auto resolved), and a note for
    the user when auto falls back to the train CSV's names although they are all standard ones.

    `train_names` are casefolded, normalised train labels.
    """
    if dataset != "auto":
        return dataset, None
    for name in sorted(STANDARD_LISTS, key=lambda d: len(standard_classes(d))):  # smallest first
        standard = {c.casefold() for c in standard_classes(name)}
        if train_names <= standard:
            if len(train_names) >= AUTO_MIN_COVERAGE * len(standard):
                return name, None
            return "csv", (f"the train CSV's {len(train_names)} classes are all {DATASET_NAMES[name]} "
                           f"classes but only {100 * len(train_names) / len(standard):.0f}% of them, so "
                           f"classes.txt holds just these {len(train_names)} (new indices). If this is "
                           f"{DATASET_NAMES[name]} with classes missing, pass --dataset {name} to keep "
                           "the standard indices.")
    return "csv", None
