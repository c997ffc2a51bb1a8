"""Clip-level and video-level metrics from per-view logits.

A "view" is one (clip, crop) of one video. Clip-level metrics score every view alone. Video-level
metrics average the softmax over all views of a video (the GN paper's and Non-local's 10-clip testing,
here 10 clips x 3 crops by default) and score the average.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_accuracy


@dataclass
class ViewOutputs:
    """Per-view outputs gathered during evaluation (all CPU tensors, one row per view)."""

    logits: torch.Tensor  # (N, C)
    label: torch.Tensor  # (N,)
    video_index: torch.Tensor  # (N,)
    clip_index: torch.Tensor  # (N,)
    crop_index: torch.Tensor  # (N,)

    @staticmethod
    def cat(parts: list["ViewOutputs"], num_classes: int) -> "ViewOutputs":
        if not parts:
            empty = torch.zeros(0, dtype=torch.long)
            return ViewOutputs(torch.zeros(0, num_classes), empty, empty, empty, empty)
        return ViewOutputs(*(torch.cat([getattr(p, f) for p in parts]) for f in ViewOutputs.__dataclass_fields__))

    def deduplicated(self) -> "ViewOutputs":
        """Keep one row per (video, clip, crop): distributed samplers pad the last batch with repeats."""
        key = torch.stack([self.video_index, self.clip_index, self.crop_index], dim=1)
        _, inverse = torch.unique(key, dim=0, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1 if len(inverse) else 0,), len(inverse), dtype=torch.long)
        first = first.scatter_reduce(0, inverse, torch.arange(len(inverse)), reduce="amin")
        return ViewOutputs(*(getattr(self, f)[first] for f in ViewOutputs.__dataclass_fields__))


@dataclass
class VideoScores:
    video_index: torch.Tensor  # (V,)
    label: torch.Tensor  # (V,)
    probs: torch.Tensor  # (V, C) softmax averaged over the video's views
    num_views: torch.Tensor  # (V,)


def _kept(views: ViewOutputs, exclude: set[int]) -> ViewOutputs:
    """One row per view, without the views of the videos in `exclude`."""
    views = views.deduplicated()
    keep = torch.tensor([int(v) not in exclude for v in views.video_index], dtype=torch.bool)
    return ViewOutputs(*(getattr(views, f)[keep] for f in ViewOutputs.__dataclass_fields__))


def _video_scores(views: ViewOutputs) -> VideoScores:
    video_ids, inverse = torch.unique(views.video_index, return_inverse=True)  # sorted video indices
    probs = F.softmax(views.logits.float(), dim=1)
    summed = torch.zeros(len(video_ids), probs.shape[1]).index_add_(0, inverse, probs)
    counts = torch.zeros(len(video_ids), dtype=torch.long).index_add_(0, inverse, torch.ones_like(inverse))
    video_labels = torch.zeros(len(video_ids), dtype=torch.long).scatter_(0, inverse, views.label)
    return VideoScores(video_ids, video_labels, summed / counts.clamp(min=1).unsqueeze(1), counts)


def aggregate_videos(views: ViewOutputs, exclude: set[int] = frozenset()) -> VideoScores:
    """Average softmax over each video's views; videos in `exclude` are left out."""
    return _video_scores(_kept(views, exclude))


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int, num_classes: int) -> float:
    """Micro-averaged top-k accuracy in percent (k is capped at the number of classes)."""
    if len(labels) == 0:
        return float("nan")
    acc = multiclass_accuracy(scores, labels, num_classes=num_classes, top_k=min(k, num_classes), average="micro")
    return 100.0 * float(acc)


def mean_class_accuracy(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Top-1 accuracy averaged over the classes present in `labels`, in percent."""
    if len(labels) == 0:
        return float("nan")
    per_class = multiclass_accuracy(scores, labels, num_classes=num_classes, average=None)
    present = torch.bincount(labels, minlength=num_classes) > 0
    return 100.0 * float(per_class[present].mean())


@dataclass
class EvalSummary:
    clip_top1: float
    clip_top5: float
    video_top1: float
    video_top5: float
    mean_class_accuracy: float
    num_views: int
    num_videos: int
    views_per_video: dict[str, int] = field(default_factory=dict)  # min/max views seen per video


def compute_metrics(views: ViewOutputs, num_classes: int,
                    exclude: set[int] = frozenset()) -> tuple[EvalSummary, VideoScores]:
    """Clip- and video-level metrics, leaving out the videos in `exclude` from both.

    Views without labels (label -1, e.g. `vidgn predict` on an unlabeled list) get scores but no
    accuracy (NaN).
    """
    views = _kept(views, exclude)
    clip_logits, clip_labels = views.logits.float(), views.label
    videos = _video_scores(views)
    labeled = bool((clip_labels >= 0).all())

    def acc(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
        return topk_accuracy(scores, labels, k, num_classes) if labeled else float("nan")

    summary = EvalSummary(
        clip_top1=acc(clip_logits, clip_labels, 1),
        clip_top5=acc(clip_logits, clip_labels, 5),
        video_top1=acc(videos.probs, videos.label, 1),
        video_top5=acc(videos.probs, videos.label, 5),
        mean_class_accuracy=mean_class_accuracy(videos.probs, videos.label, num_classes) if labeled else float("nan"),
        num_views=len(views.label),
        num_videos=len(videos.video_index),
        views_per_video=(
            {"min": int(videos.num_views.min()), "max": int(videos.num_views.max())} if len(videos.num_views) else {}
        ),
    )
    return summary, videos
