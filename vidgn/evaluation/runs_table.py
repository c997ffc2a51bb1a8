"""`vidgn summarize RUN_DIR...`: one table of the evaluation summaries of several runs."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

COLUMNS = ("run", "norm", "frames", "clips/gpu", "clip top-1", "clip top-5", "video top-1", "video top-5",
           "mean class", "videos", "left out")


def run_row(run_dir: Path, split: str = "test") -> list[str]:
    summary_path = run_dir / f"{split}_summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path} not found: run `vidgn test` for {run_dir} first")
    s = json.loads(summary_path.read_text())
    config = {}
    for name in ("config.yaml", f"config_{split}.yaml"):
        if (run_dir / name).is_file():
            config = yaml.safe_load((run_dir / name).read_text()) or {}
    net = ((config.get("model") or {}).get("network") or {}).get("init_args") or {}
    data = config.get("data") or {}
    frames = f"{data.get('num_frames', '?')}x{data.get('sampling_rate', '?')}"

    def pct(key: str) -> str:
        return "-" if s.get(key) is None else f"{s[key]:.1f}"

    return [run_dir.name, str(net.get("norm", "?")), frames, str(data.get("clips_per_gpu", "?")),
            pct("clip_top1"), pct("clip_top5"), pct("video_top1"), pct("video_top5"), pct("mean_class_accuracy"),
            str(s.get("num_videos", "?")), str(s.get("num_videos_left_out", "?"))]


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("summarize", help="table of the test summaries of run directories")
    p.add_argument("runs", nargs="+", type=Path, help="run directories (trainer.default_root_dir of each run)")
    p.add_argument("--split", default="test", choices=["test", "predict"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        rows = [run_row(r, args.split) for r in args.runs]
    except FileNotFoundError as e:
        print(f"vidgn summarize: {e}")
        return 1
    print(markdown_table(rows))
    return 0
