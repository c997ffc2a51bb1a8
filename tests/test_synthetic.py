"""make-synthetic: Kinetics-format layout, real mp4/webm variety, determinism, frame-index stamps that
survive compression, and a class that lives in the motion, not in any single frame."""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

import av
import decord
import numpy as np
import pytest
import torch

from vidgn.data.lists import parse_list, read_classes, resolve
from vidgn.tools.synthetic import SyntheticSpec, make_synthetic, read_frame_index
from vidgn.tools.synthetic.cli import add_parser, spec_from_args

KINETICS_NAME = re.compile(r"^(train|val)/([^/]+)/[A-Za-z0-9_-]{11}_(\d{6})_(\d{6})\.(mp4|webm)$")


def _frames(path) -> np.ndarray:
    vr = decord.VideoReader(str(path), num_threads=1)
    batch = vr.get_batch(list(range(len(vr))))
    return batch.asnumpy() if hasattr(batch, "asnumpy") else batch.numpy()  # (T, H, W, 3)


def test_layout_lists_and_classes_are_kinetics_format(synthetic_dataset):
    ds = synthetic_dataset
    classes = read_classes(ds.classes_file)
    assert classes == ds.classes == sorted(classes) and len(classes) == 4
    assert any(" " in c and "(" in c for c in classes)  # names like Kinetics': spaces, parentheses
    for list_path, split, n in ((ds.train_list, "train", 12), (ds.val_list, "val", 8)):
        entries = parse_list(list_path, ds.root)  # also checks that every file exists
        assert len(entries) == n
        for e in entries:
            m = KINETICS_NAME.match(e.path)
            assert m, e.path
            assert m.group(1) == split and m.group(2) == classes[e.label]
            assert int(m.group(4)) - int(m.group(3)) == 2  # 2-s clips
        assert sorted({e.label for e in entries}) == [0, 1, 2, 3]


def test_real_videos_with_varied_codecs_sizes_and_fps(synthetic_dataset):
    ds = synthetic_dataset
    meta = {v["path"]: v for v in json.loads((ds.root / "synthetic.json").read_text())["videos"]}
    entries = parse_list(ds.train_list, ds.root) + parse_list(ds.val_list, ds.root)
    seen_codecs, seen_fps, seen_sizes = set(), set(), set()
    for e in entries:
        path = resolve(e, ds.root)
        with av.open(str(path)) as c:  # what is really in the file, not what the name says
            codec = c.streams.video[0].codec_context.name
        assert codec == ("h264" if path.suffix == ".mp4" else "vp9")
        vr = decord.VideoReader(str(path), num_threads=1)
        h, w = vr[0].shape[:2]
        fps = round(vr.get_avg_fps())
        assert len(vr) == round(2.0 * fps) == meta[e.path]["frames"]
        assert (w, h) == (meta[e.path]["width"], meta[e.path]["height"])
        assert 0.85 * 64 <= w <= 1.15 * 64 and 0.85 * 48 <= h <= 1.15 * 48 and w % 4 == h % 4 == 0
        seen_codecs.add(codec)
        seen_fps.add(fps)
        seen_sizes.add((w, h))
    assert seen_codecs == {"h264", "vp9"}
    assert seen_fps == {24, 25, 30}
    assert len(seen_sizes) >= 5


def test_same_seed_same_bytes_any_workers_other_seed_differs(tmp_path):
    # Sizes and lengths at which libx264's reads of uninitialised memory used to show (bytes that
    # changed with the videos encoded before in the same process, so with `workers`).
    kw = dict(num_classes=4, train_per_class=3, val_per_class=1, width=96, height=72, seconds=1.0,
              webm_fraction=0.25)
    a = make_synthetic(tmp_path / "a", seed=5, **kw)
    b = make_synthetic(tmp_path / "b", seed=5, workers=2, **kw)
    c = make_synthetic(tmp_path / "c", seed=6, **kw)
    for name in ("train.txt", "val.txt", "classes.txt"):
        assert (a.root / name).read_text() == (b.root / name).read_text()
    paths = [e.path for e in parse_list(a.train_list, a.root) + parse_list(a.val_list, a.root)]
    assert any(p.endswith(".webm") for p in paths) and any(p.endswith(".mp4") for p in paths)
    for p in paths:
        assert (a.root / p).read_bytes() == (b.root / p).read_bytes(), p
    assert (a.root / "train.txt").read_text() != (c.root / "train.txt").read_text()


@pytest.mark.parametrize("codec", ["h264", "vp9"])
def test_frame_index_stamp_round_trips_every_frame(stamped_dataset, codec):
    videos = [v for v in stamped_dataset.videos if v["codec"] == codec]
    assert {v["frames"] < 64 for v in videos} == {True, False}  # a short and a long one per codec
    for v in videos:
        frames = _frames(stamped_dataset.root / v["path"])
        assert len(frames) == v["frames"]
        assert [read_frame_index(f) for f in frames] == list(range(v["frames"]))


def test_read_frame_index_accepts_tensors_and_resized_frames_and_rejects_unstamped(
        stamped_dataset, synthetic_dataset):
    v = stamped_dataset.by_frames()[-1]
    frame = _frames(stamped_dataset.root / v["path"])[37]
    t = torch.from_numpy(frame)
    assert read_frame_index(t) == 37
    big = torch.nn.functional.interpolate(t.permute(2, 0, 1)[None].float(), size=(112, 160),
                                          mode="bilinear", antialias=True)[0].permute(1, 2, 0)
    assert read_frame_index(big.round().clamp(0, 255).to(torch.uint8)) == 37
    plain = _frames(resolve(parse_list(synthetic_dataset.train_list, synthetic_dataset.root)[0],
                            synthetic_dataset.root))[0]
    with pytest.raises(ValueError, match="no frame-index stamp"):
        read_frame_index(plain)


def _first_frame_and_motion(path):
    frames = _frames(path).astype(np.float32)  # (T, H, W, 3)
    t, h, w, _ = frames.shape
    # Appearance: the first frame pooled to 6x8 colour cells.
    first = frames[0, : h - h % 6, : w - w % 8].reshape(6, h // 6, 8, w // 8, 3).mean((1, 3)).ravel()
    # Motion: mean horizontal step of the centroid of what differs from the median (static) background.
    moving = np.abs(frames - np.median(frames, 0)).max(-1) > 40  # (T, H, W)
    cols = moving.sum(1)  # (T, W)
    cx = (cols * np.arange(w)).sum(1) / np.maximum(cols.sum(1), 1)
    dx = np.diff(cx)
    dx = dx[np.abs(dx) < w / 8]  # drop the jump when an object wraps around the frame edge
    return first, float(dx.mean()) if len(dx) else 0.0


def _loo_nearest_mean_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    hits = 0
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        means = [x[rest & (y == k)].mean(0) for k in (0, 1)]
        hits += int(np.argmin([np.linalg.norm(x[i] - m) for m in means]) == y[i])
    return hits / len(y)


def test_class_is_in_the_motion_not_in_a_single_frame(tmp_path):
    """"moving left" vs "moving right": a nearest-class-mean classifier on first frames is at chance,
    the direction of motion separates the classes when the cue is clean, and the difficulty knobs
    (weak cue, distractors, noise) take that separation away."""
    kw = dict(num_classes=2, train_per_class=12, val_per_class=0, width=64, height=48, seconds=1.0,
              seed=3)
    easy = make_synthetic(tmp_path / "easy", noise=0.0, distractors=0, cue_strength=1.0, **kw)
    hard = make_synthetic(tmp_path / "hard", noise=1.0, distractors=4, cue_strength=0.3, **kw)
    assert easy.classes == ["moving left", "moving right"]
    results = {}
    for name, ds in (("easy", easy), ("hard", hard)):
        entries = parse_list(ds.train_list, ds.root)
        feats = [_first_frame_and_motion(resolve(e, ds.root)) for e in entries]
        y = np.array([e.label for e in entries])
        first = np.stack([f for f, _ in feats])
        motion = np.array([m for _, m in feats])
        results[name] = (_loo_nearest_mean_accuracy(first, y), float(np.mean((motion > 0) == (y == 1))))
    first_acc, motion_acc = results["easy"]
    assert first_acc <= 0.7, results  # one frame: chance level (0.5) on 24 videos
    assert motion_acc >= 0.9, results  # time: the class is recoverable
    assert results["hard"][0] <= 0.75 and results["hard"][1] <= 0.75, results


def test_cli_writes_dataset_and_rejects_bad_arguments(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="vidgn")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["make-synthetic", str(tmp_path / "d"), "--classes", "3",
                              "--train-per-class", "1", "--val-per-class", "1", "--width", "32",
                              "--height", "32", "--seconds", "0.3", "--fps", "10", "--webm-fraction", "0"])
    assert args.func(args) == 0
    assert "wrote 3 train + 3 val videos" in capsys.readouterr().out
    assert len(parse_list(tmp_path / "d" / "val.txt", tmp_path / "d")) == 3
    args = parser.parse_args(["make-synthetic", str(tmp_path / "e"), "--classes", "999"])
    assert args.func(args) == 2
    assert "num_classes must be in 1.." in capsys.readouterr().out


def test_motions_pick_classes_by_name(tmp_path):
    ds = make_synthetic(tmp_path / "m", motions=("moving up", "moving left"), train_per_class=1,
                        val_per_class=0, width=64, height=48, seconds=0.5, seed=0)
    assert ds.classes == ["moving left", "moving up"]
    assert len(Path(ds.train_list).read_text().splitlines()) == 2
    with pytest.raises(ValueError, match="unknown motions"):
        make_synthetic(tmp_path / "x", motions=("moonwalking",), train_per_class=1, val_per_class=0)


def test_cli_options_and_defaults_come_from_the_spec(tmp_path):
    """Every SyntheticSpec field is a make-synthetic option (today's names), parsed with the field's
    type and default, and synthetic.json records the spec less `workers` (its output does not depend on it)."""
    parser = argparse.ArgumentParser(prog="vidgn")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    actions = {a.dest: a for a in sub.choices["make-synthetic"]._actions}
    fields = {f.name: f for f in dataclasses.fields(SyntheticSpec)}
    assert set(actions) - {"help", "out_dir"} == set(fields)
    flags = {name: actions[name].option_strings for name in fields}
    assert flags["num_classes"] == ["--classes"] and flags["fps_choices"] == ["--fps"]
    assert flags["train_per_class"] == ["--train-per-class"] and flags["object_size"] == ["--object-size"]
    assert actions["fps_choices"].nargs == actions["motions"].nargs == "+"
    assert actions["stamp_frame_index"].const is True  # a switch
    assert all(actions[name].help for name in fields)
    args = parser.parse_args(["make-synthetic", "out"])
    assert spec_from_args(args) == SyntheticSpec()
    args = parser.parse_args(["make-synthetic", "out", "--classes", "3", "--fps", "10", "12",
                              "--seconds", "0.5", "--motions", "moving up", "--stamp-frame-index"])
    spec = spec_from_args(args)
    assert spec == SyntheticSpec(num_classes=3, fps_choices=(10, 12), seconds=0.5,
                                 motions=("moving up",), stamp_frame_index=True)
    assert isinstance(spec.seconds, float) and isinstance(spec.num_classes, int)
    params = spec.recorded_params()
    assert list(params) == [f for f in fields if f != "workers"]
    assert params["num_classes"] == 1  # the classes actually made
    assert params["motions"] == ("moving up",)  # their order decides the draws: needed to rebuild
