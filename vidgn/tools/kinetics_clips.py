"""prepare-kinetics' matching of annotated clips to downloaded files, one split at a time.

A clip is `(youtube_id, time_start, time_end)`. The official CSVs have one row per clip; merged or
hand-edited ones may repeat one (listed once), give it two labels (not listed: which is right cannot
be told) or put it in two splits (a leak, reported). A file is matched by its trimmed-clip name, or
by `{youtube_id}.ext` only when that id has a single clip in all the CSVs given.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vidgn.tools.kinetics_inputs import CVDF_REPLACEMENT_DIR
from vidgn.tools.kinetics_labels import label_key

Clip = tuple[str, int, int]  # (youtube_id, time_start, time_end): what the CSVs annotate


@dataclass
class SplitReport:
    split: str
    csv_path: Path | None = None
    annotated: int = 0  # distinct clips in the split's CSV
    found: int = 0  # clips listed
    unlabeled: int = 0  # found clips without a label: the list is for prediction only
    respelled: int = 0  # rows whose label differs from the class name only by case/spacing/underscores
    replaced: int = 0  # clips taken from the CVDF replacement folder instead of the split's copy
    duplicates: int = 0  # rows repeating a clip with the same label: the clip is listed once
    conflicts: list[list[dict]] = field(default_factory=list)  # one clip's rows, labels differing: not listed
    missing_rows: list[dict] = field(default_factory=list)
    # Clips found only as `{youtube_id}.ext` while that id has several clips in the CSVs: not listed.
    ambiguous_rows: list[dict] = field(default_factory=list)
    leaks: list[tuple[str, str, str]] = field(default_factory=list)  # (earlier split, its row, this row)
    found_per_class: Counter = field(default_factory=Counter)  # class index -> clips found
    rows_per_class: Counter = field(default_factory=Counter)  # class index -> annotated clips
    moved_clean: Path | None = None  # the earlier list's `<split>.clean.txt`, moved (it is stale)
    kept_check: Path | None = None  # `<split>.check.tsv`, kept: the next check-videos reuses it

    @property
    def missing(self) -> int:
        return len(self.missing_rows)

    @property
    def ambiguous(self) -> int:
        return len(self.ambiguous_rows)


def clips_of(rows: list[dict]) -> dict[Clip, list[dict]]:
    """The rows of each clip, in CSV order: the official CSVs have one row per clip, merged or
    hand-edited ones may repeat one."""
    clips: dict[Clip, list[dict]] = {}
    for r in rows:
        clips.setdefault((r["youtube_id"], r["time_start"], r["time_end"]), []).append(r)
    return clips


def ambiguous_ids(clips_per_split: dict[str, dict[Clip, list[dict]]]) -> dict[str, int]:
    """{youtube_id: clips} of the ids with more than one clip (segment) across all the CSVs given:
    a video named by the id alone (`{id}.mp4`) cannot tell which of them it is. The same clip in two
    splits (a leak, warned about) is one clip."""
    per_id = Counter(yid for yid, _, _ in set().union(*clips_per_split.values()))
    return {yid: n for yid, n in per_id.items() if n > 1}


def list_split(report: SplitReport, clips: dict[Clip, list[dict]], canonical: dict[str, str],
                class_index: dict[str, int], videos, ambiguous: dict[str, int]) -> list[tuple[str, int | None]]:
    """The (path, label index) list of one split; fills in `report`. `videos` is index_videos'
    (by_clip, by_id)."""
    by_clip, by_id = videos
    rows = []
    for clip, clip_rows in clips.items():
        report.annotated += 1
        labels = {None if r["label"] is None else canonical[label_key(r["label"])] for r in clip_rows}
        if len(labels) > 1:  # which label is right cannot be told: listing either could be wrong
            report.conflicts.append(clip_rows)
            continue
        report.duplicates += len(clip_rows) - 1
        r, label = clip_rows[0], labels.pop()
        if label is not None:
            report.respelled += label != r["raw_label"]
            report.rows_per_class[class_index[label]] += 1
        row = {**r, "label": label, "split": r["split"] or report.split}
        rel = by_clip.get(clip)
        if rel is None and clip[0] in by_id:
            if clip[0] in ambiguous:
                report.ambiguous_rows.append({**row, "file": by_id[clip[0]], "clips": ambiguous[clip[0]]})
                continue
            rel = by_id[clip[0]]
        if rel is None:
            report.missing_rows.append(row)
            continue
        report.found += 1
        report.replaced += rel.startswith(CVDF_REPLACEMENT_DIR + "/")
        rows.append((rel, class_index[label] if label is not None else None))
        report.unlabeled += label is None
        if label is not None:
            report.found_per_class[class_index[label]] += 1
    return rows


def where(csv_path: Path, row: dict) -> str:
    return f"{csv_path}:{row['line']}"


def leaks(report: SplitReport, clips: dict[Clip, list[dict]], earlier) -> list[tuple[str, str, str]]:
    """(earlier split, its CSV line, this CSV's line) of each clip of this split that an earlier
    split (`earlier`: (SplitReport, clips) pairs) also has: evaluated on clips trained on."""
    return [(prev.split, where(prev.csv_path, prev_clips[clip][0]), where(report.csv_path, rows[0]))
            for prev, prev_clips in earlier for clip, rows in clips.items() if clip in prev_clips]
