"""Video-level aggregation and metrics on hand-made logits."""
import csv
import json

import pytest
import torch

from vidgn.evaluation.aggregate import ViewOutputs, aggregate_videos, compute_metrics
from vidgn.evaluation.report import write_predictions, write_summary


def views(rows):
    """rows: (video, clip, crop, label, logits)"""
    return ViewOutputs(
        logits=torch.tensor([r[4] for r in rows], dtype=torch.float),
        label=torch.tensor([r[3] for r in rows]),
        video_index=torch.tensor([r[0] for r in rows]),
        clip_index=torch.tensor([r[1] for r in rows]),
        crop_index=torch.tensor([r[2] for r in rows]),
    )


def test_video_softmax_average_beats_clip_votes():
    # Video 0 (label 0): two views weakly wrong, one view confidently right. Each view alone gets
    # 1/3 right; the averaged softmax gets the video right. Video 1 (label 1): every view right.
    v = views([
        (0, 0, 0, 0, [0.0, 0.5, 0.0]),
        (0, 1, 0, 0, [0.0, 0.5, 0.0]),
        (0, 2, 0, 0, [8.0, 0.0, 0.0]),
        (1, 0, 0, 1, [0.0, 3.0, 0.0]),
        (1, 1, 0, 1, [0.0, 3.0, 0.0]),
        (1, 2, 0, 1, [0.0, 3.0, 0.0]),
    ])
    summary, videos = compute_metrics(v, num_classes=3)
    assert summary.clip_top1 == pytest.approx(100 * 4 / 6)
    assert summary.video_top1 == pytest.approx(100.0)
    assert summary.num_videos == 2 and summary.num_views == 6
    expected = torch.softmax(v.logits[:3], 1).mean(0)
    torch.testing.assert_close(videos.probs[0], expected)
    assert videos.num_views.tolist() == [3, 3]


def test_duplicate_views_from_padded_sampler_are_counted_once():
    v = views([(0, 0, 0, 0, [2.0, 0.0]), (0, 0, 0, 0, [2.0, 0.0]), (0, 1, 0, 0, [0.0, 1.0])])
    videos = aggregate_videos(v)
    assert videos.num_views.tolist() == [2]
    expected = torch.softmax(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), 1).mean(0)
    torch.testing.assert_close(videos.probs[0], expected)


def test_left_out_videos_are_excluded_from_clip_and_video_metrics():
    v = views([(0, 0, 0, 0, [5.0, 0.0]), (1, 0, 0, 0, [0.0, 5.0]), (2, 0, 0, 1, [0.0, 5.0])])
    summary, videos = compute_metrics(v, num_classes=2, exclude={1})
    assert videos.video_index.tolist() == [0, 2]
    assert summary.clip_top1 == 100.0 and summary.video_top1 == 100.0 and summary.num_videos == 2


def test_top5_and_mean_class_accuracy():
    # 6 classes; video 0 label 4 is ranked 5th -> top-5 hit, top-1 miss. Video 1, 2 of class 0 right.
    v = views([
        (0, 0, 0, 4, [6.0, 5.0, 4.0, 3.0, 2.0, 1.5]),
        (1, 0, 0, 0, [9.0, 0, 0, 0, 0, 0]),
        (2, 0, 0, 0, [9.0, 0, 0, 0, 0, 0]),
    ])
    summary, _ = compute_metrics(v, num_classes=6)
    assert summary.video_top1 == pytest.approx(200 / 3)
    assert summary.video_top5 == pytest.approx(100.0)
    # class 0: 2/2 right, class 4: 0/1 -> mean 50%, unlike the 66.7% overall accuracy
    assert summary.mean_class_accuracy == pytest.approx(50.0)


def test_report_files(tmp_path):
    v = views([(0, 0, 0, 1, [0.0, 2.0, 1.0]), (1, 0, 0, 2, [0.0, 2.0, 1.0])])
    summary, videos = compute_metrics(v, num_classes=3, exclude=set())
    write_predictions(tmp_path / "p.csv", videos, ["a b (c)/x.mp4", "y.webm"], ["zero", "one", "two"])
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert rows[0]["video"] == "a b (c)/x.mp4" and rows[0]["pred_1_name"] == "one" and rows[0]["label_name"] == "one"
    assert rows[1]["pred_2"] == "2"
    write_summary(tmp_path / "s.json", summary, [{"path": "bad.mp4", "reason": "truncated"}])
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["num_videos_left_out"] == 1 and data["left_out"][0]["path"] == "bad.mp4"
    assert data["video_top1"] == 50.0


def test_unlabeled_views_get_scores_but_no_accuracy():
    v = views([(0, 0, 0, -1, [1.0, 0.0]), (1, 0, 0, -1, [0.0, 1.0])])
    summary, videos = compute_metrics(v, num_classes=2)
    assert summary.num_videos == 2 and videos.probs.argmax(1).tolist() == [0, 1]
    assert summary.video_top1 != summary.video_top1  # NaN: nothing to compare with
