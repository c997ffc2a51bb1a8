"""check-videos: good videos pass; empty, garbage, truncated (including files that open but fail on
late frames), undecodable-codec and missing files are reported with a reason; exit status and the
cleaned list are right."""
from __future__ import annotations

import os
import shutil

import av
import numpy as np
import pytest

from vidgn.cli import main
from vidgn.tools.check_videos import check_video
from vidgn.data.lists import parse_list, resolve


def _encode(path, codec, n=50, *, options=None, container_options=None, size=(64, 48)):
    rng = np.random.default_rng(0)
    width, height = size
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=25, options=options or {})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for _ in range(n):
            img = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def videos(synthetic_dataset, tmp_path_factory):
    """A data root with 3 good videos (mp4 + webm) and one of each kind of bad file."""
    root = tmp_path_factory.mktemp("check")
    good = []
    entries = parse_list(synthetic_dataset.train_list, synthetic_dataset.root)
    picks = [e for e in entries if e.path.endswith(".webm")][:1] + \
            [e for e in entries if e.path.endswith(".mp4")][:2]
    for e in picks:
        dst = root / e.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(resolve(e, synthetic_dataset.root), dst)
        good.append(e.path)
    bad = {}
    (root / "bad").mkdir()
    (root / "bad/empty.mp4").write_bytes(b"")
    bad["bad/empty.mp4"] = "empty file"
    (root / "bad/garbage.mp4").write_bytes(os.urandom(4000))
    bad["bad/garbage.mp4"] = "cannot open"
    # moov atom first (faststart), 1% cut off the end: opens fine, the index promises 50 frames,
    # the late ones are gone. Only decoding late frames finds this.
    _encode(root / "fs.mp4", "libx264", options={"g": "10"}, container_options={"movflags": "+faststart"})
    data = (root / "fs.mp4").read_bytes()
    (root / "bad/late_frames_cut.mp4").write_bytes(data[: int(len(data) * 0.99)])
    (root / "fs.mp4").unlink()
    bad["bad/late_frames_cut.mp4"] = "does not decode"
    # Half a webm: decord sees a shorter video; the container still declares the full duration.
    webm = root / good[0]
    data = webm.read_bytes()
    (root / "bad/half.webm").write_bytes(data[: len(data) // 2])
    bad["bad/half.webm"] = "truncated"
    # AV1 in Matroska: decord's bundled FFmpeg has no AV1 decoder.
    _encode(root / "bad/av1.mkv", "libsvtav1", n=5)
    bad["bad/av1.mkv"] = "cannot open"
    bad["bad/missing.mp4"] = "file not found"
    return root, good, bad


def test_check_video_reasons(videos):
    root, good, bad = videos
    for rel in good:
        assert check_video(str(root / rel)) is None, rel
    for rel, why in bad.items():
        reason = check_video(str(root / rel))
        assert reason is not None and why in reason, (rel, reason)


def _run(argv):
    return main(["check-videos", *argv])


def test_cli_reports_bad_videos_exit_status_and_clean_list(videos, tmp_path, capsys):
    root, good, bad = videos
    lst = tmp_path / "list.txt"
    lines = ["# a comment stays out of the clean list"]
    lines += [f"{rel} {i % 2}" for i, rel in enumerate(good)]
    lines += [f"{rel} 0" for rel in bad]
    lst.write_text("\n".join(lines) + "\n")
    clean = tmp_path / "out" / "clean.txt"
    assert _run([str(lst), "--data-root", str(root), "--workers", "2", "--write-clean", str(clean)]) == 1
    out = capsys.readouterr().out
    for i, rel in enumerate(bad, start=2 + len(good)):
        assert f"UNREADABLE {lst}:{i}: {root / rel}: " in out, rel
    assert f"checked {len(good) + len(bad)} videos: {len(good)} readable, {len(bad)} unreadable" in out
    # The clean list keeps the readable lines verbatim and parses with every file present.
    assert clean.read_text().splitlines() == [f"{rel} {i % 2}" for i, rel in enumerate(good)]
    assert [e.path for e in parse_list(clean, root)] == good

    # All good -> 0.
    assert _run([str(clean), "--data-root", str(root), "--workers", "1"]) == 0
    assert "0 unreadable" in capsys.readouterr().out


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    assert _run([str(tmp_path / "nope.txt"), "--data-root", str(tmp_path)]) == 2
    lst = tmp_path / "l.txt"
    (tmp_path / "a.mp4").write_bytes(b"")
    lst.write_text("a.mp4 some class\n")  # class name without classes.txt
    assert _run([str(lst), "--data-root", str(tmp_path)]) == 2
    assert "no classes.txt" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # --data-root is required
        _run([str(lst)])
    assert e.value.code == 2


def test_narrow_videos_decord_misreads_are_still_readable(tmp_path):
    # decord 0.6 fails get_batch on some frame widths (72 px among them); the training pipeline
    # works around it, so check-videos must not call such videos broken.
    _encode(tmp_path / "w72.mp4", "libx264", n=12, size=(72, 52))
    assert check_video(str(tmp_path / "w72.mp4")) is None


@pytest.fixture(scope="module")
def crash_then_good(synthetic_dataset, tmp_path_factory):
    """crash.mp4 (kills decord 0.6 natively, see tests.helpers) followed by 20 good videos."""
    from tests.helpers import write_decoder_crashing_mp4

    root = tmp_path_factory.mktemp("crash_first")
    entries = parse_list(synthetic_dataset.train_list, synthetic_dataset.root) + \
        parse_list(synthetic_dataset.val_list, synthetic_dataset.root)
    write_decoder_crashing_mp4(root / "crash.mp4")
    good = []
    for i, e in enumerate(entries[:20]):
        dst = root / f"good{i:02d}{os.path.splitext(e.path)[1]}"
        shutil.copy(resolve(e, synthetic_dataset.root), dst)
        good.append(str(dst))
    return str(root / "crash.mp4"), good


def test_a_crash_rechecks_only_the_videos_in_flight(crash_then_good, monkeypatch):
    """One decoder crash must not send every remaining video through a fresh process of its own
    (a broken pool fails all its pending work): only the videos in flight are re-checked alone."""
    import vidgn.tools.check_videos as module

    pools = []

    class CountingPool(module.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pools.append(self._max_workers)

    monkeypatch.setattr(module, "ProcessPoolExecutor", CountingPool)
    crash, good = crash_then_good
    workers = 2
    results = module.check_videos([crash, *good], workers=workers)
    assert set(results) == {crash, *good}
    assert [p for p, reason in results.items() if reason] == [crash]
    assert "crash" in results[crash]
    # The first shared pool, one 1-process pool per video that can have been in flight, and one
    # shared pool for the rest: not one pool per remaining video.
    assert len(pools) <= 2 + 2 * workers, pools
    assert pools.count(workers) <= 2, pools
