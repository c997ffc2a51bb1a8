"""The figures of a `vidgn compare` report: PNGs drawn with matplotlib's Agg canvas.

Only drawing and reading metrics.csv live here; report.py aggregates the seeds and decides what to
draw. Figures are built with `matplotlib.figure.Figure` (rendered by the Agg canvas when saved to
PNG), never through pyplot, so that writing a report neither needs a display nor changes the global
matplotlib backend of a program that imports vidgn.
"""
from __future__ import annotations

import csv
import math
import itertools
import re
from pathlib import Path
from typing import Callable

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

Point = tuple[float, float]  # (mean, std) of a metric over the done seeds of a cell; std 0.0 for n=1
Y_LABEL = "video top-1 (%), mean ± std over seeds"


def draw_report_plots(output_dir: Path, axes: dict[str, list[str]], point: Callable[[dict[str, str]], Point | None],
                      runs: list[tuple[str, Path]]) -> tuple[list[str], list[str]]:
    """The report's figures in output_dir; returns (PNG file names written, notes for report.md).

    point(labels of a cell) -> its video top-1 (mean, std), None without a done seed. With >= 2 axes:
    accuracy_vs_<second axis>.png, x = the second axis, one line per label of the first axis (per
    combination with the axes beyond the second), as the GN paper's Figure 1; with one axis a bar
    chart accuracy.png. Then val_curves.png from the runs [(cell label, run directory)].
    """
    names = list(axes)
    if len(names) >= 2:
        x, rest = names[1], [names[0], *names[2:]]
        series = {}
        for combo in itertools.product(*(axes[a] for a in rest)):
            line = ", ".join([combo[0], *(f"{a}={label}" for a, label in zip(rest[1:], combo[1:]))])
            series[line] = [point({**dict(zip(rest, combo)), x: label}) for label in axes[x]]
        accuracy = f"accuracy_vs_{re.sub(r'[^A-Za-z0-9_.-]+', '_', x)}.png"
        accuracy_plot(output_dir / accuracy, x, axes[x], series, Y_LABEL)
    else:
        accuracy = "accuracy.png"
        bar_plot(output_dir / accuracy, names[0], axes[names[0]], [point({names[0]: v}) for v in axes[names[0]]],
                 Y_LABEL)
    curves = output_dir / "val_curves.png"
    curves.unlink(missing_ok=True)  # no stale curves from an earlier report in the same directory
    written, notes = val_curves_plot(curves, runs)
    if not written:
        notes.append("val_curves.png not drawn: no done run has a metrics.csv with val/top1 values")
    return [accuracy, *([curves.name] if written else [])], notes


def numeric_positions(labels: list[str]) -> list[float] | None:
    """The labels as numbers if every one parses as a positive finite number (clips per GPU, frames), else None.

    Positive numbers are drawn on a log2 x axis (1, 2, 4, 8, 16 clips per GPU evenly spaced, as in
    the GN paper's Figure 1); anything else is drawn as categories in the axis order.
    """
    try:
        values = [float(label) for label in labels]
    except ValueError:
        return None
    return values if all(math.isfinite(v) and v > 0 for v in values) else None


def accuracy_plot(path: Path, x_name: str, x_labels: list[str], series: dict[str, list[Point | None]],
                  y_label: str) -> None:
    """One line per series over the labels of the x axis, error bars = std over seeds; None = no done seed.

    series: {line label: [point per x label]} (len(x_labels) points each, in x_labels order).
    """
    numbers = numeric_positions(x_labels)
    positions = numbers if numbers is not None else [float(i) for i in range(len(x_labels))]
    order = sorted(range(len(x_labels)), key=lambda i: positions[i])  # numeric order on a numeric axis
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for label, points in series.items():
        kept = [i for i in order if points[i] is not None]  # a cell without done seeds: a gap in the line
        if not kept:
            continue
        ax.errorbar([positions[i] for i in kept], [points[i][0] for i in kept],
                    yerr=[points[i][1] for i in kept], marker="o", capsize=3, label=label)
    if numbers is not None and len(set(numbers)) > 1:
        ax.set_xscale("log", base=2)
    ax.set_xticks([positions[i] for i in order], [x_labels[i] for i in order])
    ax.minorticks_off()
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_label)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def bar_plot(path: Path, x_name: str, labels: list[str], points: list[Point | None], y_label: str) -> None:
    """One bar per label (a single-axis grid), error bars = std over seeds; no bar where no seed is done."""
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    xs = list(range(len(labels)))
    heights = [p[0] if p is not None else 0.0 for p in points]
    errors = [p[1] if p is not None else 0.0 for p in points]
    ax.bar(xs, heights, yerr=errors, capsize=4, color="tab:blue")
    for x, p in zip(xs, points):
        if p is None:
            ax.annotate("no result", (x, 0), ha="center", va="bottom")
    ax.set_xticks(xs, labels)
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_label)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def read_val_curve(metrics_csv: Path) -> list[Point]:
    """[(epoch, val top-1 in percent)] from a Lightning metrics.csv, by epoch ([] without a val/top1 column).

    Raises ValueError if the file cannot be read or a value does not parse.

    Rows with a non-empty `val/top1` are the end-of-validation logs (torchmetrics accuracy, a
    fraction in [0, 1], hence the x100). A resumed run (vidgn appends to metrics.csv) may log an
    epoch twice: the later row wins, as it belongs to the run that went on.
    """
    by_epoch: dict[int, float] = {}
    try:
        with metrics_csv.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not {"epoch", "val/top1"} <= set(reader.fieldnames or ()):
                return []  # no validation logged (e.g. trainer.limit_val_batches=0): no curve, no error
            for row in reader:
                value, epoch = (row.get("val/top1") or "").strip(), (row.get("epoch") or "").strip()
                if value and epoch:
                    by_epoch[int(float(epoch))] = 100.0 * float(value)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{metrics_csv} cannot be read: {e}") from e
    except ValueError as e:
        raise ValueError(f"{metrics_csv}: {e}") from e
    return sorted(by_epoch.items())


def val_curves_plot(path: Path, runs: list[tuple[str, Path]]) -> tuple[bool, list[str]]:
    """Validation top-1 per epoch of every run, one colour per cell label; returns (written, notes).

    runs: [(cell label, run directory)], several runs (seeds) per label allowed. Runs without a
    metrics.csv are skipped silently (never trained, or another logger); unreadable ones are
    skipped with a note. Nothing is written (False) when no run has a curve.
    """
    notes: list[str] = []
    curves: dict[str, list[list[Point]]] = {}  # cell label -> one curve per seed
    for label, run_dir in runs:
        metrics_csv = Path(run_dir) / "metrics.csv"
        if not metrics_csv.is_file():
            continue
        try:
            curve = read_val_curve(metrics_csv)
        except ValueError as e:
            notes.append(f"val curve of {label} skipped: {e}")
            continue
        if curve:
            curves.setdefault(label, []).append(curve)
    if not curves:
        return False, notes
    fig = Figure(figsize=(7.2, 4.8))
    ax = fig.add_subplot()
    colours = _colours(len(curves))
    for colour, (label, seeds) in zip(colours, curves.items()):
        for i, curve in enumerate(seeds):  # seeds of a cell: same colour, line styles cycling
            ax.plot([e for e, _ in curve], [v for _, v in curve], color=colour, marker=".", alpha=0.8,
                    linestyle=("-", "--", ":", "-.")[i % 4], label=label if i == 0 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation top-1 (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return True, notes


def _colours(n: int) -> list:
    """n distinct colours: tab10 up to 10 cells, tab20 up to 20, then a continuous colormap."""
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["viridis"](i / (n - 1)) for i in range(n)]
