"""The report of a `vidgn compare` grid: report.json, report.md and the plots, from the cells' results.

The runner hands over one dict per cell x seed (the report.json cell schema, see `build_report`);
here the seeds of each cell are aggregated (mean ± sample std over the done seeds) and laid out like
Table 8 of the GN paper (Wu & He 2018): rows = the labels of the first axis (bn, gn), columns = the
combinations of the other axes' labels (clips per GPU), plus the gap between the first two rows
(BN − GN), the published numbers when a reference is given, and the failed runs with their logs.
"""
from __future__ import annotations

import itertools
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vidgn.comparison import plots

METRICS = ("video_top1", "video_top5", "clip_top1", "clip_top5", "mean_class_accuracy")
STATUSES = ("done", "failed", "missing")
MINUS, PARTIAL_MARK, EMULATED_MARK = "\u2212", "\u2020", "*"
NONE = "\u2014"  # a value that does not exist (no done seed, not published)


def build_report(name: str, axes: dict[str, list[str]], cells: list[dict], reference: dict | None = None) -> dict:
    """report.json content: {"name", "axes": {axis: [labels]}, "cells": cells, "reference": reference}.

    Each cell: {"labels": {axis: label}, "seed", "status": done|failed|missing, "run_dir", "error",
    "emulated": bool or description, "metrics": {METRICS, percent} or None, optional "partial": true}.
    reference: {"source": str, "cells": {"<labels joined by '-' in axis order>": {metric: percent}}}.
    Raises ValueError for a cell that does not fit the axes (a runner bug better caught before writing).
    """
    if not axes:
        raise ValueError("a comparison needs at least one axis")
    axes = {str(axis): [str(label) for label in labels] for axis, labels in axes.items()}
    for cell in cells:
        labels = {a: str(v) for a, v in (cell.get("labels") or {}).items()}
        if set(labels) != set(axes) or any(labels[a] not in axes[a] for a in axes):
            raise ValueError(f"cell labels {cell.get('labels')} do not match the axes {axes}")
        if cell.get("status") not in STATUSES:
            raise ValueError(f"cell {labels} seed {cell.get('seed')}: status must be one of {STATUSES}, "
                             f"got {cell.get('status')!r}")
        if cell["status"] == "done" and not isinstance(cell.get("metrics"), dict):
            raise ValueError(f"cell {labels} seed {cell.get('seed')} is done but has no metrics")
    return {"name": name, "axes": axes, "cells": [dict(c) for c in cells], "reference": reference}


def write_report(output_dir: Path, report: dict) -> str:
    """Writes output_dir/report.json, output_dir/report.md and the plots; returns the markdown (the runner prints it).

    report.json is `report` plus "plots": [PNG file names written into output_dir].
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    stats = aggregate(report)
    plot_files, notes = write_plots(output_dir, report, stats)
    (output_dir / "report.json").write_text(json.dumps({**report, "plots": plot_files}, indent=2) + "\n",
                                            encoding="utf-8")
    markdown = render_markdown(report, stats, plot_files, notes)
    (output_dir / "report.md").write_text(markdown, encoding="utf-8")
    return markdown


def cell_key(labels: dict[str, str], axes: dict[str, list[str]]) -> str:
    """The cell's labels joined with '-' in axis order ("bn-8"): its name in tables and in reference["cells"]."""
    return "-".join(str(labels[axis]) for axis in axes)


def grid_keys(axes: dict[str, list[str]]) -> list[str]:
    """Every cell of the grid (the cross product of the axes' labels), first axis slowest."""
    return ["-".join(combo) for combo in itertools.product(*axes.values())]


@dataclass
class CellStats:
    """The seeds of one grid cell, aggregated. status: done if any seed is, else failed if any is, else missing."""
    status: str = "missing"
    values: dict[str, list[float]] = field(default_factory=dict)  # metric -> [value per done seed]
    n: int = 0  # done seeds
    partial_seeds: list = field(default_factory=list)  # done seeds whose test summary said complete=false
    emulated: list[str] = field(default_factory=list)  # emulation descriptions of the done seeds

    def mean(self, metric: str) -> float | None:
        return statistics.fmean(self.values[metric]) if self.values.get(metric) else None

    def std(self, metric: str) -> float:
        """Sample std over the done seeds (0.0 with one seed)."""
        v = self.values.get(metric) or []
        return statistics.stdev(v) if len(v) > 1 else 0.0


def aggregate(report: dict) -> dict[str, CellStats]:
    """{cell key: CellStats} for every cell of the grid, in grid order (cells without any entry: missing)."""
    stats = {key: CellStats() for key in grid_keys(report["axes"])}
    for cell in report["cells"]:
        s = stats[cell_key(cell["labels"], report["axes"])]
        if cell["status"] == "done":
            s.status, s.n = "done", s.n + 1
            for metric, value in cell["metrics"].items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    s.values.setdefault(metric, []).append(float(value))
            if cell.get("partial"):
                s.partial_seeds.append(cell.get("seed"))
            if cell.get("emulated"):
                desc = cell["emulated"] if isinstance(cell["emulated"], str) else "emulated setting (no description)"
                s.emulated += [desc] if desc not in s.emulated else []
        elif cell["status"] == "failed" and s.status == "missing":
            s.status = "failed"
    return stats


# ---- markdown ---------------------------------------------------------------------------------------
def _signed(value: float) -> str:
    """"+1.3", "−0.4" (a real minus sign), "0.0" for what rounds to zero (no "−0.0")."""
    value = round(value, 1)
    return "0.0" if value == 0 else f"{value:+.1f}".replace("-", MINUS)


def _mean_std(s: CellStats, metric: str) -> str:
    mean = s.mean(metric)
    if mean is None:
        return NONE
    return f"{mean:.1f}" if len(s.values[metric]) == 1 else f"{mean:.1f} ± {s.std(metric):.1f}"


def cell_text(s: CellStats, metrics: tuple[str, ...]) -> str:
    """"73.1 ± 0.4 / 90.5 ± 0.2 (n=3)" + marks (* emulated, † partial); "failed"/"missing" without a done seed."""
    if s.n == 0:
        return s.status
    marks = (EMULATED_MARK if s.emulated else "") + (PARTIAL_MARK if s.partial_seeds else "")
    return " / ".join(_mean_std(s, m) for m in metrics) + f" (n={s.n})" + marks


def _difference(a: float | None, b: float | None) -> str:
    return NONE if a is None or b is None else _signed(a - b)


def grid_table(axes: dict[str, list[str]], text: Callable[[str], str],
               gap: Callable[[str, str], str] | None = None, single_column: str = "") -> list[str]:
    """Markdown table lines: rows = first axis labels, columns = combinations of the other axes' labels.

    text(key) fills a cell; gap(key_first, key_second), if given and the first axis has >= 2 labels,
    fills a last row "gap first − second". single_column heads the only column of a one-axis grid.
    """
    first, rest = list(axes)[0], list(axes)[1:]
    combos = list(itertools.product(*(axes[a] for a in rest)))  # [()] for a one-axis grid
    if not rest:
        headers = [single_column]
    elif len(rest) == 1:
        headers = [f"{rest[0]} {combo[0]}" for combo in combos]
    else:
        headers = [", ".join(f"{a}={label}" for a, label in zip(rest, combo)) for combo in combos]

    def key(row: str, combo: tuple) -> str:
        return cell_key({first: row, **dict(zip(rest, combo))}, axes)

    lines = ["| " + " | ".join([first, *headers]) + " |", "|" + "---|" * (len(headers) + 1)]
    lines += ["| " + " | ".join([row, *(text(key(row, c)) for c in combos)]) + " |" for row in axes[first]]
    if gap is not None and len(axes[first]) >= 2:
        a, b = axes[first][:2]
        lines.append("| " + " | ".join([f"gap {a} {MINUS} {b}", *(gap(key(a, c), key(b, c)) for c in combos)])
                     + " |")
    return lines


def _header_lines(report: dict, stats: dict[str, CellStats]) -> list[str]:
    cells = report["cells"]
    seeds = sorted({c.get("seed") for c in cells}, key=str)
    count = {status: sum(c["status"] == status for c in cells) for status in STATUSES}
    axes = " × ".join(f"{a} ({', '.join(labels)})" for a, labels in report["axes"].items())
    shared = [f"{cell_key(c['labels'], report['axes'])} seed {c.get('seed')} = {c['same_as']}"
              for c in cells if c.get("same_as")]  # the runner ran identical configs once
    return [f"# {report['name']}", "",
            f"Axes: {axes}. Seeds: {', '.join(map(str, seeds)) or 'none'}. {len(stats)} cells, {len(cells)} runs: "
            f"{count['done']} done, {count['failed']} failed, {count['missing']} missing.", "",
            *([f"Identical configs, reported from one run: {'; '.join(shared)}.", ""] if shared else [])]


def _footnotes(stats: dict[str, CellStats]) -> list[str]:
    """The explanations of the * and † marks of the tables (empty if nothing is marked)."""
    lines = []
    emulated: dict[str, list[str]] = {}
    for key, s in stats.items():
        for desc in s.emulated:
            emulated.setdefault(desc, []).append(key)
    lines += [f"`{EMULATED_MARK}` emulated: {desc} ({', '.join(keys)})" for desc, keys in emulated.items()]
    partial = [f"{key} (seed {', '.join(map(str, s.partial_seeds))})" for key, s in stats.items() if s.partial_seeds]
    if partial:
        lines.append(f"`{PARTIAL_MARK}` partial: `vidgn test` left out more than data.max_bad_fraction of the videos "
                     f"(complete=false in test_summary.json), so these numbers are not comparable with complete "
                     f"runs: {'; '.join(partial)}")
    return [*(line + "  " for line in lines[:-1]), *lines[-1:], ""] if lines else []


def _reference_lines(report: dict, stats: dict[str, CellStats]) -> list[str]:
    """The published numbers in the same table shape, and measured − published per reference cell."""
    reference = report.get("reference")
    if not reference:
        return []
    published = reference.get("cells") or {}
    source = reference.get("source", "reference")

    def pub(key: str) -> str:
        v = published.get(key)
        return NONE if v is None else " / ".join(
            f"{v[m]:.1f}" if isinstance(v.get(m), (int, float)) else NONE for m in ("video_top1", "video_top5"))

    def diff(key: str) -> str:
        v = published.get(key) or {}
        return " / ".join(_difference(stats[key].mean(m), v.get(m)) for m in ("video_top1", "video_top5"))

    def gap(a: str, b: str) -> str:
        va, vb = published.get(a) or {}, published.get(b) or {}
        return " / ".join(_difference(va.get(m), vb.get(m)) for m in ("video_top1", "video_top5"))

    lines = [f"## Published: {source}", "", "Video top-1 / top-5 (%).", "",
             *grid_table(report["axes"], pub, gap, "video top-1 / top-5"), "",
             f"## Measured {MINUS} published (video top-1 / top-5, mean over seeds)", "",
             *grid_table(report["axes"], diff, None, "video top-1 / top-5"), ""]
    unknown = sorted(set(published) - set(stats))
    if unknown:
        lines += [f"Reference cells not in this grid (ignored): {', '.join(unknown)}.", ""]
    return lines


def _failure_lines(report: dict) -> list[str]:
    """Failed runs with their error and logs, then the missing runs."""
    lines = []
    failed = [c for c in report["cells"] if c["status"] == "failed"]
    if failed:
        lines += ["## Failed runs", ""]
        for c in failed:
            run_dir = Path(c.get("run_dir") or ".")
            logs = [str(run_dir / log) for log in ("fit.log", "test.log") if (run_dir / log).is_file()]
            error = str(c.get("error") or "no error message").strip().replace("\n", "\n    ")
            log = ", ".join(logs) or f"{run_dir / 'fit.log'} (not found)"
            lines += [f"- {cell_key(c['labels'], report['axes'])} seed {c.get('seed')}: {error}",
                      f"    run dir: {run_dir}; log: {log}"]
        lines.append("")
    missing = [f"{cell_key(c['labels'], report['axes'])} seed {c.get('seed')}"
               for c in report["cells"] if c["status"] == "missing"]
    if missing:
        lines += ["## Missing runs", "", f"Not run (or no results yet): {', '.join(missing)}.", ""]
    return lines


def render_markdown(report: dict, stats: dict[str, CellStats], plot_files: list[str], notes: list[str]) -> str:
    """report.md: header, video and clip tables (GN paper Table 8 shape), reference, failures, plots."""
    axes = report["axes"]
    first = list(axes)[0]

    def gap(metrics: tuple[str, ...]) -> Callable[[str, str], str]:
        return lambda a, b: " / ".join(_difference(stats[a].mean(m), stats[b].mean(m)) for m in metrics)

    video, clip = ("video_top1", "video_top5"), ("clip_top1",)
    gap_note = (f"gap: difference of the means of the first two {first} labels; {NONE} where either has no "
                "done seed." if len(axes[first]) >= 2 else "")
    lines = [*_header_lines(report, stats),
             "## Video-level top-1 / top-5 (%)", "", "Mean ± sample std over the done seeds (n = their number).", "",
             *grid_table(axes, lambda k: cell_text(stats[k], video), gap(video), "video top-1 / top-5"), "",
             *([gap_note, ""] if gap_note else []), *_footnotes(stats),
             "## Clip-level top-1 (%)", "",
             *grid_table(axes, lambda k: cell_text(stats[k], clip), gap(clip), "clip top-1"), "",
             *_reference_lines(report, stats), *_failure_lines(report)]
    if plot_files or notes:
        lines += ["## Plots", "", *(f"- {name}" for name in plot_files), *(f"- {note}" for note in notes), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_plots(output_dir: Path, report: dict, stats: dict[str, CellStats]) -> tuple[list[str], list[str]]:
    """Draws the accuracy plot (video top-1) and the validation curves into output_dir; returns (file names, notes)."""
    axes = report["axes"]

    def point(labels: dict[str, str]) -> plots.Point | None:
        s = stats[cell_key(labels, axes)]
        return None if s.mean("video_top1") is None else (s.mean("video_top1"), s.std("video_top1"))

    order = {key: i for i, key in enumerate(stats)}
    runs = sorted(((cell_key(c["labels"], axes), Path(c["run_dir"])) for c in report["cells"]
                   if c["status"] == "done" and c.get("run_dir")), key=lambda r: order[r[0]])
    return plots.draw_report_plots(output_dir, axes, point, runs)
