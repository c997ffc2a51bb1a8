"""check-videos: good videos pass; empty, garbage, truncated (including files that open but fail on
late frames), undecodable-codec and missing files are reported with a reason; exit status and the
cleaned list are right."""
from __future__ import annotations

import os
import re
import shutil
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.helpers import ctrl_c_as_in_a_terminal
from vidgn.cli import main
from vidgn.tools.check_videos import check_video
from vidgn.data.lists import parse_list, resolve


def _encode(path, codec, n=50, *, options=None, container_options=None, size=(64, 48), first_pts=0,
            audio_s=0.0, jump_at=None):
    """Random frames at 25 fps, the first shown at `first_pts` / 25 s; `audio_s` of silent AAC;
    `jump_at`: the frames from that one on are shown 40 frames (1.6 s) later, as when damage made
    the demuxer skip a stretch."""
    rng = np.random.default_rng(0)
    width, height = size
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=25, options=options or {})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8),
                                               format="rgb24")
            jump = 40 if jump_at is not None and i >= jump_at else 0
            frame.pts, frame.time_base = first_pts + i + jump, Fraction(1, 25)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    if audio_s:
        _add_silence(path, audio_s)


def write_demuxer_skipping_webm(path) -> None:
    """A 4 s VP9 webm in 1 s clusters with 15% of its bytes zeroed from 40%: the demuxer resyncs at
    a later cluster, so 1.5 s of frames are gone without a decoding error (measured: a 1.56 s jump
    between frames 39 and 40 over 70541 bytes)."""
    _encode(path, "libvpx-vp9", n=100, options={"deadline": "realtime", "cpu-used": "8"},
            container_options={"cluster_time_limit": "1000"})
    data = bytearray(path.read_bytes())
    a, b = int(len(data) * 0.40), int(len(data) * 0.55)
    data[a:b] = bytes(b - a)
    path.write_bytes(bytes(data))


def _add_silence(path, seconds: float) -> None:
    """Rewrite `path` with a silent AAC track of `seconds` beside its video (remuxed, not re-encoded)."""
    tmp = path.with_name("with_audio_" + path.name)
    with av.open(str(path)) as i, av.open(str(tmp), "w") as o:
        v = o.add_stream_from_template(i.streams.video[0])
        a = o.add_stream("aac", rate=48000)
        for p in i.demux(i.streams.video[0]):
            if p.size:
                p.stream = v
                o.mux(p)
        for k in range(int(seconds * 48000 / 1024)):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, k * 1024
            for p in a.encode(frame):
                o.mux(p)
        for p in a.encode():
            o.mux(p)
    tmp.replace(path)


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
    bad["bad/late_frames_cut.mp4"] = "decode failed for frames"
    # Damaged at 30%: frames 0, n/2 and n-1 all decode (the keyframes after the damage are intact);
    # only decoding every frame finds it, as a training clip over the damage would.
    _encode(root / "mid.mp4", "libx264", n=120, options={"g": "10"}, container_options={"movflags": "+faststart"})
    data = bytearray((root / "mid.mp4").read_bytes())
    at = int(len(data) * 0.3)
    data[at:at + 2000] = np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    (root / "bad/damaged_at_30pct.mp4").write_bytes(bytes(data))
    (root / "mid.mp4").unlink()
    bad["bad/damaged_at_30pct.mp4"] = "decode failed for frames"
    # Intact Matroska files whose container duration is not the video's length: a video that
    # starts at 5 s (the duration is its end time) and one with a longer audio track.
    _encode(root / "starts_at_5s.mkv", "libx264", n=25, first_pts=125)
    _encode(root / "audio_outlasts.mkv", "libx264", n=25, audio_s=3.0)
    good += ["starts_at_5s.mkv", "audio_outlasts.mkv"]
    # A still stored as one long frame (screen recordings, title cards): a 1.6 s jump, intact.
    _encode(root / "still_held.webm", "libvpx-vp9", n=50, jump_at=25,
            options={"deadline": "realtime", "cpu-used": "8"})
    good.append("still_held.webm")
    # Damage that makes the demuxer skip to the next cluster (1 s each here): frames missing in the
    # middle, decoded without an error.
    write_demuxer_skipping_webm(root / "bad/frames_missing.webm")
    bad["bad/frames_missing.webm"] = "frames missing: a "
    # Half a webm: decord sees a shorter video; the container still declares the full duration.
    webm = root / good[0]
    data = webm.read_bytes()
    (root / "bad/half.webm").write_bytes(data[: len(data) // 2])
    bad["bad/half.webm"] = "truncated"
    # AV1 in Matroska (what yt-dlp downloads): decord2 decodes it, so it is not flagged. And H.264 in
    # AVI, where decord has no timestamps: judged by its frame count, not reported as truncated.
    _encode(root / "av1.mkv", "libsvtav1", n=5)
    good.append("av1.mkv")
    _encode(root / "h264.avi", "libx264", n=50)
    good.append("h264.avi")
    bad["bad/missing.mp4"] = "file not found"
    return root, good, bad


def test_check_video_reasons(videos):
    root, good, bad = videos
    for rel in good:
        assert check_video(str(root / rel)) is None, rel
    for rel, why in bad.items():
        reason = check_video(str(root / rel))
        assert reason is not None and why in reason, (rel, reason)
        # The same file gives the same words every time (a resumed check compares them): no
        # decord log times ("[14:00:55] ") or C++ source locations in them.
        assert not re.search(r"\[\d\d:\d\d:\d\d\]|\.(cc|cpp|h):\d+", reason), (rel, reason)


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


def test_one_video_is_said_in_the_singular(videos, tmp_path, capsys):
    root, good, _ = videos
    lst = tmp_path / "one.txt"
    lst.write_text(f"{good[0]} 0\n")
    assert _run([str(lst), "--data-root", str(root), "--workers", "1",
                 "--write-clean", str(tmp_path / "clean.txt")]) == 0
    out = capsys.readouterr().out
    assert "checked 1 video: 1 readable, 0 unreadable" in out
    assert "wrote 1 readable video to" in out
    assert _run([str(lst), "--data-root", str(root)]) == 0
    assert "nothing left to check: the video has a result in" in capsys.readouterr().err


def test_a_clean_list_that_cannot_be_written_is_refused_before_checking(videos, tmp_path, capsys):
    root, good, _ = videos
    lst = tmp_path / "list.txt"
    lst.write_text(f"{good[0]} 0\n")
    before = lst.read_text()
    (tmp_path / "file").write_text("x")
    for out, why in ((lst, "that is the list being checked"),
                     (tmp_path / "list.check.tsv", "that is the check's results file"),
                     (tmp_path / "file" / "sub" / "clean.txt", f"{tmp_path / 'file'} is a file"),
                     (tmp_path, "is a folder")):
        assert _run([str(lst), "--data-root", str(root), "--write-clean", str(out)]) == 2
        assert why in capsys.readouterr().err
    assert lst.read_text() == before
    assert not (tmp_path / "list.check.tsv").exists()  # refused before any video was checked


@pytest.mark.parametrize("command, options", [
    ("check-videos", ["--workers", "--num-threads"]),
    ("resize-videos", ["--workers", "--short-side", "--crf", "--preset", "--list"]),
])
def test_help_shows_the_defaults(command, options, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    # The options section, unwrapped: each option's entry runs up to the next option.
    text = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())
    entries = {e.split()[0]: e for e in ("--" + e for e in text.split(" --")[1:])}
    for option in options:
        assert "default: " in entries[option], entries[option]
    assert f"(default: min(8, CPUs), here {min(8, os.cpu_count() or 1)})" in entries["--workers"]


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
    import vidgn.tools.pool as pool_module  # the crash-safe pool check_videos runs in

    pools = []

    class CountingPool(pool_module.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pools.append(self._max_workers)

    monkeypatch.setattr(pool_module, "ProcessPoolExecutor", CountingPool)
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


# --- Scale: results written as each video finishes, resume after a kill, progress with an ETA ---

import io
import signal
import subprocess
import sys
import time
from pathlib import Path

from vidgn.tools.check_videos import Progress, check_videos


@pytest.fixture(scope="module")
def long_list(videos, synthetic_dataset, tmp_path_factory):
    """A list of 40 good videos (the synthetic ones, each under two names) with the bad files of
    `videos` spread through it: long enough that a check can be killed half-way."""
    root, _, bad = videos
    entries = parse_list(synthetic_dataset.train_list, synthetic_dataset.root) + \
        parse_list(synthetic_dataset.val_list, synthetic_dataset.root)
    rels = []
    for copy in range(2):
        for i, e in enumerate(entries):
            rel = f"many/{copy}/clip {i:02d}{os.path.splitext(e.path)[1]}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(resolve(e, synthetic_dataset.root), root / rel)
            rels.append(rel)
    bad_rels = list(bad)
    for k, rel in enumerate(bad_rels):
        rels.insert(5 + 7 * k, rel)
    lst = tmp_path_factory.mktemp("long_list") / "list.txt"
    lst.write_text("".join(f"{rel} {i % 3}\n" for i, rel in enumerate(rels)))
    return root, lst, len(rels)


def _data_lines(results_file: Path) -> list[str]:
    return results_file.read_text().splitlines()[2:]  # after the check's header and the columns


def _run_quiet(argv, capsys):
    status = main(["check-videos", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_killed_check_resumes_and_ends_as_an_uninterrupted_one(long_list, tmp_path, capsys):
    root, lst, total = long_list
    full_results, killed_results = tmp_path / "full.tsv", tmp_path / "killed.tsv"
    common = [str(lst), "--data-root", str(root), "--workers", "1"]
    status, full_out, _ = _run_quiet(common + ["--results", str(full_results),
                                               "--write-clean", str(tmp_path / "full.clean.txt")], capsys)
    assert status == 1 and len(_data_lines(full_results)) == total

    # The same check in a process of its own, SIGKILLed (with its workers) once a few videos are done.
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from vidgn.cli import main; sys.exit(main(sys.argv[1:]))",
         "check-videos", *common, "--results", str(killed_results)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if killed_results.exists() and len(_data_lines(killed_results)) >= 3:
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(_data_lines(killed_results))
    assert 3 <= done_before < total, done_before
    with open(killed_results, "a") as f:  # a record cut short by the kill, as a kill mid-write leaves
        f.write(f"{root / 'many/0/clip 00.mp4'}\tunrea")

    status, out, err = _run_quiet(common + ["--results", str(killed_results),
                                            "--write-clean", str(tmp_path / "resumed.clean.txt")], capsys)
    assert status == 1
    assert f"{done_before} of {total} videos already checked, {total - done_before} to check" in err
    # Only the rest was checked: every video has exactly one record, the torn one dropped.
    records = _data_lines(killed_results)
    assert len(records) == total and len({r.split("\t")[0] for r in records}) == total
    assert out.replace(str(killed_results), "R").replace("resumed.clean", "C") == \
        full_out.replace(str(full_results), "R").replace("full.clean", "C")
    assert (tmp_path / "resumed.clean.txt").read_text() == (tmp_path / "full.clean.txt").read_text()

    # Run again when everything is checked: nothing decoded, the same report.
    status, again, err = _run_quiet(common + ["--results", str(killed_results),
                                              "--write-clean", str(tmp_path / "resumed.clean.txt")], capsys)
    assert status == 1 and again == out
    # ... said as such, without a progress line of 0 videos/s and an unknown ETA.
    assert f"nothing left to check: all {total} videos have a result in {killed_results}" in err
    assert "videos/s" not in err and "ETA" not in err and "already checked" not in err


def test_a_video_changed_since_its_check_is_checked_again(long_list, tmp_path, capsys):
    root, lst, total = long_list
    work = tmp_path / "root"
    shutil.copytree(root, work)
    results = tmp_path / "r.tsv"
    argv = [str(lst), "--data-root", str(work), "--workers", "2", "--results", str(results)]
    status, out, _ = _run_quiet(argv, capsys)
    victim = work / "many/1/clip 03.mp4"
    assert f"{victim}:" not in out
    victim.write_bytes(b"\x00" * 100)  # replaced by a broken download after the check
    status, out, err = _run_quiet(argv, capsys)
    assert f"{total - 1} of {total} videos already checked, 1 to check" in err
    assert f"{victim}: " in out and "UNREADABLE" in out


def test_a_results_file_of_another_list_is_refused(long_list, tmp_path, capsys):
    root, lst, _ = long_list
    results = tmp_path / "r.tsv"
    other = tmp_path / "other.txt"
    other.write_text(lst.read_text().splitlines()[0] + "\n")
    status, _, _ = _run_quiet([str(other), "--data-root", str(root), "--results", str(results)], capsys)
    before = results.read_text()
    status, out, err = _run_quiet([str(lst), "--data-root", str(root), "--results", str(results)], capsys)
    assert status == 2 and out == ""
    assert f"{results}:1: these are the results of another check" in err and str(other.resolve()) in err
    assert "--results" in err  # the fix
    assert results.read_text() == before  # nothing lost, nothing mixed in

    (tmp_path / "notes.tsv").write_text("path\tstatus\n")
    status, _, err = _run_quiet([str(lst), "--data-root", str(root), "--results",
                                 str(tmp_path / "notes.tsv")], capsys)
    assert status == 2 and "not a check-videos results file" in err


def test_progress_lines_give_done_total_rate_and_eta(long_list):
    root, lst, total = long_list
    paths = [str(resolve(e, root)) for e in parse_list(lst, root, check_files=False)][:6]
    stream = io.StringIO()
    progress = Progress(len(paths) + 4, already=4, stream=stream, interval=0.0)
    seen = []
    results = check_videos(paths, workers=2, progress=progress, on_result=lambda p, r: seen.append(p))
    lines = stream.getvalue().splitlines()
    assert sorted(seen) == sorted(results) == sorted(paths)
    assert len(lines) == len(paths) + 1  # one per video (interval 0) and the final one
    assert lines[0].startswith(f"checked 5/{len(paths) + 4} ") and "videos/s" in lines[0]
    assert all(" ETA " in line for line in lines)
    assert lines[-1].startswith(f"checked {len(paths) + 4}/{len(paths) + 4} (100.0%)")
    assert " ETA 0:00:00 " in lines[-1]


def test_ctrl_c_keeps_the_results_and_says_how_to_resume(long_list, tmp_path):
    root, lst, total = long_list
    results = tmp_path / "r.tsv"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from vidgn.cli import main; sys.exit(main(sys.argv[1:]))",
         "check-videos", str(lst), "--data-root", str(root), "--workers", "1", "--results", str(results)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and len(_data_lines(results)) >= 1:
                break
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
        _, err = proc.communicate(timeout=120)
    finally:  # a failed check must not leave the run and its workers going
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    done = len(_data_lines(results))
    assert 1 <= done < total
    assert f"interrupted: {done} of {total} videos checked, results kept in {results}" in err
    assert "run the same command again" in err and "Traceback" not in err
