"""`vidgn compare GRID.yaml`: a grid of configs (norm x clips per GPU x ...) run with seeds, fit and
test each, and report the comparison as GN paper Table 8 (report.md, report.json, plots).

    grid.py     the grid file and its cells
    plan.py     each cell x seed's arguments, resolved configs, emulation of N GPUs x c clips
    runner.py   fit + test per run: here (local) or as submitit jobs (slurm)
    report.py   report.json, report.md; plots.py: the figures

Import-light: `vidgn --help` must not import torch or Lightning.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RESULT_KEYS = ("video_top1", "video_top5", "clip_top1", "clip_top5", "mean_class_accuracy")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="run a grid of configs with seeds and report the comparison (GN paper Table 8)",
        description=__doc__.split("\n\n")[0])
    p.add_argument("grid", help="grid file (configs/compare/*.yaml)")
    p.add_argument("--output-dir", help="where the runs and the report go (default: the grid's output_dir, "
                                        "else runs/compare/NAME)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override for every cell, e.g. --set trainer.max_epochs=2 (repeatable)")
    p.add_argument("--seeds", help="comma-separated seeds instead of the grid's, e.g. 0,1")
    p.add_argument("--only", action="append", default=[], metavar="AXIS=LABEL[,LABEL]",
                   help="run only these labels of an axis (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print each run's commands, run nothing")
    p.add_argument("--collect", action="store_true", help="run nothing; gather finished runs into the report")
    p.add_argument("--launcher", choices=("local", "slurm", "submitit-local"), default="local",
                   help="local: one run after the other here; slurm: one submitit job per run (requeued after "
                        "preemption); submitit-local: submitit's local executor (the slurm path, no cluster)")
    p.add_argument("--emulate-gpus", type=int, metavar="N",
                   help="run each cell, written for N GPUs x data.clips_per_gpu clips, on the devices present "
                        "(N*c/devices clips per process, BN over c-clip groups)")
    p.add_argument("--clips-per-step", type=int, metavar="S",
                   help="instead of --emulate-gpus: each cell is S/c GPUs x its c clips (fixed total batch S; BN "
                        "statistics over c clips)")
    p.add_argument("--devices", type=int, help="devices present for --emulate-gpus (default: CUDA GPUs, else 1)")
    p.add_argument("--max-clips-per-device", type=int, metavar="M",
                   help="with --emulate-gpus: accumulate gradients when a process would hold more than M clips")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vidgn.comparison.grid import GridError, load_grid, parse_assignments

    try:
        grid = load_grid(args.grid)
        only: dict[str, list[str]] = {}
        for axis, labels in parse_assignments(args.only, "--only"):
            only.setdefault(axis, []).extend(lb.strip() for lb in labels.split(",") if lb.strip())
        sets = parse_assignments(args.set, "--set")
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else grid.seeds
        cells = grid.cells(only)
    except (GridError, ValueError) as e:
        print(f"vidgn compare: error: {e}", file=__import__("sys").stderr)
        return 2
    output_dir = Path(args.output_dir or grid.output_dir or Path("runs/compare") / grid.name)
    return _compare(args, grid, cells, seeds, sets, output_dir)


def _compare(args, grid, cells, seeds, sets, output_dir: Path) -> int:
    from vidgn.comparison.plan import default_devices, plan_runs

    emulate = args.emulate_gpus or grid.emulate_gpus
    per_step = args.clips_per_step or grid.clips_per_step
    devices = args.devices or (default_devices() if emulate or per_step else None)
    runs = plan_runs(grid, cells, seeds, output_dir, sets, emulate, devices, args.max_clips_per_device, per_step)
    first: dict[str, int] = {}  # config key -> the run that does the work for every identical cell
    for i, r in enumerate(runs):
        if r.error is None:
            first.setdefault(r.config_key, i)
    say = _progress(len(first))
    if args.dry_run:
        for i, r in enumerate(runs):
            head = f"# {r.cell.name} seed{r.seed}" + (f" ({r.emulation.describe()})" if r.emulation else "")
            if r.error:
                print(f"{head}: cannot run: {r.error}")
            elif first[r.config_key] != i:
                print(f"{head}: same config as {runs[first[r.config_key]].cell.name}, reported from its run")
            else:
                print(f"{head}\nvidgn fit {' '.join(r.args)}\nvidgn test {' '.join(r.args)} --ckpt_path last")
        return 0
    from vidgn.comparison.report import build_report, write_report
    from vidgn.comparison.runner import Outcome, check_config_key, fit_and_test, submit

    outcomes: dict[int, Outcome] = {i: Outcome("failed", r.error) for i, r in enumerate(runs) if r.error}
    for i in first.values():  # runs of another config in these directories are not this grid's results
        stale = check_config_key(runs[i], write=False)
        if stale:
            outcomes[i] = Outcome("failed", stale, stale=True)
    todo = sorted(set(first.values()))
    if not args.collect and args.launcher == "local":
        for n, i in enumerate(todo, 1):
            r = runs[i]
            say(n, f"{r.cell.name} seed{r.seed}: fit + test -> {r.run_dir}")
            outcomes[i] = fit_and_test(r)
            say(n, f"{r.cell.name} seed{r.seed}: {_result_line(r.run_dir, outcomes[i])}")
    elif not args.collect:
        cluster = "local" if args.launcher == "submitit-local" else "slurm"
        for j, outcome in submit([runs[i] for i in todo], output_dir, cluster, lambda m: say(0, m)).items():
            outcomes[todo[j]] = outcome
    cells_out = []
    for i, r in enumerate(runs):
        worker = first.get(r.config_key, i) if r.error is None else i
        cells_out.append(_cell_entry(runs[worker], r, outcomes.get(worker), collect=args.collect))
    report = build_report(grid.name, {a: list(v) for a, v in grid.axes.items()}, cells_out, grid.reference)
    print(write_report(output_dir, report))
    print(f"report: {output_dir / 'report.md'}, {output_dir / 'report.json'}")
    return 0 if all(c["status"] == "done" for c in cells_out) else 1


def _progress(total: int):
    start = time.monotonic()

    def say(n: int, message: str) -> None:
        elapsed = time.strftime("%H:%M:%S", time.gmtime(time.monotonic() - start))
        print(f"[{elapsed}] [{n}/{total}] {message}" if n else f"[{elapsed}] {message}", flush=True)

    return say


def _summary(run_dir: Path) -> dict | None:
    path = run_dir / "test_summary.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None


def _result_line(run_dir: Path, outcome) -> str:
    s = _summary(run_dir)
    if outcome.status != "done" or s is None:
        return f"FAILED after {outcome.seconds:.0f} s: {outcome.error} (log: {run_dir}/fit.log, test.log)"
    partial = " (PARTIAL: too many videos left out)" if s.get("complete") is False else ""
    return (f"done in {outcome.seconds:.0f} s: video top-1 {s['video_top1']:.1f}, top-5 {s['video_top5']:.1f}, "
            f"clip top-1 {s['clip_top1']:.1f}{partial}")


def _cell_entry(worker, run, outcome, collect: bool) -> dict:
    """The report.json entry of `run`, whose results come from `worker` (itself, or an identical cell)."""
    s = _summary(worker.run_dir)
    if outcome is not None and outcome.stale:
        s = None  # a run of another config: its numbers are not this cell's
    if s is not None:
        status, error = "done", None
    elif outcome is not None:
        status, error = outcome.status, outcome.error
    else:
        status, error = "missing", ("not run yet" if collect else None)
    entry = {"labels": dict(run.cell.labels), "seed": run.seed, "status": status, "run_dir": str(worker.run_dir),
             "error": error, "emulated": run.emulation.describe() if run.emulation else False,
             "metrics": {k: s.get(k) for k in RESULT_KEYS} if s is not None else None}
    if s is not None and s.get("complete") is False:
        entry["partial"] = True
    if worker is not run:
        entry["same_as"] = worker.cell.name
    return entry
