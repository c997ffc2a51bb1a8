"""Shared session fixtures: tiny real encoded videos (PyAV-written H.264 mp4 and VP9 webm).

Generated once per test session, in a few seconds, and read-only for the tests: a test that needs
to change files must copy them first.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import vidgn  # noqa: F401  (before torch: sets GOMP_SPINCOUNT, see vidgn/__init__.py)
import torch

from vidgn.data.lists import write_list
from vidgn.tools.synthetic import SyntheticDataset, make_synthetic


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests with one torch thread: heavy conv tests ran ~8x slower with 2 OpenMP
    threads when the 2 cores were shared (threads spin-waiting on each other)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> SyntheticDataset:
    """4 classes ("moving left", "moving right", "orbiting (clockwise)", "orbiting
    (counter-clockwise)"), 3 train + 2 val videos per class (12 + 8), about 64x48 px (each side
    jittered by up to 10%, rounded to a multiple of 4), 2.0 s at 24/25/30 fps (48, 50 or 60 frames), 5 of the 20
    webm (VP9), the rest mp4 (H.264), seed 0. Lists train.txt / val.txt, classes.txt and
    synthetic.json (per-video fps, size, frames, codec) in `root`.
    """
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic(root, num_classes=4, train_per_class=3, val_per_class=2, width=64,
                          height=48, size_jitter=0.1, seconds=2.0, fps_choices=(24, 25, 30),
                          webm_fraction=0.25, seed=0)


@dataclass
class StampedVideos:
    """Frame-index-stamped videos (see `vidgn.tools.synthetic.read_frame_index`)."""

    root: Path  # data root; paths in `list_path` and `videos` are relative to it
    list_path: Path  # all.txt: every video, `path label`
    classes_file: Path  # classes.txt (2 classes)
    classes: list[str]
    videos: list[dict] = field(default_factory=list)  # path (relative), label, fps, frames, codec, width, height

    def by_frames(self) -> list[dict]:
        return sorted(self.videos, key=lambda v: v["frames"])


@pytest.fixture(scope="session")
def stamped_dataset(tmp_path_factory) -> StampedVideos:
    """Four stamped videos (every frame carries its index), about 64x48 px (jitter 10%):

    * short/...: 1.0 s, a webm at 24 fps (24 frames) and an mp4 at 30 fps (30 frames), both
      shorter than a 64-frame window;
    * long/...: 3.0 s, a webm at 25 fps (75 frames) and an mp4 at 30 fps (90 frames), long
      enough for a 64x1 window.

    `videos` holds each one's path, label, fps, frames, codec ("h264"/"vp9"), width, height;
    `by_frames()` sorts them shortest first.

    Listed together in `all.txt` (labels index the shared 2-class classes.txt).
    """
    root = tmp_path_factory.mktemp("stamped")
    parts = {
        "short": make_synthetic(root / "short", num_classes=2, train_per_class=1, val_per_class=0,
                                width=64, height=48, seconds=1.0, fps_choices=(24, 30),
                                webm_fraction=0.5, stamp_frame_index=True, seed=1),
        "long": make_synthetic(root / "long", num_classes=2, train_per_class=1, val_per_class=0,
                               width=64, height=48, seconds=3.0, fps_choices=(25, 30),
                               webm_fraction=0.5, stamp_frame_index=True, seed=2),
    }
    videos = []
    for name, ds in parts.items():
        meta = json.loads((ds.root / "synthetic.json").read_text())
        for v in meta["videos"]:
            videos.append({**v, "path": f"{name}/{v['path']}"})
    classes = parts["short"].classes
    assert classes == parts["long"].classes
    classes_file = root / "classes.txt"
    classes_file.write_text("".join(c + "\n" for c in classes))
    list_path = root / "all.txt"
    write_list(list_path, [(v["path"], v["label"]) for v in videos])
    return StampedVideos(root=root, list_path=list_path, classes_file=classes_file, classes=classes,
                         videos=videos)
