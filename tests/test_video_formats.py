"""What downloads contain decodes frame-exactly through vidgn.data.video (docs/decoders.md).

Tiny real files written with PyAV (`vidgn.benchmarks.decoder_matrix_files`: every frame differs
from its neighbours), compared with PyAV's own decode at the same index. 72 frames with a keyframe
every 60, so the drawn indices cross a keyframe and the decoder has to seek.
"""
from __future__ import annotations

import json

import pytest

from vidgn.benchmarks.decoders import compare
from vidgn.benchmarks.decoder_matrix_files import (Case, check_reference, match, reference_frames,
                                                    write_case)
from vidgn.data.video import decode_frames, open_video
from vidgn.tools.check_videos import check_video

W, H, N = 64, 48, 72
CASES = {
    "av1_mp4": Case("av1_mp4", "libsvtav1", "mp4", W, H, frames=N),
    "av1_webm": Case("av1_webm", "libsvtav1", "webm", W, H, frames=N),
    "av1_10bit_mkv": Case("av1_10bit_mkv", "libsvtav1", "mkv", W, H, "yuv420p10le", frames=N),
    "vp9_webm": Case("vp9_webm", "libvpx-vp9", "webm", W, H, frames=N),
    "vp9_vfr_webm": Case("vp9_vfr_webm", "libvpx-vp9", "webm", W, H, frames=N, vfr=True),
    "h264_10bit_mp4": Case("h264_10bit_mp4", "libx264", "mp4", W, H, "yuv420p10le", frames=N),
    # x265's open-GOP keyframes (when it makes one: CRA): decord's own seek lands 3 frames late
    "hevc_mp4": Case("hevc_mp4", "libx265", "mp4", W, H, frames=N),
    "hevc_10bit_mkv": Case("hevc_10bit_mkv", "libx265", "mkv", W, H, "yuv420p10le", frames=N),
    # B-frames in AVI: decord has no timestamps, its seeks land on frame 0 (read from the start)
    "h264_avi": Case("h264_avi", "libx264", "avi", W, H, frames=N),
    "h264_rot90_mp4": Case("h264_rot90_mp4", "libx264", "mp4", W, H, frames=N, rotation=90),
    "h264_24w_mp4": Case("h264_24w_mp4", "libx264", "mp4", 24, 32, frames=N),  # padded RGB rows
    "h264_mp4": Case("h264_mp4", "libx264", "mp4", W, H, frames=N),
}
# Frames across the keyframe at 60, out of order, with repeats: the shape of a test-time draw.
INDICES = [70, 3, 61, 58, 59, 60, 10, 10, 71, 0, 45, 62]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    return {name: write_case(case, folder) for name, case in CASES.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_decodes_frame_exactly(files, name):
    path = files[name]
    refs, rotation = reference_frames(path)
    assert check_reference(CASES[name], refs, rotation) is None  # PyAV decodes what was written
    reader, info = open_video(path)
    assert info.num_frames == N
    for indices in (INDICES, list(range(0, N, 2)), list(range(56, 64))):
        frames = decode_frames(reader, indices, path).numpy()
        verdicts = [match(f, refs, i) for f, i in zip(frames, indices)]
        wrong = [(i, round(d, 1)) for (ok, d), i in zip(verdicts, indices) if not ok]
        assert not wrong, f"{name}: frames (index, mean abs diff to PyAV's) {wrong} are not PyAV's"


def test_rotated_video_comes_in_display_orientation(files):
    reader, _ = open_video(files["h264_rot90_mp4"])
    assert tuple(decode_frames(reader, [0]).shape[1:3]) == (W, H)  # coded 64x48, shown 48 wide


def test_only_files_that_decord_mis_seeks_are_read_from_the_start(files):
    """The slow path (no seeks) is taken exactly for the files where decord's own get_batch, which
    seeks to the keyframe before a jump, returns wrong frames."""
    import decord

    slow, mis_seeked = set(), set()
    for name, path in files.items():
        refs, _ = reference_frames(path)
        try:
            raw = decord.VideoReader(str(path), num_threads=1).get_batch(INDICES).asnumpy()
        except decord.DECORDError as e:  # padded-row widths: no frames at all (the width fallback)
            assert "DECORDArrayCopyFromTo" in str(e), e
            continue
        if not all(match(f, refs, i)[0] for f, i in zip(raw, INDICES)):
            mis_seeked.add(name)
        if not open_video(path)[0].vidgn_seeks_exactly:
            slow.add(name)
    assert slow == mis_seeked
    assert "h264_avi" in slow and "h264_mp4" not in slow  # decord has no timestamps for B-frames in AVI


@pytest.mark.parametrize("name", ["av1_mp4", "av1_webm", "av1_10bit_mkv", "vp9_webm", "hevc_10bit_mkv"])
def test_check_videos_passes_what_decodes(files, name):
    assert check_video(str(files[name])) is None


def test_bench_decoders_end_to_end(tmp_path):
    from importlib import metadata

    from vidgn.cli import main

    out = tmp_path / "d.json"
    assert main(["bench", "decoders", "--matrix", "tiny", "--files", str(tmp_path / "files"),
                 "--repeats", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    dist = result["decoder"]["distribution"]
    assert result["decoder"]["version"] == metadata.version(dist)
    rows = {r["name"]: r for r in result["cases"]}
    assert set(rows) == {"h264_mp4_64", "av1_mp4_64", "h264_mp4_24w"}
    assert all(r["vidgn_exact"] for r in rows.values()), {n: r["vidgn"] for n, r in rows.items()}
    assert all(r["vidgn_ms"]["median"] > 0 for r in rows.values())
    assert rows["h264_mp4_64"]["raw_exact"] and rows["h264_mp4_64"]["raw_ms"]["clip"] == 24
    table = compare([str(out)])
    assert table.splitlines()[0].startswith(f"| file | {dist} {result['decoder']['version']}: vidgn |")
    assert "| h264_mp4_64 | exact | exact |" in table and "| av1_mp4_64 | exact | exact |" in table
    assert "H.264 widths 24..24: raw get_batch fails at" in table and "vidgn exact at 1 of 1 widths" in table


def test_a_file_decord_cannot_open_prints_nothing_and_the_reason_is_decords(tmp_path, capfd):
    """decord2 writes why it cannot open a file (`[hh:mm:ss] .../video_reader.cc:86: ERROR opening:
    PATH, REASON`) to stderr from C++, past decord.logging; its exception says only `Error reading`.
    The reason is ours to report (check-videos, the dataset's skip message), once."""
    from vidgn.data.video import VideoDecodeError

    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    capfd.readouterr()
    with pytest.raises(VideoDecodeError) as e:
        open_video(bad)
    assert e.value.reason == "cannot open: Invalid data found when processing input"
    assert capfd.readouterr().err == ""
    assert check_video(str(bad)) == "cannot open: Invalid data found when processing input"
    assert capfd.readouterr().err == ""


def test_other_stderr_output_while_opening_is_passed_on(tmp_path, capfd, monkeypatch):
    import os

    import decord

    from vidgn.data.video import VideoDecodeError

    def fake_reader(path, **kwargs):
        os.write(2, b"a line of someone else's\n")
        os.write(2, f"[10:11:12] /src/video_reader.cc:86: ERROR opening: {path}, Oops, no\n".encode())
        os.write(2, b"\xff not utf-8, kept as is\n")
        raise RuntimeError(f"Error reading {path}...")

    monkeypatch.setattr(decord, "VideoReader", fake_reader)
    path = tmp_path / "x.mp4"
    path.write_bytes(b"x")
    capfd.readouterr()
    with pytest.raises(VideoDecodeError) as e:
        open_video(path)
    assert e.value.reason == "cannot open: Oops, no"
    assert capfd.readouterr().err == "a line of someone else's\n\ufffd not utf-8, kept as is\n"


def _cut_with_stream_copy(src, dst, cut: int, stream=None) -> None:
    """What `yt-dlp --download-sections` gives without --force-keyframes-at-cuts (ffmpeg -ss with
    -c copy): the packets from the keyframe before frame `cut`, timestamps shifted so that `cut`
    shows at 0; the frames before it are hidden by an mp4 edit list, or carry negative times in mkv.
    `stream`: (src2, disposition of src's stream) to put a small thumbnail track first."""
    import av

    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        ist = i.streams.video[0]
        if stream is not None:  # a first, non-default video track (a thumbnail, a preview)
            with av.open(str(stream)) as t:
                tst = t.streams.video[0]
                ost0 = o.add_stream_from_template(tst)
                ost0.disposition = av.stream.Disposition(0)
                thumb = [p for p in t.demux(tst) if p.size]
                ost = o.add_stream_from_template(ist)
                ost.disposition = av.stream.Disposition.default
                for p in thumb:
                    p.stream = ost0
                    o.mux(p)
        else:
            ost = o.add_stream_from_template(ist)
        packets = [p for p in i.demux(ist) if p.size]
        shift = round(cut / float(ist.average_rate) / ist.time_base)
        key = max(p.pts for p in packets if p.is_keyframe and p.pts <= shift)
        first = next(k for k, p in enumerate(packets) if p.is_keyframe and p.pts == key)
        for p in packets[first:]:
            p.pts, p.dts, p.stream = p.pts - shift, p.dts - shift, ost
            o.mux(p)


def _write_open_gop(path):
    """H.264 with open-GOP keyframes at 30 and 60 (x264 --open-gop): the 2 B-frames shown before
    each are decoded after it and reference the GOP before."""
    import av

    from vidgn.benchmarks.decoder_matrix_files import frame_image

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30, options={
            "preset": "veryfast", "g": "30", "x264-params": "open-gop=1:scenecut=0:bframes=3"})
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for i in range(N):
            for p in s.encode(av.VideoFrame.from_ndarray(frame_image(i, W, H), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


# (source, cut, keyframe before the cut). Cut just after an open-GOP keyframe, the frames shown
# before it but decoded after it reference the GOP before, which the cut drops: a player drops them.
CUTS = [("h264_mp4", 13, 0), ("h264_open_gop", 33, 30)]


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
@pytest.mark.parametrize("source, cut, key", CUTS, ids=[c[0] for c in CUTS])
def test_a_clip_cut_with_stream_copy_decodes_as_it_is_shown(files, tmp_path, ext, source, cut, key):
    """A download cut without re-encoding has frames before the cut: an mp4 edit list hides them
    (decord counts them, its decoder drops them); mkv has no edit lists and shows them, except
    open-GOP leading frames, which cannot be decoded. Either way vidgn counts and returns exactly
    the frames a player (FFmpeg, PyAV) shows."""
    src = files[source] if source in files else _write_open_gop(tmp_path / f"{source}.mp4")
    path = tmp_path / f"cut.{ext}"
    _cut_with_stream_copy(src, path, cut)
    _decodes_as_shown(path, reference_frames(src)[0], cut if ext == "mp4" else key)


def test_the_stream_decord_decodes_is_the_one_counted(files, tmp_path):
    """A file whose first video track is a non-default thumbnail: decord decodes FFmpeg's "best"
    stream, the main one, and its hidden frames are counted on that stream."""
    path = tmp_path / "thumb_first.mp4"
    _cut_with_stream_copy(files["h264_mp4"], path, 13, stream=files["h264_24w_mp4"])
    _decodes_as_shown(path, reference_frames(files["h264_mp4"])[0], 13, best=True)


def _decodes_as_shown(path, source: list, first: int, best: bool = False) -> None:
    import av

    with av.open(str(path)) as c:  # what a player shows: FFmpeg's best video stream
        shown = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.best("video"))]
    assert match(shown[0], source, first)[0] and len(shown) == N - first  # what was written
    reader, info = open_video(path)
    assert info.num_frames == len(shown)
    last = len(shown) - 1
    for indices in ([0, 1, last // 2, last, last - 1, 5, 2, last], list(range(max(0, last - 15), last + 1))):
        frames = decode_frames(reader, indices, path).numpy()
        wrong = [i for f, i in zip(frames, indices) if not match(f, shown, i)[0]]
        assert not wrong, f"frames {wrong} of the cut clip are not the ones shown at those positions"
    assert check_video(str(path)) is None


def test_mpeg_ts_is_refused_with_the_fix_and_resizing_makes_it_decode(files, tmp_path):
    """decord skips the first GOP of an MPEG-TS file (its first frame is the second keyframe's,
    even read from the start): refused, and resize-videos' mp4 of it decodes frame-exactly."""
    import av

    from vidgn.cli import main
    from vidgn.data.video import VideoDecodeError

    src = tmp_path / "src"
    src.mkdir()
    with av.open(str(files["h264_mp4"])) as i, av.open(str(src / "clip.ts"), "w", format="mpegts") as o:
        ost = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(i.streams.video[0]):
            if p.size:
                p.stream = ost
                o.mux(p)
    with pytest.raises(VideoDecodeError, match="resize-videos"):
        open_video(src / "clip.ts")
    assert "MPEG-TS" in check_video(str(src / "clip.ts"))
    assert main(["resize-videos", str(src), str(tmp_path / "dst"), "--short-side", str(H)]) == 0
    refs, _ = reference_frames(files["h264_mp4"])
    reader, info = open_video(tmp_path / "dst" / "clip.mp4")
    assert info.num_frames == N
    frames = decode_frames(reader, INDICES, tmp_path / "dst" / "clip.mp4").numpy()
    assert all(match(f, refs, i, tol=16.0)[0] for f, i in zip(frames, INDICES))  # re-encoded: lossy
