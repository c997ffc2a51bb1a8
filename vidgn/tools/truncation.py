"""When a video counts as truncated (its frames end well before the duration its container
declares) or as missing frames in the middle (a jump in its frame times: damage the demuxer
skipped over, which decodes without an error).

One rule for `vidgn check-videos` (which reports such a video) and `vidgn resize-videos` (which
refuses to re-encode it: the new file would have smooth times and hide the damage).
"""
from __future__ import annotations

# A video whose decodable frames stop this much short of the container's declared duration is
# reported as truncated; the slack keeps clips whose audio outlasts the video by a little readable.
TRUNCATION_SLACK_S = 0.5
TRUNCATION_SLACK_FRAC = 0.1
# Frames missing in the middle: a jump between consecutive frames' times longer than this many
# typical frame intervals, and than GAP_MIN_S, over a stretch of the file that no packet accounts
# for (HOLE_MIN_BYTES or more between packets). The jump alone is no evidence: screen recordings,
# title cards and slideshows store a still as one long frame (a review's false positives: 0.6-10 s
# jumps in intact files). Damage that makes the demuxer skip ahead leaves both (a review's VP9 webm
# with 2 KB overwritten: a 1.44 s jump over 5634 bytes; HEVC mkv: 2.46 s over 7164 bytes), while
# intact files leave at most a few hundred bytes between packets (fragmented mp4's moof boxes: 312).
GAP_INTERVALS = 10
GAP_MIN_S = 0.5
HOLE_MIN_BYTES = 1024

def declared_duration(container, stream) -> float | None:
    """Length (seconds) that a PyAV `container` declares for its video `stream`, from the stream's
    first timestamp: the stream's own duration (mp4, mov), else Matroska's per-track DURATION tag
    (the track's end time: the first timestamp is subtracted), else the container's when the video
    is its only stream (else it may be an audio track's, longer); None if none is declared."""
    tb = stream.time_base
    start = float(stream.start_time * tb) if stream.start_time is not None and tb is not None else 0.0
    if stream.duration is not None and tb is not None:
        return float(stream.duration * tb)
    tag = _hms_seconds(stream.metadata.get("DURATION"))
    if tag is not None:
        return tag - start
    if container.duration is not None and len(container.streams) == 1:
        # The container's duration is its longest stream's: with audio beside the video (FLV, a
        # Matroska file without DURATION tags) it may be the audio's, so only a lone video's counts.
        end = container.duration / 1e6  # av.time_base: microseconds
        # Matroska's segment duration is an end time, other formats' a length.
        return end - start if "matroska" in container.format.name else end
    return None


def _hms_seconds(text: str | None) -> float | None:
    """'00:00:10.000000000' (Matroska's DURATION tag) -> 10.0; None if absent or unreadable."""
    try:
        h, m, sec = (text or "").split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def inspect_file(path: str) -> tuple[float | None, str | None]:
    """(`declared_duration`, `frames_missing`) of the video stream decord decodes (FFmpeg's
    "best"), from one read of the packet headers; (None, None) when PyAV cannot read the header (the
    video decoded with another reader: that is no reason to reject it)."""
    try:
        import av

        with av.open(path) as c:
            stream = c.streams.best("video")
            return declared_duration(c, stream), frames_missing(c, stream)
    except Exception:
        return None, None


def truncation(frames_end_s: float, declared_s: float | None) -> str | None:
    """The reason (`truncated: ...`) when frames ending at `frames_end_s` fall short of the declared
    duration by more than the slack, else None (also when nothing is declared)."""
    if declared_s is None:
        return None
    if frames_end_s < declared_s - max(TRUNCATION_SLACK_S, TRUNCATION_SLACK_FRAC * declared_s):
        return (f"truncated: frames end at {frames_end_s:.2f} s but the container declares "
                f"{declared_s:.2f} s")
    return None


def frames_missing(container, stream) -> str | None:
    """The reason (`frames missing: ...`) when a stretch of the video `stream` of a PyAV
    `container` (opened, not yet read) is gone without an error: its frame times jump (more than
    max(GAP_MIN_S, GAP_INTERVALS x the median step)) across bytes that no packet of the file
    accounts for. From the packet headers (nothing decoded); None also when they cannot be read."""
    if stream is None or stream.time_base is None:
        return None
    layout, video = [], []  # (pos, size) of every packet; (time s, pos) of the video's
    try:
        for p in container.demux():
            if not p.size or p.pos is None or p.pos < 0:
                continue
            layout.append((p.pos, p.size))
            if p.stream.index == stream.index and p.pts is not None and not p.is_discard:
                video.append((float(p.pts * stream.time_base), p.pos))
    except Exception:
        return None
    if len(video) < 3:
        return None
    video.sort()
    times = [t for t, _ in video]
    steps = [b - a for a, b in zip(times, times[1:])]
    median = sorted(steps)[len(steps) // 2]
    i = max(range(len(steps)), key=steps.__getitem__)
    if steps[i] <= max(GAP_MIN_S, GAP_INTERVALS * median):
        return None
    lo, hi = sorted((video[i][1], video[i + 1][1]))
    layout.sort()
    hole = max((b[0] - (a[0] + a[1]) for a, b in zip(layout, layout[1:]) if lo <= a[0] and b[0] <= hi),
               default=0)
    if hole < HOLE_MIN_BYTES:
        return None  # a still stored as one long frame, not damage
    return (f"frames missing: a {steps[i]:.2f} s jump between frames {i} and {i + 1} (at {times[i]:.2f} s; "
            f"typical step {median * 1000:.0f} ms) over {hole} bytes no packet accounts for: damage "
            "the demuxer skipped")
