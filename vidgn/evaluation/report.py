"""The evaluation report: per-video predictions (CSV) and a JSON summary in the run directory."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch

from vidgn.evaluation.aggregate import EvalSummary, VideoScores


def write_predictions(
    path: str | Path, videos: VideoScores, video_paths: Sequence[str], classes: Sequence[str], topk: int = 5
) -> Path:
    """One row per evaluated video: path as in the list, true label, top-k classes and scores."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    k = min(topk, videos.probs.shape[1]) if len(videos.video_index) else topk
    header = ["video", "label", "label_name", "num_views"]
    for i in range(1, k + 1):
        header += [f"pred_{i}", f"pred_{i}_name", f"score_{i}"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        if len(videos.video_index):
            scores, preds = videos.probs.topk(k, dim=1)
            for row, vid in enumerate(videos.video_index.tolist()):
                label = int(videos.label[row])
                out: list[Any] = [video_paths[vid], label, _name(classes, label), int(videos.num_views[row])]
                for score, pred in zip(scores[row].tolist(), preds[row].tolist()):
                    out += [pred, _name(classes, pred), f"{score:.6f}"]
                writer.writerow(out)
    return path


def write_summary(path: str | Path, summary: EvalSummary, left_out: list[dict[str, Any]], **extra: Any) -> Path:
    """JSON summary: metrics, counts, and every video left out (path and reason)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**asdict(summary), "num_videos_left_out": len(left_out), "left_out": left_out, **extra}
    path.write_text(json.dumps(_finite(data), indent=2) + "\n")
    return path


def _name(classes: Sequence[str], index: int) -> str:
    return classes[index] if 0 <= index < len(classes) else str(index)


def _finite(value: Any) -> Any:
    # JSON has no NaN; an empty evaluation reports null metrics rather than invalid JSON.
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value
