"""`vidgn summarize RUN_DIR...`: one table of the evaluation summaries of several runs.

A run whose summary is missing or unreadable does not hide the others: it gets a row that says what
is wrong, and the exit status is 1. A partial run (`vidgn test` left out more than
`max_bad_fraction` of the videos; `"complete": false` in its summary) is marked ` (PARTIAL)` in the
table and explained below it: its numbers are not comparable with complete runs. Exit status 1 then
too, so that scripts cannot mistake such a table for a clean comparison.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

COLUMNS = ("run", "norm", "frames", "clips/gpu", "clip top-1", "clip top-5", "video top-1", "video top-5",
           "mean class", "videos", "left out")
PARTIAL_MARK = " (PARTIAL)"


class RunSummaryError(Exception):
    """A run directory's summary (or config) is missing or unreadable; `short` fits a table cell."""

    def __init__(self, short: str, detail: str):
        super().__init__(detail)
        self.short, self.detail = short, detail


@dataclass
class RunResult:
    name: str
    row: list[str]
    problem: str | None = None  # missing/broken summary: what is wrong and what to do
    partial_note: str | None = None  # set for a partial run: why its numbers are not comparable


def _load_summary(run_dir: Path, split: str) -> dict:
    summary_path = run_dir / f"{split}_summary.json"
    if not summary_path.is_file():
        raise RunSummaryError(
            f"no {summary_path.name}: run `vidgn {split} ...` for it",
            f"{summary_path} not found: run `vidgn {split} ...` on this run's checkpoint, writing "
            f"into {run_dir}, first (or check the run directory)")
    try:
        s = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunSummaryError(
            f"broken {summary_path.name}",
            f"{summary_path} cannot be read: {e}; re-run `vidgn {split} ...` for {run_dir}") from e
    if not isinstance(s, dict):
        raise RunSummaryError(
            f"broken {summary_path.name}",
            f"{summary_path} is not a JSON object (found {type(s).__name__}); re-run `vidgn {split} ...` "
            f"for {run_dir}")
    return s


def _load_config(run_dir: Path, split: str) -> dict:
    config: dict = {}
    for name in ("config.yaml", f"config_{split}.yaml"):
        path = run_dir / name
        if path.is_file():
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
                raise RunSummaryError(f"broken {name}", f"{path} cannot be read: {e}") from e
            if not isinstance(loaded, dict):
                raise RunSummaryError(f"broken {name}", f"{path} is not a YAML mapping")
            config = loaded
    return config


def run_row(run_dir: Path, split: str = "test") -> list[str]:
    """The table row of one run; raises RunSummaryError if its summary is missing or broken."""
    s = _load_summary(run_dir, split)
    config = _load_config(run_dir, split)
    net = ((config.get("model") or {}).get("network") or {}).get("init_args") or {}
    data = config.get("data") or {}
    frames = f"{data.get('num_frames', '?')}x{data.get('sampling_rate', '?')}"

    def pct(key: str) -> str:
        value = s.get(key)
        return "-" if not isinstance(value, (int, float)) else f"{value:.1f}"

    return [run_dir.name, str(net.get("norm", "?")), frames, str(data.get("clips_per_gpu", "?")),
            pct("clip_top1"), pct("clip_top5"), pct("video_top1"), pct("video_top5"), pct("mean_class_accuracy"),
            str(s.get("num_videos", "?")), str(s.get("num_videos_left_out", "?"))]


def partial_note(run_name: str, summary: dict) -> str | None:
    """The explanation for a run whose summary says `"complete": false`, else None.

    Summaries written before the key existed (no `complete`) count as complete.
    """
    if summary.get("complete", True) is not False:
        return None
    left_out = summary.get("num_videos_left_out")
    if left_out is None:
        left_out = len(summary.get("left_out") or [])
    total = summary.get("num_videos_in_list")
    if total is None and isinstance(summary.get("num_videos"), int):
        total = summary["num_videos"] + left_out
    frac = summary.get("max_bad_fraction", "?")
    return (f"run {run_name}: {left_out} of {total if total is not None else '?'} videos left out "
            f"(more than max_bad_fraction={frac}): its numbers are not comparable")


def summarize_run(run_dir: Path, split: str = "test") -> RunResult:
    """Row and notes of one run; never raises for a missing or broken summary."""
    name = run_dir.name or str(run_dir)
    try:
        row = run_row(run_dir, split)
    except RunSummaryError as e:
        blank = [""] * (len(COLUMNS) - 2)
        return RunResult(name, [name, f"**{e.short}**", *blank], problem=f"run {name}: {e.detail}")
    note = partial_note(name, _load_summary(run_dir, split))
    if note is not None:
        row[0] += PARTIAL_MARK
    return RunResult(name, row, partial_note=note)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "summarize", help="table of the test summaries of run directories",
        description="Table of the test summaries of run directories. Exit status 1 if a run has no "
                    "(readable) summary or is partial (more than max_bad_fraction of its videos left out).")
    p.add_argument("runs", nargs="+", type=Path, help="run directories (trainer.default_root_dir of each run)")
    p.add_argument("--split", default="test", choices=["test", "predict"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = [summarize_run(r, args.split) for r in args.runs]
    print(markdown_table([r.row for r in results]))
    notes = [r.problem for r in results if r.problem] + [r.partial_note for r in results if r.partial_note]
    if notes:
        print()
        for line in notes:
            print(line)
    return 1 if notes else 0
