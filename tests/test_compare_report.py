"""The `vidgn compare` report (vidgn/comparison/report.py, plots.py) on hand-made cells: no training.

Grid: norm (bn, gn) x clips_per_gpu (8, 4) x seeds (0, 1). bn-4 seed 1 failed, gn-4 seed 1 is
missing, gn-8 seed 1 is partial, bn-4 seed 0 is emulated; gn-4 seed 0 has no metrics.csv.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidgn.comparison.plots import read_val_curve
from vidgn.comparison.report import build_report, write_report

AXES = {"norm": ["bn", "gn"], "clips_per_gpu": ["8", "4"]}
EMULATION = "8 GPUs x 4 clips emulated on 1 device(s): 4 clips per process"
ERROR = "non-finite training loss (nan) at global step 12"
REFERENCE = {"source": "Wu & He 2018, Table 8",
             "cells": {"bn-8": {"video_top1": 73.3, "video_top5": 90.7},
                       "bn-4": {"video_top1": 72.1, "video_top5": 90.0},
                       "gn-8": {"video_top1": 73.0, "video_top5": 90.6},
                       "gn-4": {"video_top1": 72.8, "video_top5": 90.6},
                       "bn-2": {"video_top1": 70.0}}}  # not in the grid: ignored, with a note
# (norm, clips, seed) -> video top-1, video top-5, clip top-1
RESULTS = {("bn", "8", 0): (73.0, 90.5, 68.0), ("bn", "8", 1): (73.4, 90.9, 68.6),
           ("gn", "8", 0): (74.0, 91.0, 69.0), ("gn", "8", 1): (74.6, 91.4, 69.4),
           ("bn", "4", 0): (70.1, 89.0, 66.0), ("gn", "4", 0): (74.2, 91.3, 69.1)}


def write_metrics_csv(run_dir: Path, val_top1: list[float], resumed_epoch: int | None = None) -> None:
    """A Lightning-like metrics.csv: a train row then a val row (val/top1 a fraction) per epoch."""
    lines = ["epoch,step,train/loss,val/loss,val/top1,val/top5"]
    for epoch, top1 in enumerate(val_top1):
        lines += [f"{epoch},{10 * epoch + 9},2.5,,,", f"{epoch},{10 * epoch + 9},,1.9,{top1},0.9"]
        if epoch == resumed_epoch:  # logged again after a resume: the later value counts
            lines.append(f"{epoch},{10 * epoch + 9},,1.8,{top1 + 0.05},0.9")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")


def make_cells(root: Path) -> list[dict]:
    cells = []
    for norm in AXES["norm"]:
        for clips in AXES["clips_per_gpu"]:
            for seed in (0, 1):
                run_dir = root / f"{norm}-{clips}" / f"seed{seed}"
                run_dir.mkdir(parents=True)
                cell = {"labels": {"norm": norm, "clips_per_gpu": clips}, "seed": seed, "status": "done",
                        "run_dir": str(run_dir), "error": None, "emulated": False, "metrics": None}
                result = RESULTS.get((norm, clips, seed))
                if result is not None:
                    v1, v5, c1 = result
                    cell["metrics"] = {"video_top1": v1, "video_top5": v5, "clip_top1": c1, "clip_top5": c1 + 20,
                                       "mean_class_accuracy": v1 - 1}
                    if (norm, clips) != ("gn", "4"):
                        write_metrics_csv(run_dir, [0.3 + 0.1 * seed, 0.5, 0.6], resumed_epoch=1)
                elif clips == "4" and norm == "bn":
                    cell.update(status="failed", error=ERROR)
                    (run_dir / "fit.log").write_text(ERROR + "\n")
                else:
                    cell["status"] = "missing"
                if (norm, clips) == ("bn", "4"):
                    cell["emulated"] = EMULATION
                if (norm, clips, seed) == ("gn", "8", 1):
                    cell["partial"] = True
                cells.append(cell)
    return cells


@pytest.fixture
def written(tmp_path):
    cells = make_cells(tmp_path / "runs")
    report = build_report("bn vs gn", AXES, cells, REFERENCE)
    markdown = write_report(tmp_path / "out", report)
    return tmp_path / "out", report, markdown


def test_report_json_round_trips_the_schema(written):
    out, report, markdown = written
    data = json.loads((out / "report.json").read_text())
    assert data == {**report, "plots": ["accuracy_vs_clips_per_gpu.png", "val_curves.png"]}
    assert set(data) == {"name", "axes", "cells", "reference", "plots"}
    assert data["axes"] == AXES and data["reference"] == REFERENCE and len(data["cells"]) == 8
    for cell in data["cells"]:
        assert {"labels", "seed", "status", "run_dir", "error", "emulated", "metrics"} <= set(cell)
    assert (out / "report.md").read_text() == markdown


def test_markdown_tables_gap_and_marks(written):
    _, _, md = written
    assert md.startswith("# bn vs gn\n")
    assert "Seeds: 0, 1. 4 cells, 8 runs: 6 done, 1 failed, 1 missing." in md
    assert "| norm | clips_per_gpu 8 | clips_per_gpu 4 |" in md
    assert "| bn | 73.2 ± 0.3 / 90.7 ± 0.3 (n=2) | 70.1 / 89.0 (n=1)* |" in md  # * emulated
    assert "| gn | 74.3 ± 0.4 / 91.2 ± 0.3 (n=2)† | 74.2 / 91.3 (n=1) |" in md  # † partial seed
    assert "| gap bn − gn | −1.1 / −0.5 | −4.1 / −2.3 |" in md
    assert f"`*` emulated: {EMULATION} (bn-4)" in md
    assert "`†` partial:" in md and "gn-8 (seed 1)" in md
    clip = md[md.index("## Clip-level top-1"):]
    assert "| bn | 68.3 ± 0.4 (n=2) | 66.0 (n=1)* |" in clip
    assert "| gap bn − gn | −0.9 | −3.1 |" in clip


def test_reference_table_and_differences(written):
    _, _, md = written
    published = md[md.index("## Published: Wu & He 2018, Table 8"):]
    assert "| bn | 73.3 / 90.7 | 72.1 / 90.0 |" in published
    assert "| gap bn − gn | +0.3 / +0.1 | −0.7 / −0.6 |" in published
    measured = published[published.index("## Measured − published"):]
    assert "| bn | −0.1 / 0.0 | −2.0 / −1.0 |" in measured
    assert "| gn | +1.3 / +0.6 | +1.4 / +0.7 |" in measured
    assert "not in this grid (ignored): bn-2" in md


def test_failed_and_missing_runs_listed(written, tmp_path):
    _, _, md = written
    failed = md[md.index("## Failed runs"):]
    run_dir = tmp_path / "runs" / "bn-4" / "seed1"
    assert f"- bn-4 seed 1: {ERROR}" in failed
    assert f"run dir: {run_dir}; log: {run_dir / 'fit.log'}" in failed
    assert "Not run (or no results yet): gn-4 seed 1." in md


def test_plots_are_pngs(written):
    out, _, md = written
    for name in ("accuracy_vs_clips_per_gpu.png", "val_curves.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000, name
        assert f"- {name}" in md


def test_read_val_curve_percent_last_value_per_epoch(tmp_path):
    write_metrics_csv(tmp_path, [0.25, 0.5], resumed_epoch=1)
    assert read_val_curve(tmp_path / "metrics.csv") == [(0, 25.0), (1, pytest.approx(55.0))]
    (tmp_path / "metrics.csv").write_text("epoch,step,train/loss\n0,9,2.5\n")  # validation off
    assert read_val_curve(tmp_path / "metrics.csv") == []
    (tmp_path / "metrics.csv").write_text("epoch,step,val/top1\n0,9,oops\n")
    with pytest.raises(ValueError, match="metrics.csv"):
        read_val_curve(tmp_path / "metrics.csv")


def test_single_axis_and_no_curves(tmp_path):
    cells = [{"labels": {"norm": n}, "seed": 0, "status": s, "run_dir": str(tmp_path / n), "error": None,
              "emulated": False, "metrics": m}
             for n, s, m in (("bn", "done", {"video_top1": 70.0, "video_top5": 89.0}), ("gn", "missing", None))]
    md = write_report(tmp_path / "out", build_report("one axis", {"norm": ["bn", "gn"]}, cells))
    assert "| norm | video top-1 / top-5 |" in md
    assert "| bn | 70.0 / 89.0 (n=1) |" in md and "| gn | missing |" in md
    assert "| gap bn − gn | — |" in md and "## Published" not in md
    assert "val_curves.png not drawn" in md
    assert (tmp_path / "out" / "accuracy.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((tmp_path / "out" / "report.json").read_text())["plots"] == ["accuracy.png"]


def test_three_axes_headers(tmp_path):
    axes = {"norm": ["bn", "gn"], "clips_per_gpu": ["2", "8"], "frames": ["32"]}
    cells = [{"labels": {"norm": "gn", "clips_per_gpu": "2", "frames": "32"}, "seed": 0, "status": "failed",
              "run_dir": str(tmp_path / "r"), "error": "boom\nline 2", "emulated": True, "metrics": None},
             {"labels": {"norm": "gn", "clips_per_gpu": "8", "frames": "32"}, "seed": 0, "status": "done",
              "run_dir": str(tmp_path / "r"), "error": None, "emulated": False, "metrics": {"video_top1": 71.0},
              "same_as": "bn-8-32"}]  # the runner's note: reported from an identical cell's run
    md = write_report(tmp_path / "out", build_report("three", axes, cells))
    assert "| norm | clips_per_gpu=2, frames=32 | clips_per_gpu=8, frames=32 |" in md
    assert "| gn | failed | 71.0 / — (n=1) |" in md and "| bn | missing | missing |" in md
    assert "reported from one run: gn-8-32 seed 0 = bn-8-32." in md
    assert "- gn-2-32 seed 0: boom\n    line 2\n" in md and "fit.log (not found)" in md
    assert (tmp_path / "out" / "accuracy_vs_clips_per_gpu.png").is_file()


def test_build_report_rejects_cells_off_the_grid():
    cell = {"labels": {"norm": "ln"}, "seed": 0, "status": "done", "run_dir": "x", "error": None,
            "emulated": False, "metrics": {}}
    with pytest.raises(ValueError, match="do not match the axes"):
        build_report("x", {"norm": ["bn", "gn"]}, [cell])
    with pytest.raises(ValueError, match="status"):
        build_report("x", {"norm": ["bn"]}, [{**cell, "labels": {"norm": "bn"}, "status": "ok"}])
