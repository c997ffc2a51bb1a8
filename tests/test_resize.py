"""resize-videos: real H.264/VP9/AV1 sources (VFR, rotated, anamorphic, small) come out as H.264 at
the short side with the same frames at the same timestamps; SRC is never written; reruns skip
finished files and redo unfinished ones; bad sources, name clashes and a killed worker are handled."""
from __future__ import annotations

import csv
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.helpers import ctrl_c_as_in_a_terminal
from vidgn.cli import main
from vidgn.data.lists import parse_list, resolve, write_list
from vidgn.tools.kinetics_inputs import index_videos
from vidgn.tools.resize import FAILURES_FILENAME, LOCK_FILENAME, lock_dst, unlock_dst
from vidgn.tools.transcode import output_size

SHORT = 32


def _encode(path: Path, codec: str, *, size=(64, 48), n=20, rate=25, vfr=False, rotation=0,
            sar=None, faststart=False) -> Path:
    """A real encoded video whose frames have a white square at the top left (to see rotation)
    and a bar moving right. `vfr`: frame intervals alternate 40 and 100 ms."""
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.thread_count = 1
        if sar is not None:
            s.codec_context.sample_aspect_ratio = sar
        if rotation:
            s.set_display_rotation(rotation)
        if vfr:
            s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(n):
            img = np.full((height, width, 3), 40, np.uint8)
            img[: height // 4, : width // 4] = 255
            img[height // 2:, (3 * i) % width] = 200
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if vfr:
                frame.pts, frame.time_base = t, Fraction(1, 1000)
                t += 40 if i % 2 else 100
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        sar = s.codec_context.sample_aspect_ratio or Fraction(1)
        return {"codec": s.codec_context.name, "pix_fmt": frames[0].format.name,
                "width": frames[0].width, "height": frames[0].height, "sar": sar,
                "rotation": frames[0].rotation or 0, "frames": len(frames),
                "times": [f.pts * f.time_base for f in frames],
                "end": (frames[-1].pts + frames[-1].duration) * frames[-1].time_base,
                "first": frames[0].to_ndarray(format="rgb24")}


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _resize(*argv) -> int:
    return main(["resize-videos", *map(str, argv)])


@pytest.fixture(scope="module")
def src(synthetic_dataset, tmp_path_factory) -> Path:
    """A Kinetics-like SRC: class folders with spaces, H.264 and VP9 clips (from make-synthetic), an
    AV1 mkv, a VFR mp4, 90-degree-rotated and anamorphic (SAR 3:2) H.264, one smaller than the short
    side, and a non-video file."""
    root = tmp_path_factory.mktemp("resize_src")
    entries = parse_list(synthetic_dataset.train_list, synthetic_dataset.root)
    picks = [e for e in entries if e.path.endswith(".webm")][:1] + \
            [e for e in entries if e.path.endswith(".mp4")][:1]
    for e in picks:  # e.g. "moving left/abc123_000010_000020.webm"
        (root / e.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(resolve(e, synthetic_dataset.root), root / e.path)
    _encode(root / "other/av1_000001_000011.mkv", "libsvtav1", size=(96, 64), n=12)
    _encode(root / "other/vfr.mp4", "libx264", size=(80, 48), n=15, vfr=True)
    _encode(root / "other/rot90.mp4", "libx264", size=(64, 48), n=6, rotation=90)
    _encode(root / "other/anamorphic.mp4", "libx264", size=(64, 48), n=6, sar=Fraction(3, 2))
    _encode(root / "other/small.mp4", "libx264", size=(40, 24), n=6)
    (root / "other/notes.txt").write_text("not a video\n")
    return root


def _videos(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.suffix in (".mp4", ".webm", ".mkv"))


def test_output_size():
    assert output_size(1920, 1080, short_side=320) == (568, 320)  # 568.9 -> nearest even
    assert output_size(1080, 1920, short_side=320) == (320, 568)
    assert output_size(1920, 1080, short_side=320, rotation=90) == (320, 568)
    assert output_size(720, 576, short_side=288, sar=Fraction(16, 15)) == (384, 288)  # PAL 4:3
    # Smaller than the short side: kept, made even (an odd side is halfway between two even
    # numbers: it goes to the one that is a multiple of 4, Python's round-half-to-even).
    assert output_size(321, 243, short_side=320) == (320, 244)
    assert output_size(321, 241, short_side=320, upscale=True) == (426, 320)


def test_resize_keeps_frames_timestamps_and_aspect_and_never_writes_src(src, tmp_path, capsys):
    before = _hashes(src)
    dst = tmp_path / "dst"
    assert _resize(src, dst, "--short-side", SHORT, "--workers", 2) == 0
    assert _hashes(src) == before  # SRC untouched, nothing added to it
    sources = _videos(src)
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*.mp4")) == \
        sorted(os.path.splitext(s)[0] + ".mp4" for s in sources)
    assert not (dst / FAILURES_FILENAME).exists()
    assert not list(dst.rglob("*.part"))
    for rel in sources:
        a, b = _probe(src / rel), _probe(dst / (os.path.splitext(rel)[0] + ".mp4"))
        assert (b["codec"], b["pix_fmt"], b["sar"], b["rotation"]) == ("h264", "yuv420p", 1, 0), rel
        assert b["width"] % 2 == 0 and b["height"] % 2 == 0, rel
        # Display geometry of the source: stored size x SAR, rotated.
        dw, dh = a["width"] * a["sar"], Fraction(a["height"])
        if a["rotation"] % 180:
            dw, dh = dh, dw
        if min(dw, dh) > SHORT:
            assert min(b["width"], b["height"]) == SHORT, rel
        else:  # not upscaled
            assert abs(b["width"] - dw) <= 1 and abs(b["height"] - dh) <= 1, rel
        assert abs(Fraction(b["width"], b["height"]) - dw / dh) <= Fraction(2, min(b["width"], b["height"])), rel
        assert b["frames"] == a["frames"], rel
        assert b["times"] == a["times"], rel  # exact: VFR and start offsets carried over
        assert b["end"] == a["end"], rel  # duration, last frame's included
    # The rotated source is upright: the stored top-left square shows at the bottom left
    # (a 90-degree counterclockwise display rotation, as ffmpeg applies it).
    img = _probe(dst / "other/rot90.mp4")["first"].mean(axis=2)
    h, w = img.shape
    assert img[-h // 8:, : w // 8].mean() > 200 and img[: h // 8, : w // 8].mean() < 100
    # prepare-kinetics finds the clips in DST by the same names.
    by_clip, _ = index_videos(dst)
    assert by_clip == {k: os.path.splitext(v)[0] + ".mp4" for k, v in index_videos(src)[0].items()}
    assert "resized 7, skipped 0 (already done), failed 0" in capsys.readouterr().out


def test_rerun_skips_finished_and_redoes_unfinished(src, tmp_path, capsys):
    dst = tmp_path / "dst"
    lst = tmp_path / "some.txt"
    picked = [v for v in _videos(src) if v.startswith("other/")][:3]
    write_list(lst, [(v, 0) for v in picked])
    assert _resize(src, dst, "--short-side", SHORT, "--list", lst, "--workers", 1) == 0
    outs = {v: dst / (os.path.splitext(v)[0] + ".mp4") for v in picked}
    assert sorted(p for p in dst.rglob("*.mp4")) == sorted(outs.values())  # only the listed ones
    stamps = {v: p.stat().st_mtime_ns for v, p in outs.items()}
    capsys.readouterr()

    assert _resize(src, dst, "--short-side", SHORT, "--list", lst) == 0
    captured = capsys.readouterr()
    assert "resized 0, skipped 3 (already done), failed 0" in captured.out
    assert "0 to resize" in captured.err and "ETA" not in captured.err  # no progress of nothing
    assert {v: p.stat().st_mtime_ns for v, p in outs.items()} == stamps

    # An interrupted run leaves a temporary file and no output: that video is redone, the leftover
    # removed, the finished ones not touched.
    redo = outs[picked[0]]
    half = redo.read_bytes()[: redo.stat().st_size // 2]
    redo.unlink()
    part = redo.with_name(f".{redo.name}.99999.part")
    part.write_bytes(half)
    assert _resize(src, dst, "--short-side", SHORT, "--list", lst) == 0
    assert "resized 1, skipped 2 (already done), failed 0" in capsys.readouterr().out
    assert not part.exists()
    assert _probe(redo)["frames"] == _probe(src / picked[0])["frames"]
    assert {v: p.stat().st_mtime_ns for v, p in outs.items() if p != redo} == \
        {v: s for v, s in stamps.items() if outs[v] != redo}
    assert not (dst / LOCK_FILENAME).exists()  # a finished run leaves no lock behind


def test_the_lock_is_removed_at_the_end_and_a_killed_runs_lock_does_not_block(src, tmp_path, capsys):
    dst = tmp_path / "dst"
    lst = tmp_path / "one.txt"
    write_list(lst, [("other/small.mp4", 0)])
    # The lock file of a run killed with kill -9: still there, but nobody holds its flock.
    dst.mkdir()
    (dst / LOCK_FILENAME).write_text("99999999\n")
    assert _resize(src, dst, "--short-side", SHORT, "--list", lst) == 0
    assert (dst / "other/small.mp4").exists()
    assert "1 video (0 already done), 1 to resize" in capsys.readouterr().err
    assert not (dst / LOCK_FILENAME).exists()
    # A run that fails (a video that does not decode) removes it too.
    (tmp_path / "bad_src").mkdir()
    (tmp_path / "bad_src/garbage.mp4").write_bytes(os.urandom(3000))
    assert _resize(tmp_path / "bad_src", dst, "--short-side", SHORT) == 1
    assert not (dst / LOCK_FILENAME).exists()
    capsys.readouterr()
    # A second run while one holds the lock: refused, naming the holder's pid; the lock stays.
    held = lock_dst(dst)
    assert isinstance(held, int)
    try:
        assert _resize(src, dst, "--short-side", SHORT, "--list", lst, "--overwrite") == 2
        assert f"another resize-videos run (pid {os.getpid()}) is writing to" in capsys.readouterr().err
        assert (dst / LOCK_FILENAME).exists()
    finally:
        unlock_dst(dst, held)
    assert not (dst / LOCK_FILENAME).exists()


def test_a_lock_file_removed_while_locking_is_not_held(tmp_path, monkeypatch):
    """A run that ends between another run's open and flock removes the file that one opened; a
    third run may meanwhile lock a new file at the path. The lock taken is the one at the path."""
    import vidgn.tools.resize as resize

    flock, calls = fcntl.flock, []

    def racing_flock(fd, op):
        if not calls:  # the first attempt: the file opened is replaced before it is locked
            os.unlink(tmp_path / LOCK_FILENAME)
            (tmp_path / LOCK_FILENAME).write_text("")
        calls.append(fd)
        return flock(fd, op)

    monkeypatch.setattr(resize.fcntl, "flock", racing_flock)
    lock = lock_dst(tmp_path)
    assert len(calls) == 2  # retried
    assert os.fstat(lock).st_ino == os.stat(tmp_path / LOCK_FILENAME).st_ino
    unlock_dst(tmp_path, lock)


def test_bad_sources_are_reported_and_the_rest_done(src, tmp_path, capsys):
    root = tmp_path / "src"
    shutil.copytree(src / "other", root / "other")
    (root / "bad").mkdir()
    (root / "bad/garbage.mp4").write_bytes(os.urandom(3000))
    (root / "bad/empty.webm").write_bytes(b"")
    # moov first, the last 40% cut: opens, decodes fewer frames than it declares.
    data = _encode(tmp_path / "fs.mp4", "libx264", n=60, faststart=True).read_bytes()
    (root / "bad/cut.mp4").write_bytes(data[: int(len(data) * 0.6)])
    # Kinetics downloads sometimes hold one clip twice: both map to DST/other/twice.mp4.
    shutil.copy(root / "other/small.mp4", root / "other/twice.mp4")
    shutil.copy(src / "other/av1_000001_000011.mkv", root / "other/twice.mkv")

    dst = tmp_path / "dst"
    assert _resize(root, dst, "--short-side", SHORT, "--workers", 2) == 1
    rows = list(csv.DictReader(open(dst / FAILURES_FILENAME, encoding="utf-8")))
    reasons = {r["path"]: r["reason"] for r in rows}
    assert set(reasons) == {"bad/garbage.mp4", "bad/empty.webm", "bad/cut.mp4", "other/twice.mkv"}
    assert "empty file" in reasons["bad/empty.webm"]
    assert "truncated" in reasons["bad/cut.mp4"]
    assert "other/twice.mp4" in reasons["other/twice.mkv"]
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*.mp4")) == \
        sorted([v for v in _videos(root) if v.startswith("other/") and not v.endswith(".mkv")]
               + ["other/av1_000001_000011.mp4"])
    assert not list(dst.rglob("*.part"))
    out = capsys.readouterr().out
    assert "failed 3, 1 not resized" in out and str(dst / FAILURES_FILENAME) in out

    # The bad ones removed: exit 0, the finished videos skipped; the twin is listed, not a failure.
    shutil.rmtree(root / "bad")
    assert _resize(root, dst, "--short-side", SHORT) == 0
    assert [r["path"] for r in csv.DictReader(open(dst / FAILURES_FILENAME, encoding="utf-8"))] == \
        ["other/twice.mkv"]
    assert "resized 0" in capsys.readouterr().out
    (root / "other/twice.mkv").unlink()
    assert _resize(root, dst, "--short-side", SHORT) == 0
    assert not (dst / FAILURES_FILENAME).exists()


def test_a_rerun_with_other_settings_is_refused_unless_overwrite(tmp_path, capsys):
    root = tmp_path / "src"
    _encode(root / "a.mp4", "libx264", size=(96, 64), n=3)
    dst = tmp_path / "dst"
    assert _resize(root, dst, "--short-side", 48) == 0
    assert _probe(dst / "a.mp4")["height"] == 48
    assert _resize(root, dst, "--short-side", 32) == 2  # would skip a.mp4, still at 48
    err = capsys.readouterr().err
    assert "--short-side 48 -> 32" in err and "--overwrite" in err
    assert _probe(dst / "a.mp4")["height"] == 48
    assert _resize(root, dst, "--short-side", 32, "--overwrite") == 0
    assert _probe(dst / "a.mp4")["height"] == 32
    assert _resize(root, dst, "--short-side", 32) == 0  # the new settings are the recorded ones


def test_a_dst_that_cannot_be_written_is_a_usage_error(tmp_path, capsys):
    root = tmp_path / "src"
    _encode(root / "a.mp4", "libx264", n=2)
    (tmp_path / "file").write_text("x")
    assert _resize(root, tmp_path / "file") == 2
    assert "is a file" in capsys.readouterr().err
    assert _resize(root, tmp_path / "file" / "sub") == 2  # its parent is a file: mkdir fails
    err = capsys.readouterr().err
    assert "cannot write to DST" in err and "Traceback" not in err


def test_refuses_dst_in_src_and_bad_settings(src, tmp_path, capsys):
    before = _hashes(src)
    for dst in (src, src / "resized", src / "other" / "x"):
        assert _resize(src, dst, "--short-side", SHORT) == 2
        assert "never writes into SRC" in capsys.readouterr().err
    assert _resize(src, tmp_path / "d", "--short-side", 31) == 2
    assert "--short-side 31" in capsys.readouterr().err
    assert _resize(tmp_path / "nope", tmp_path / "d") == 2
    assert "is not a folder" in capsys.readouterr().err
    lst = tmp_path / "abs.txt"
    lst.write_text(f"{tmp_path / 'elsewhere.mp4'} 0\n")
    assert _resize(src, tmp_path / "d", "--list", lst) == 2
    assert "not inside SRC" in capsys.readouterr().err
    # A second run into the same DST while one is writing there.
    busy = tmp_path / "busy"
    busy.mkdir()
    with open(busy / ".resize-videos.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert _resize(src, busy) == 2
        assert "another resize-videos run is writing to" in capsys.readouterr().err
    assert not list(busy.rglob("*.mp4"))
    assert _hashes(src) == before


@pytest.fixture(scope="module")
def slow_src(tmp_path_factory) -> Path:
    """Three videos big enough that each takes a while to resize (about a second on a shared core),
    so that a run can be interrupted mid-video."""
    root = tmp_path_factory.mktemp("resize_slow")
    for i in range(3):
        _encode(root / f"v{i}.mp4", "libx264", size=(640, 480), n=150)
    return root


def _wait_for_part(dst: Path, timeout: float = 60) -> Path | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = list(dst.glob(".*.part")) if dst.exists() else []
        if parts:
            return parts[0]
        time.sleep(0.01)
    return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_interrupted_run_stops_at_once_and_a_rerun_resumes(slow_src, tmp_path, how):
    dst = tmp_path / "dst"
    cmd = [sys.executable, "-m", "vidgn.cli", "resize-videos", str(slow_src), str(dst),
           "--short-side", str(SHORT), "--workers", "2"]
    # As from a terminal: own process group, SIGINT not ignored.
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        part = _wait_for_part(dst)
        assert part is not None, "no video was started"
        worker = int(part.name.split(".")[-2])
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # a terminal sends it to the run and its workers
        else:
            os.kill(proc.pid, signal.SIGTERM)  # `kill PID`: the main process only
        assert proc.wait(timeout=30) == 130
        time.sleep(0.2)
        assert not _alive(worker), "a worker went on after the run stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert b"rerun the same command to resume" in proc.stderr.read()
    assert not (dst / LOCK_FILENAME).exists()  # removed by the stopped run
    # Nothing half-written anywhere: every file at a final name is complete, no leftovers.
    assert not list(dst.glob(".*.part"))
    finished = sorted(p.name for p in dst.glob("*.mp4"))
    for name in finished:
        assert _probe(dst / name)["frames"] == 150
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert f"resized {3 - len(finished)}, skipped {len(finished)} (already done)" in proc.stdout
    assert sorted(p.name for p in dst.glob("*.mp4")) == ["v0.mp4", "v1.mp4", "v2.mp4"]


def test_a_killed_worker_does_not_stop_the_run(slow_src, tmp_path):
    root = slow_src
    dst = tmp_path / "dst"
    killed = []

    def kill_a_worker():
        part = _wait_for_part(dst)
        if part is not None and not killed:
            os.kill(int(part.name.split(".")[-2]), signal.SIGKILL)  # as a decoder segfault ends it
            killed.append(part.name)

    t = threading.Thread(target=kill_a_worker)
    t.start()
    try:
        status = _resize(root, dst, "--short-side", SHORT, "--workers", 2)
    finally:
        killed.append("stop")
        t.join()
    assert killed[0] != "stop", "no worker was caught mid-video"
    # The video in flight was redone alone (it does not crash by itself): everything is done.
    assert status == 0
    for i in range(3):
        assert _probe(dst / f"v{i}.mp4")["frames"] == 150
    assert not list(dst.glob(".*.part"))


def _encode_colours(path: Path, codec: str, pix_fmt: str, *, matrix=None, full_range=False,
                    size=(384, 64)) -> Path:
    """Flat colour bars, converted to YUV with `matrix` ("itu709", "itu601" or None: FFmpeg's
    default) and range, and tagged so: what a decoder must read back as the same RGB."""
    width, height = size
    codes = {"itu709": 1, "itu601": 6}
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        if matrix:
            s.codec_context.colorspace = s.codec_context.color_primaries = s.codec_context.color_trc = codes[matrix]
        if full_range:
            s.codec_context.color_range = 2
        for _ in range(4):
            img = np.zeros((height, width, 3), np.uint8)
            for k, rgb in enumerate(COLOURS):
                img[:, k * width // len(COLOURS):(k + 1) * width // len(COLOURS)] = rgb
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(
                format=pix_fmt, dst_colorspace=matrix, dst_color_range="JPEG" if full_range else "MPEG")
            if matrix:
                frame.colorspace = codes[matrix]
            frame.color_range = 2 if full_range else 1
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


COLOURS = [(30, 30, 30), (128, 128, 128), (220, 220, 220), (200, 60, 20), (20, 180, 60), (40, 60, 210)]


def _bar_colours(path: Path) -> np.ndarray:
    """Mean RGB of the middle of each colour bar, as vidgn decodes the video (decord)."""
    from vidgn.data.video import decode_frames, open_video

    frame = decode_frames(open_video(path)[0], [1], path)[0].numpy().astype(float)  # (H, W, 3)
    h, w = frame.shape[:2]
    n = len(COLOURS)
    return np.array([frame[h // 4: 3 * h // 4, round((k + 0.3) * w / n): round((k + 0.7) * w / n)]
                     .reshape(-1, 3).mean(0) for k in range(n)])


@pytest.mark.parametrize("kind", ["bt709", "bt601", "untagged", "full_range", "mjpeg_yuvj"])
def test_resized_videos_keep_their_colours(tmp_path, kind):
    """YouTube's HD is BT.709, phones often write full range: the resized video decodes to the
    colours the original decodes to (its matrix is kept and tagged; full range becomes limited)."""
    src = tmp_path / "src"
    src.mkdir()
    if kind == "mjpeg_yuvj":
        path = _encode_colours(src / "a.avi", "mjpeg", "yuvj420p")
    else:
        path = _encode_colours(src / "a.mp4", "libx264", "yuv420p",
                               matrix={"bt709": "itu709", "bt601": "itu601"}.get(kind),
                               full_range=kind == "full_range")
    original = _bar_colours(path)
    assert np.abs(original - np.array(COLOURS)).max() < 6, original  # the source is what was meant
    assert _resize(src, tmp_path / "dst", "--short-side", 48, "--workers", 1) == 0
    resized = _bar_colours(tmp_path / "dst" / "a.mp4")
    # Measured: at most 2 levels (full range: the 16-235 quantisation); 17-25 before tags were kept.
    assert np.abs(resized - original).max() < 3, (original.round(), resized.round())


def test_a_symlink_loop_in_src_is_walked_once(tmp_path):
    """Linked folders are followed (datasets are assembled from links), each real folder once."""
    from vidgn.tools.kinetics_inputs import index_videos
    from vidgn.tools.resize import find_videos

    src = tmp_path / "src"
    _encode(src / "sub/a_000001_000011.mp4", "libx264", n=2)
    _encode(tmp_path / "elsewhere/b_000002_000012.mp4", "libx264", n=2)
    (src / "sub/loop").symlink_to("..")  # back up the tree
    (src / "linked").symlink_to(tmp_path / "elsewhere")
    (src / "linked_again").symlink_to(tmp_path / "elsewhere")
    assert find_videos(src) == ["linked/b_000002_000012.mp4", "sub/a_000001_000011.mp4"]
    by_clip, _ = index_videos(src)
    assert sorted(by_clip.values()) == ["linked/b_000002_000012.mp4", "sub/a_000001_000011.mp4"]


def test_a_list_labelled_with_class_names_needs_no_classes_file(tmp_path, capsys):
    """resize-videos --list reads only the paths: names with spaces, class-name labels (no
    classes.txt anywhere), a header and a quoted path all name their videos."""
    root = tmp_path / "src"
    for rel in ("abseiling/a 1.mp4", "passing American football (in game)/b.mp4", "c,d.mp4", "skipped.mp4"):
        _encode(root / rel, "libx264", n=2)
    lst = tmp_path / "list.txt"
    lst.write_text("path label\nabseiling/a 1.mp4 abseiling\n"
                   "passing American football (in game)/b.mp4 passing American football (in game)\n"
                   '"c,d.mp4",3\n')
    assert _resize(root, tmp_path / "dst", "--short-side", SHORT, "--list", lst) == 0
    assert _videos(tmp_path / "dst") == ["abseiling/a 1.mp4", "c,d.mp4",
                                         "passing American football (in game)/b.mp4"]


def test_a_dst_without_a_settings_record_gets_none_written_by_a_partial_rerun(tmp_path, capsys):
    """Videos made before settings were recorded: their settings are unknown, so a rerun that skips
    them says so and writes no record (it could be false); --overwrite redoes them and records."""
    from vidgn.tools.resize import SETTINGS_FILENAME

    root = tmp_path / "src"
    _encode(root / "a.mp4", "libx264", size=(96, 64), n=3)
    dst = tmp_path / "dst"
    assert _resize(root, dst, "--short-side", 48) == 0
    (dst / SETTINGS_FILENAME).unlink()  # as an older vidgn left it
    assert _resize(root, dst, "--short-side", 32) == 0
    assert "no record of the settings" in capsys.readouterr().err
    assert not (dst / SETTINGS_FILENAME).exists() and _probe(dst / "a.mp4")["height"] == 48
    assert _resize(root, dst, "--short-side", 32, "--overwrite") == 0
    assert (dst / SETTINGS_FILENAME).exists() and _probe(dst / "a.mp4")["height"] == 32


def test_a_video_with_frames_missing_in_the_middle_is_not_resized(tmp_path, capsys):
    """Damage the demuxer skipped leaves a jump in the frame times but no error; re-encoding would
    give it smooth times and hide it, so it is reported. A still stored as one long frame (a jump
    without missing bytes) is resized."""
    from tests.test_check_videos import write_demuxer_skipping_webm

    root = tmp_path / "src"
    root.mkdir()
    write_demuxer_skipping_webm(root / "damaged.webm")
    with av.open(str(root / "still.mp4"), "w") as c:  # frame 20 held for 1.6 s, as in a screen recording
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(40):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 6 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i + (40 if i > 20 else 0), Fraction(1, 25)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    assert _resize(root, tmp_path / "dst", "--short-side", SHORT) == 1
    rows = list(csv.DictReader(open(tmp_path / "dst" / FAILURES_FILENAME, encoding="utf-8")))
    assert [r["path"] for r in rows] == ["damaged.webm"] and "frames missing" in rows[0]["reason"]
    assert not (tmp_path / "dst" / "damaged.mp4").exists()
    assert _probe(tmp_path / "dst" / "still.mp4")["frames"] == 40