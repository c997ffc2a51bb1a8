"""Bad input: zero-byte, truncated, garbage and late-corrupted files.

Training replaces, counts and logs each once; too many stop the run with the command to fix it;
evaluation leaves them out and lists them; workers survive all of it.
"""
import logging
import shutil
from pathlib import Path

import av
import lightning as L
import numpy as np
import pytest
import torch

from vidgn.data import VideoDataModule
from vidgn.data.datamodule import TooManyBadVideos
from vidgn.data.lists import parse_list, write_list

TINY = dict(num_frames=4, sampling_rate=2, train_short_side=(40, 48), train_crop=32, test_short_side=40,
            val_crop=32, test_crop=40, num_test_clips=1, num_workers=0)


def write_late_corrupt(path):
    """A real faststart H.264 mp4 whose second half is overwritten: it opens and its first frames
    decode, later ones fail."""
    rng = np.random.default_rng(0)
    c = av.open(str(path), "w", options={"movflags": "faststart"})
    s = c.add_stream("libx264", rate=25, options={"g": "10"})
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    for _ in range(60):
        frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24")
        for p in s.encode(frame):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    data = bytearray(path.read_bytes())
    pos = int(len(data) * 0.6)
    data[pos:pos + 2000] = np.random.default_rng(1).integers(0, 255, 2000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def bad_root(synthetic_dataset, tmp_path_factory):
    """4 good videos + zero-byte, truncated (first half of an mp4), garbage and late-corrupt files."""
    root = tmp_path_factory.mktemp("bad")
    good = [e for e in parse_list(synthetic_dataset.train_list, synthetic_dataset.root)
            if e.path.endswith(".mp4")][:4]
    rows = []
    for i, e in enumerate(good):
        shutil.copy(synthetic_dataset.root / e.path, root / f"good{i}.mp4")
        rows.append((f"good{i}.mp4", e.label))
    (root / "zero.mp4").write_bytes(b"")
    src = (synthetic_dataset.root / good[0].path).read_bytes()
    (root / "truncated.mp4").write_bytes(src[: len(src) // 2])
    (root / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    write_late_corrupt(root / "late.mp4")
    rows += [("zero.mp4", 0), ("truncated.mp4", 1), ("garbage.mp4", 2), ("late.mp4", 3)]
    write_list(root / "list.txt", rows)
    shutil.copy(synthetic_dataset.classes_file, root / "classes.txt")
    return root


BAD = {"zero.mp4", "truncated.mp4", "garbage.mp4", "late.mp4"}


def dm_for(root, **kw):
    args = dict(data_root=str(root), train_list=str(root / "list.txt"), val_list=str(root / "list.txt"),
                test_list=str(root / "list.txt"), **TINY)
    args.update(kw)
    return VideoDataModule(**args)


def run_epoch(dm, split):
    rows = []
    for batch in getattr(dm, f"{split}_dataloader")():
        batch = dm.on_after_batch_transfer(dm.on_before_batch_transfer(batch, 0), 0)
        rows.append(batch)
    return rows


def test_late_corrupt_video_opens_then_fails(bad_root):
    from vidgn.data.video import VideoDecodeError, decode_frames, open_video

    path = bad_root / "late.mp4"
    reader, info = open_video(path)
    assert decode_frames(reader, range(4), path).shape[0] == 4  # the start is fine
    with pytest.raises(VideoDecodeError, match="decode failed"):
        decode_frames(reader, range(info.num_frames), path)


def test_a_reader_killed_by_a_packet_past_the_wanted_frames_is_not_a_bad_video(bad_root):
    """decord2's reader reads ahead of the wanted frames by a racy amount, and a damaged packet it
    reaches kills that reader for good (3-5% of readers on this file's frames 0..3): fresh readers
    decode the frames before the video is called bad, and the dead reader is marked."""
    from vidgn.data.video import decode_frames, open_video

    class KilledByReadAhead:  # the real reader after its decoder thread met the damaged packet
        def __init__(self, reader):
            self.reader = reader

        def get_batch(self, indices):
            raise RuntimeError("threaded_decoder.cc:218: Check failed: avcodec_send_packet >= 0")

        next = get_batch

        def __getattr__(self, name):
            return getattr(self.reader, name)

    path = bad_root / "late.mp4"
    reader, _ = open_video(path)
    expected = decode_frames(reader, [0, 2, 3, 3], path)
    dead = KilledByReadAhead(reader)
    assert torch.equal(decode_frames(dead, [0, 2, 3, 3], path), expected)
    assert dead.vidgn_failed


def test_a_damaged_wanted_frame_fails_every_fresh_reader(bad_root, monkeypatch):
    from vidgn.data import video

    opened = []
    real_open = video.open_video
    monkeypatch.setattr(video, "open_video", lambda *a: opened.append(a) or real_open(*a))
    path = bad_root / "late.mp4"
    reader, info = real_open(path)
    with pytest.raises(video.VideoDecodeError, match="decode failed for frames 0..59"):
        video.decode_frames(reader, range(info.num_frames), path)
    assert len(opened) == video.FRESH_READERS  # then given up, with the first reader's reason


@pytest.mark.parametrize("workers", [0, 2])
def test_training_replaces_counts_and_logs_once(bad_root, caplog, workers):
    dm = dm_for(bad_root, num_frames=32, sampling_rate=2, clips_per_gpu=4, max_bad_fraction=0.5,
                num_workers=workers)
    dm.setup("fit")
    caplog.set_level(logging.WARNING, logger="vidgn.data")
    for epoch in range(2):
        batches = run_epoch(dm, "train")
        # every batch is full: failed videos were replaced by good ones
        assert len(batches) == 2 and all(b["video"].shape[0] == 4 for b in batches)
        names = {dm.entries("train")[int(i)].path for b in batches for i in b["video_index"]}
        assert not names & BAD
        assert dm.bad_count("train") == 4  # each bad file is drawn once per epoch, counted once
        bad = dm.bad_videos("train")
        assert {b.path.rsplit("/", 1)[-1] for b in bad} == BAD and all(b.reason for b in bad)
        dm.reset_bad("train")
        assert dm.bad_count("train") == 0
    logged = [r.getMessage() for r in caplog.records if r.name == "vidgn.data"]
    for name in BAD:  # logged once over both epochs, with its path and a reason
        hits = [m for m in logged if f"/{name} " in m]
        assert len(hits) == 1, (name, logged)
    assert any("empty file" in m for m in logged)
    assert any("late.mp4" in m and "decode failed" in m for m in logged)


def test_too_many_bad_videos_stops_with_the_fix(bad_root):
    dm = dm_for(bad_root, clips_per_gpu=8, max_bad_fraction=0.01)
    dm.setup("fit")
    with pytest.raises(TooManyBadVideos) as err:
        run_epoch(dm, "train")
    msg = str(err.value)
    assert "vidgn check-videos" in msg and str(bad_root / "list.txt") in msg and "--data-root" in msg
    assert "max_bad_fraction" in msg


@pytest.mark.parametrize("split", ["val", "test"])
def test_evaluation_leaves_bad_out_and_lists_them(bad_root, split):
    # 32x2 on the 60-frame late-corrupt file loops over every frame, so the window hits the damage
    dm = dm_for(bad_root, num_frames=32, clips_per_gpu=2, max_bad_fraction=1.0)
    dm.setup("validate" if split == "val" else "test")
    batches = run_epoch(dm, split)
    entries = dm.entries(split)
    rows = {int(i) for b in batches for i in b["video_index"]}
    assert {entries[i].path for i in rows} == {f"good{i}.mp4" for i in range(4)}  # nothing substituted
    assert [b.path.rsplit("/", 1)[-1] for b in dm.bad_videos(split)] == ["zero.mp4", "truncated.mp4",
                                                                         "garbage.mp4", "late.mp4"]
    assert [b.video_index for b in dm.bad_videos(split)] == [4, 5, 6, 7]
    # the last batches hold only bad videos: they still arrive, empty but well-shaped
    crop = 32 if split == "val" else 40
    empty = [b for b in batches if b["video"].shape[0] == 0]
    assert empty and all(b["video"].shape == (0, 3, 32, crop, crop) and b["video"].dtype == torch.float32
                         for b in empty)


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)

    def training_step(self, batch, i):
        assert "bad" not in batch
        return torch.nn.functional.cross_entropy(self.fc(batch["video"].mean(dim=(2, 3, 4))), batch["label"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_fit_survives_bad_videos(bad_root):
    dm = dm_for(bad_root, clips_per_gpu=4, max_bad_fraction=0.5, val_list=None)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Tiny(), datamodule=dm)
    assert trainer.global_step == 2 and dm.bad_count("train") == 4


def test_file_without_video_stream_is_replaced_in_training_and_left_out_in_testing(bad_root, tmp_path):
    """A real audio-only mp4 (a download gone wrong) through the same paths as the damaged files.
    (AV1 used to play this part with decord 0.6; decord2 decodes it: tests/test_video_formats.py.)"""
    with av.open(str(tmp_path / "audio_only.mkv"), "w", format="matroska") as c:
        s = c.add_stream("aac", rate=16000)
        for i in range(20):
            samples = np.zeros((1, 1024), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    shutil.copy(bad_root / "good0.mp4", tmp_path / "good0.mp4")
    shutil.copy(bad_root / "classes.txt", tmp_path / "classes.txt")
    write_list(tmp_path / "list.txt", [("good0.mp4", 0), ("audio_only.mkv", 1)])
    dm = dm_for(tmp_path, clips_per_gpu=2, max_bad_fraction=1.0, drop_last_train=False)
    dm.setup("fit")
    train = dm.dataset("train")
    item = train.item(1, torch.Generator().manual_seed(0))  # the audio-only file, drawn by the sampler
    assert item["video"].shape[0] == 1 and item["video_index"].tolist() == [0]  # replaced by good0
    assert [(b.video_index, b.path.endswith("audio_only.mkv")) for b in item["bad"]] == [(1, True)]
    assert "cannot open" in item["bad"][0].reason or "video stream" in item["bad"][0].reason
    dm.setup("test")
    rows = [int(i) for b in run_epoch(dm, "test") for i in b["video_index"]]
    assert set(rows) == {0} and [b.video_index for b in dm.bad_videos("test")] == [1]


def test_vidgn_test_report_lists_the_bad_videos(bad_root, tmp_path):
    """`vidgn test` end to end on a list with broken files: the summary JSON leaves them out and
    names each with its reason; the metrics cover the good videos only."""
    import json

    from vidgn.training.module import VideoClassifier

    out = tmp_path / "run"
    # 32x2 on the 60-frame late-corrupt file loops over every frame, so the window hits the damage
    dm = dm_for(bad_root, num_frames=32, clips_per_gpu=2, max_bad_fraction=1.0)
    model = VideoClassifier(network=torch.nn.Sequential(torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(),
                                                        torch.nn.Linear(3, 4)),
                            eval_output_dir=str(out))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.test(model, datamodule=dm)
    summary = json.loads((out / "test_summary.json").read_text())
    assert summary["num_videos"] == 4 and summary["num_videos_left_out"] == 4
    left = {Path(x["path"]).name: x["reason"] for x in summary["left_out"]}
    assert set(left) == BAD and all(left.values())
    assert "empty file" in left["zero.mp4"] and "decode failed" in left["late.mp4"]
    preds = (out / "test_predictions.csv").read_text().splitlines()
    assert len(preds) == 1 + 4 and not any(name in "".join(preds) for name in BAD)
    # Validation reports how many it left out, too.
    (metrics,) = trainer.validate(model, datamodule=dm)
    assert metrics["val/num_left_out"] == 4.0


def test_decoder_reasons_are_said_in_words_without_log_noise():
    """decord's exceptions carry log times and C++ source locations; the reason a user reads (the
    bad-video log, check-videos) keeps what the failure means."""
    from vidgn.data.video import _short

    damaged = RuntimeError("[16:45:58] /project/src/video/ffmpeg/threaded_decoder.cc:292: [16:45:58] "
                           "/project/src/video/ffmpeg/threaded_decoder.cc:218: Check failed: "
                           "avcodec_send_packet(dec_ctx_.get(), pkt.get()) >= 0 (-1094995529 vs. 0) "
                           "Thread worker: Error sending packet.\nStack trace: ...")
    said = _short(damaged)
    assert "16:45:58" not in said and ".cc:" not in said and "Stack trace" not in said
    assert said.startswith("RuntimeError: Check failed") and "the file is damaged there" in said
    again = _short(RuntimeError("Check failed: avcodec_send_packet(...) >= 0 (-11 vs. 0) Thread worker"))
    assert "closed-GOP HEVC" in again and "vidgn resize-videos" in again  # decord2's EAGAIN bug
