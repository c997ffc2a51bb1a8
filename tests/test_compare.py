"""`vidgn compare`: a tiny grid (2 norms x 2 clips settings, 1 seed, 1 epoch on the suite's tiny
videos) through the CLI: report files, re-runs that skip finished cells, --collect, --dry-run, a
failing cell, identical cells run once, emulation, and the submitit launcher (local executor)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vidgn.cli import main
from vidgn.comparison.plan import plan_emulation

REPO = Path(__file__).resolve().parents[1]


def tiny_sets(ds) -> list[str]:
    sets = {"data.data_root": ds.root, "data.train_list": ds.train_list, "data.val_list": ds.val_list,
            "data.test_list": ds.val_list, "data.num_workers": 0, "data.num_test_clips": 1,
            "data.num_test_crops": 1, "trainer.max_epochs": 1, "trainer.log_every_n_steps": 1}
    return [arg for k, v in sets.items() for arg in ("--set", f"{k}={v}")]


def write_grid(tmp_path, axes, name="tiny", **extra) -> Path:
    grid = {"name": name, "configs": [str(REPO / "configs/synthetic/base.yaml")], "axes": axes, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


NORMS = {"bn": {"model.network.init_args.norm": "bn"}, "gn": {"model.network.init_args.norm": "gn"}}
CLIPS = {"4": {"data.clips_per_gpu": 4}, "2": {"data.clips_per_gpu": 2}}


def compare(grid, out, ds, *extra) -> int:
    return main(["compare", str(grid), "--output-dir", str(out), *tiny_sets(ds), *extra])


def test_grid_runs_every_cell_reports_and_skips_finished_ones(tmp_path, synthetic_dataset, capsys):
    grid = write_grid(tmp_path, {"norm": NORMS, "clips_per_gpu": CLIPS},
                      reference={"source": "made up", "cells": {"bn-4": {"video_top1": 50.0, "video_top5": 90.0}}})
    out = tmp_path / "out"
    assert compare(grid, out, synthetic_dataset) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["name"] == "tiny" and report["axes"] == {"norm": ["bn", "gn"], "clips_per_gpu": ["4", "2"]}
    assert [(c["labels"], c["status"]) for c in report["cells"]] == [
        ({"norm": n, "clips_per_gpu": c}, "done") for n in ("bn", "gn") for c in ("4", "2")]
    for cell in report["cells"]:
        run_dir = Path(cell["run_dir"])
        assert run_dir == out / f"{cell['labels']['norm']}-{cell['labels']['clips_per_gpu']}" / "seed0"
        summary = json.loads((run_dir / "test_summary.json").read_text())  # the same files as vidgn test
        assert cell["metrics"]["video_top1"] == summary["video_top1"]
        assert (run_dir / "checkpoints/last.ckpt").is_file() and (run_dir / "config.yaml").is_file()
        assert cell["emulated"] is False
    md = (out / "report.md").read_text()
    assert "# tiny" in md and "made up" in md and md.strip() in printed
    pngs = list(out.glob("*.png"))
    assert len(pngs) >= 2 and all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    assert "[4/4] gn-2 seed0: done in" in printed

    logs = {p: p.stat().st_size for p in out.glob("*/seed0/fit.log")}
    assert compare(grid, out, synthetic_dataset) == 0  # finished cells are skipped
    assert {p: p.stat().st_size for p in out.glob("*/seed0/fit.log")} == logs
    assert compare(grid, out, synthetic_dataset, "--collect") == 0
    assert json.loads((out / "report.json").read_text())["cells"] == report["cells"]


def test_dry_run_runs_nothing_and_collect_reports_missing_cells(tmp_path, synthetic_dataset, capsys):
    grid = write_grid(tmp_path, {"norm": NORMS})
    out = tmp_path / "out"
    assert compare(grid, out, synthetic_dataset, "--dry-run") == 0
    printed = capsys.readouterr().out
    assert printed.count("vidgn fit --config") == 2 and "--ckpt_path last" in printed
    assert not out.exists()
    assert compare(grid, out, synthetic_dataset, "--collect") == 1  # nothing finished yet
    assert {c["status"] for c in json.loads((out / "report.json").read_text())["cells"]} == {"missing"}


def test_a_failing_cell_is_reported_and_the_others_run(tmp_path, synthetic_dataset):
    axes = {"net": {"ok": {}, "nan": {"model.network": "tests.helpers.NaNAfterSteps",
                                          "model.network.init_args.nan_from": 1},
                    "typo": {"model.network.init_args.norm": "batchnorm2d"}}}
    out = tmp_path / "out"
    assert compare(write_grid(tmp_path, axes), out, synthetic_dataset, "--set", "trainer.limit_val_batches=0") == 1
    cells = {c["labels"]["net"]: c for c in json.loads((out / "report.json").read_text())["cells"]}
    assert cells["ok"]["status"] == "done"
    assert cells["nan"]["status"] == "failed" and "non-finite training loss" in cells["nan"]["error"]
    assert cells["typo"]["status"] == "failed" and "batchnorm2d" in cells["typo"]["error"]
    assert "failed" in (out / "report.md").read_text()


def test_identical_cells_run_once(tmp_path, synthetic_dataset):
    axes = {"norm": {"gn": NORMS["gn"], "group_norm": {"model.network.init_args.norm": "gn"}}}
    out = tmp_path / "out"
    assert compare(write_grid(tmp_path, axes), out, synthetic_dataset, "--set", "trainer.limit_val_batches=0") == 0
    cells = json.loads((out / "report.json").read_text())["cells"]
    assert [c["status"] for c in cells] == ["done", "done"]
    assert cells[0]["run_dir"] == cells[1]["run_dir"] and cells[1]["same_as"] == "gn"
    assert not (out / "group_norm-").exists() and not (out / "group_norm").exists()


def test_emulation_bookkeeping():
    # 8 GPUs x 4 clips on one device: 32 clips per step, BN statistics over 4-clip groups
    e = plan_emulation(8, 4, 1, "bn")
    assert (e.per_process, e.accumulate, e.bn_clips) == (32, 1, 4)
    e = plan_emulation(8, 8, 2, "bn", max_clips_per_device=16)  # 32 per device do not fit: accumulate 2
    assert (e.per_process, e.accumulate, e.bn_clips) == (16, 2, 8)
    assert plan_emulation(8, 4, 1, "gn").bn_clips is None  # GN needs the batch arithmetic only
    assert plan_emulation(2, 4, 2, "bn").bn_clips is None  # one paper GPU per device: plain BN
    with pytest.raises(ValueError, match="do not split evenly"):
        plan_emulation(3, 1, 2, "bn")


def test_emulated_cell_takes_the_steps_and_bn_groups_of_the_real_setting(tmp_path, synthetic_dataset):
    """2 GPUs x 2 clips on one process: 4 clips per step, BN over groups of 2 clips, and as many
    optimizer steps as 2 DDP processes of 2 clips (the sub-BN = DDP equivalence itself is
    tests/test_models.py::test_bn_clips_equals_two_process_ddp)."""
    import torch

    out = tmp_path / "out"
    grid = write_grid(tmp_path, {"norm": {"bn": NORMS["bn"]}})
    assert compare(grid, out, synthetic_dataset, "--set", "data.clips_per_gpu=2", "--emulate-gpus", "2",
                   "--devices", "1", "--set", "trainer.limit_val_batches=0") == 0
    (cell,) = json.loads((out / "report.json").read_text())["cells"]
    assert "2 GPUs x 2 clips emulated on 1 device" in cell["emulated"]
    config = yaml.safe_load((out / "bn/seed0/config.yaml").read_text())
    assert config["data"]["clips_per_gpu"] == 4 and config["model"]["network"]["init_args"]["bn_clips"] == 2
    n = len([ln for ln in Path(synthetic_dataset.train_list).read_text().splitlines() if ln.strip()])
    ddp_steps = -(-n // 2) // 2  # each of 2 processes: its half of the list, in batches of 2
    last = torch.load(out / "bn/seed0/checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == ddp_steps


def test_submitit_launcher_runs_cells_as_jobs(tmp_path, synthetic_dataset):
    out = tmp_path / "out"
    grid = write_grid(tmp_path, {"norm": {"gn": NORMS["gn"]}})
    assert compare(grid, out, synthetic_dataset, "--launcher", "submitit-local",
                   "--set", "trainer.limit_val_batches=0") == 0
    (cell,) = json.loads((out / "report.json").read_text())["cells"]
    assert cell["status"] == "done" and (out / "gn/seed0/test_summary.json").is_file()
    assert list((out / ".submitit").iterdir())  # the job's own folder (logs, pickles)


def test_clips_per_step_holds_the_batch_and_runs_gn_once(tmp_path, synthetic_dataset, capsys):
    """clips_per_step S: each cell is S/c GPUs x c clips on one device: S clips per step, BN over c
    clips, and GN, the same computation for every c, planned as one run."""
    grid = write_grid(tmp_path, {"norm": NORMS, "clips_per_gpu": CLIPS}, clips_per_step=4)
    assert compare(grid, tmp_path / "out", synthetic_dataset, "--dry-run") == 0
    printed = capsys.readouterr().out
    assert printed.count("vidgn fit ") == 3  # bn-4, bn-2, gn-4 (gn-2 is gn-4)
    assert "# gn-2 seed0 (2 GPUs x 2 clips emulated on 1 device(s): 4 clips per process): same config as gn-4" in printed
    assert "--model.network.init_args.bn_clips 2" in printed and "--data.clips_per_gpu 4" in printed


def test_a_run_of_another_config_is_never_reported_as_the_cell(tmp_path, synthetic_dataset):
    """A smoke run with --set into the same output directory must not pass for the real grid's cell."""
    grid = write_grid(tmp_path, {"norm": {"gn": NORMS["gn"]}})
    out = tmp_path / "out"
    no_val = ("--set", "trainer.limit_val_batches=0")
    assert compare(grid, out, synthetic_dataset, *no_val) == 0
    assert compare(grid, out, synthetic_dataset, *no_val, "--set", "model.lr=0.01") == 1
    (cell,) = json.loads((out / "report.json").read_text())["cells"]
    assert cell["status"] == "failed" and "another config" in cell["error"] and cell["metrics"] is None
    assert compare(grid, out, synthetic_dataset, *no_val, "--collect", "--set", "model.lr=0.01") == 1


def test_label_names_that_would_collide_are_refused(tmp_path, synthetic_dataset, capsys):
    grid = write_grid(tmp_path, {"a": {"x-y": {}, "x": {}}, "b": {"z": {}, "y-z": {}}})
    assert compare(grid, tmp_path / "out", synthetic_dataset, "--dry-run") == 2
    assert "would both be named 'x-y-z'" in capsys.readouterr().err


def test_emulation_refuses_bn_groups_that_do_not_fit_a_device():
    with pytest.raises(ValueError, match="cannot hold whole BN groups of 8 clips; use fewer devices"):
        plan_emulation(1, 8, 2, "bn")  # 8 clips over 2 devices: 4 per process, BN needs groups of 8
    with pytest.raises(ValueError, match="cannot hold whole BN groups of 2 clips"):
        plan_emulation(3, 2, 2, "bn")  # 3 clips per process
    assert plan_emulation(1, 8, 2, "gn").per_process == 4  # GN does not care


def test_a_compare_stopped_by_an_error_stops_its_running_cell(tmp_path, monkeypatch):
    # Anything but Ctrl-C that ends `vidgn compare` while a cell trains (a timeout in a wrapper, an
    # exception from a signal handler) must stop the cell too, not leave it training unseen. The
    # cell is a stand-in process that records its pid and waits, as a long fit would.
    import os
    import signal
    import time

    from vidgn.comparison import runner

    pid_file = tmp_path / "pid"
    cell = tmp_path / "cell.sh"
    cell.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 120\n")
    cell.chmod(0o755)
    monkeypatch.setattr(runner.sys, "executable", str(cell))

    def stop(signum, frame):
        raise RuntimeError("stopped from outside")

    old = signal.signal(signal.SIGALRM, stop)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(RuntimeError, match="stopped from outside"):
            runner.run_command(["fit"], tmp_path / "fit.log")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    pid = int(pid_file.read_text())
    time.sleep(0.1)
    with pytest.raises(ProcessLookupError):  # reaped by run_command: gone
        os.kill(pid, 0)
