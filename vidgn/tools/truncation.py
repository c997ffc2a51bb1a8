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
# A jump between consecutive frames' times longer than this many typical frame intervals, and than
# GAP_MIN_S, means frames are missing (a review's damaged VP9 webm: 1.44 s; HEVC mkv: 2.46 s, at
# 25 fps). Variable-frame-rate videos vary their intervals by a few times, not ten.
GAP_INTERVALS = 10
GAP_MIN_S = 0.5


def declared_duration(container, stream) -> float | None:
    """Length (seconds) that a PyAV `container` declares for its video `stream`, from the stream's
    first timestamp: the stream's own duration (mp4, mov), else Matroska's per-track DURATION tag
    (the track's end time: the first timestamp is subtracted; the container's duration can be an
    audio track's, longer than the video's), else the container's; None if it declares none."""
    tb = stream.time_base
    start = float(stream.start_time * tb) if stream.start_time is not None and tb is not None else 0.0
    if stream.duration is not None and tb is not None:
        return float(stream.duration * tb)
    tag = _hms_seconds(stream.metadata.get("DURATION"))
    if tag is not None:
        return tag - start
    if container.duration is not None:
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


def declared_duration_of(path: str) -> float | None:
    """`declared_duration` of the video stream decord decodes (FFmpeg's "best"); None also when
    PyAV cannot read the header (the video decoded with another reader: that is no reason to
    reject it)."""
    try:
        import av

        with av.open(path) as c:
            return declared_duration(c, c.streams.best("video"))
    except Exception:
        return None


def truncation(frames_end_s: float, declared_s: float | None) -> str | None:
    """The reason (`truncated: ...`) when frames ending at `frames_end_s` fall short of the declared
    duration by more than the slack, else None (also when nothing is declared)."""
    if declared_s is None:
        return None
    if frames_end_s < declared_s - max(TRUNCATION_SLACK_S, TRUNCATION_SLACK_FRAC * declared_s):
        return (f"truncated: frames end at {frames_end_s:.2f} s but the container declares "
                f"{declared_s:.2f} s")
    return None


def frame_gap(times_s) -> str | None:
    """The reason (`frames missing: ...`) when the frames' start times (seconds, in display order)
    jump by more than max(GAP_MIN_S, GAP_INTERVALS x the median interval) somewhere, else None."""
    import numpy as np

    t = np.asarray(times_s, dtype=float)
    # Frames without a time read as about -3e17 or -9e15 s (FFmpeg's "no value": AVI, Matroska's
    # frames before a cut); the gaps are judged between the frames that have one.
    t = t[np.isfinite(t) & (t > -1e6)]
    if t.size < 3:
        return None
    steps = np.diff(t)
    limit = max(GAP_MIN_S, GAP_INTERVALS * float(np.median(steps)))
    i = int(np.argmax(steps))
    if steps[i] > limit:
        return (f"frames missing: a {steps[i]:.2f} s jump between frames {i} and {i + 1} (at "
                f"{t[i]:.2f} s; typical step {np.median(steps) * 1000:.0f} ms): frames lost to damage")
    return None
