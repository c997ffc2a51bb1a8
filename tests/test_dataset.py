"""ClipDataset on real encoded videos: exact decoded frames (read back from the frame-index stamp),
views and their geometry, test-time items, collate."""
import pytest
import torch

from vidgn.data.clip import ClipSpec
from vidgn.data.dataset import ClipDataset, collate_clips
from vidgn.data.lists import parse_list, resolve
from vidgn.tools.synthetic import read_frame_index
from vidgn.data.video import decode_frames, open_video


def stamps(frames):  # (T, H, W, 3) -> frame indices read from the pixels
    return [read_frame_index(f) for f in frames]


def stamped(stamped_dataset, split, **clip):
    entries = parse_list(stamped_dataset.list_path, stamped_dataset.root)
    ds = ClipDataset(entries, str(stamped_dataset.root), ClipSpec(**clip), split=split)
    meta = {v["path"]: v for v in stamped_dataset.videos}
    return ds, [meta[e.path] for e in entries]


def test_decoder_is_frame_accurate(stamped_dataset):
    """Jumping backwards and forwards, repeats included, on H.264 and VP9 alike."""
    for v in stamped_dataset.videos:
        reader, info = open_video(stamped_dataset.root / v["path"])
        assert info.num_frames == v["frames"] and abs(info.fps - v["fps"]) < 0.01
        n = v["frames"]
        idx = [n - 1, 0, n // 2, 1, n // 2, n - 2, 3]
        assert stamps(decode_frames(reader, idx)) == idx, v


@pytest.mark.parametrize("t,s", [(32, 2), (64, 1)])
def test_val_centre_window_exact_frames(stamped_dataset, t, s):
    ds, metas = stamped(stamped_dataset, split="val", num_frames=t, sampling_rate=s)
    for i, m in enumerate(metas):
        frames, idx = ds.decode_clip(i)
        n = m["frames"]
        start = max(0, n - t * s) // 2
        expect = [(start + k * s) % n for k in range(t)]  # looped when n < t * s
        assert idx.tolist() == expect
        assert stamps(frames) == expect, m


def test_short_video_loops(stamped_dataset):
    ds, metas = stamped(stamped_dataset, split="train", num_frames=32, sampling_rate=2)
    short = [i for i, m in enumerate(metas) if m["frames"] < 64]
    assert short, "fixture should have videos shorter than a 64-frame window"
    for i in short:
        n = metas[i]["frames"]
        frames, _ = ds.decode_clip(i, generator=torch.Generator().manual_seed(0))
        assert stamps(frames) == [(2 * k) % n for k in range(32)]


def test_train_random_window_exact_frames(stamped_dataset):
    ds, metas = stamped(stamped_dataset, split="train", num_frames=8, sampling_rate=4)
    g = torch.Generator().manual_seed(0)
    for i, m in enumerate(metas):
        n = m["frames"]
        starts = set()
        for _ in range(6):
            frames, idx = ds.decode_clip(i, generator=g)
            got = stamps(frames)
            assert got == idx.tolist() == [(got[0] + 4 * k) % n for k in range(8)]
            assert 0 <= got[0] <= max(0, n - 32)
            starts.add(got[0])
        assert len(starts) > 1 or n <= 32  # the window moves wherever it has room


def test_eval_uniform_windows_exact_frames(stamped_dataset):
    k = 4
    ds, metas = stamped(stamped_dataset, split="test", num_frames=16, sampling_rate=2, num_test_clips=k)
    assert len(ds) == k * len(metas)
    for i, m in enumerate(metas):
        n = m["frames"]
        hi = max(0, n - 32)
        for c in range(k):
            frames, idx = ds.decode_clip(i, c)
            start = round(hi * c / (k - 1))
            assert stamps(frames) == [(start + 2 * j) % n for j in range(16)], (m, c)
        if n >= 32:  # windows reach both ends of the video
            assert ds.decode_clip(i, 0)[1][0] == 0 and ds.decode_clip(i, k - 1)[1][-1] == n - 2


def test_target_fps(stamped_dataset):
    ds, metas = stamped(stamped_dataset, split="val", num_frames=8, sampling_rate=1, target_fps=15.0)
    i = next(j for j, m in enumerate(metas) if m["fps"] == 30 and m["frames"] == 90)
    frames, _ = ds.decode_clip(i)
    got = stamps(frames)
    assert [b - a for a, b in zip(got, got[1:])] == [2] * 7  # 30 fps at 15 fps: every 2nd frame


def test_three_crop_geometry_on_decoded_video(stamped_dataset):
    """3 crops of the short side along the long side: left / centre / right of the decoded frames."""
    entries = parse_list(stamped_dataset.list_path, stamped_dataset.root)
    for i, e in enumerate(entries):
        reader, info = open_video(resolve(e, stamped_dataset.root))
        h, w = decode_frames(reader, [0]).shape[1:3]
        short = min(h, w)
        clip = ClipSpec(num_frames=4, sampling_rate=1, test_short_side=short, test_crop=short, num_test_clips=1,
                        num_test_crops=3)
        ds = ClipDataset(entries, str(stamped_dataset.root), clip, split="test")
        frames, _ = ds.decode_clip(i, 0)  # (T, H, W, 3)
        item = ds[i]
        views = item["video"]  # (3, 3, T, short, short)
        assert views.shape == (3, 3, 4, short, short)
        assert item["crop_index"].tolist() == [0, 1, 2] and item["clip_index"].tolist() == [0, 0, 0]
        assert item["video_index"].tolist() == [i] * 3 and item["label"].tolist() == [e.label] * 3
        offsets = [0, (max(h, w) - short) // 2, max(h, w) - short]
        for view, off in zip(views, offsets):
            ref = frames[:, :, off:off + short] if w >= h else frames[:, off:off + short]
            assert torch.equal(view.permute(1, 2, 3, 0), ref)


def test_splits_shapes_and_collate(synthetic_dataset):
    root = str(synthetic_dataset.root)
    entries = parse_list(synthetic_dataset.val_list, root)
    clip = ClipSpec(num_frames=4, sampling_rate=2, train_short_side=(40, 48), train_crop=32,
                    test_short_side=40, val_crop=32, test_crop=40, num_test_clips=2, num_test_crops=3)
    train = ClipDataset(entries, root, clip, split="train")
    val = ClipDataset(entries, root, clip, split="val")
    test = ClipDataset(entries, root, clip, split="test")
    assert train[0]["video"].shape == (1, 3, 4, 32, 32) and train[0]["video"].dtype == torch.uint8
    assert val[1]["video"].shape == (1, 3, 4, 32, 32)
    assert len(test) == 2 * len(entries)
    batch = collate_clips([test[0], test[1], test[2]])
    assert batch["video"].shape == (9, 3, 4, 40, 40)
    assert batch["video_index"].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert batch["clip_index"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert batch["crop_index"].tolist() == [0, 1, 2] * 3
    assert batch["label"].tolist() == [entries[0].label] * 6 + [entries[1].label] * 3
    assert batch["bad"] == []
    # val is deterministic, train is not
    assert torch.equal(val[1]["video"], val[1]["video"])
    assert not all(torch.equal(train[0]["video"], train[0]["video"]) for _ in range(3))


def test_narrow_frames_decode_exactly(tmp_path):
    """decord 0.6 cannot get_batch 72-pixel-wide frames (it reads the padded RGB row as 4 channels);
    decode_frames falls back to sequential reads and must still return the exact frames."""
    import json

    from vidgn.tools.synthetic import make_synthetic

    ds = make_synthetic(tmp_path, num_classes=2, train_per_class=1, val_per_class=0, width=72, height=52,
                        size_jitter=0.0, seconds=1.0, fps_choices=(25,), webm_fraction=0.5,
                        stamp_frame_index=True, seed=3)
    videos = json.loads((ds.root / "synthetic.json").read_text())["videos"]
    assert {v["codec"] for v in videos} == {"h264", "vp9"}
    for v in videos:
        reader, _ = open_video(ds.root / v["path"])
        idx = [24, 0, 10, 10, 3, 17]
        frames = decode_frames(reader, idx)
        assert frames.shape == (6, 52, 72, 3)
        assert stamps(frames) == idx
