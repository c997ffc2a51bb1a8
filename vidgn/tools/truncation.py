"""When a video counts as truncated: its frames end well before the duration its container declares.

One rule for `vidgn check-videos` (which reports such a video) and `vidgn resize-videos` (which
refuses to re-encode it: the new file would declare its shorter duration and hide the damage).
"""
from __future__ import annotations

# A video whose decodable frames stop this much short of the container's declared duration is
# reported as truncated; the slack keeps clips whose audio outlasts the video by a little readable.
TRUNCATION_SLACK_S = 0.5
TRUNCATION_SLACK_FRAC = 0.1


def declared_duration(container, stream) -> float | None:
    """Duration (seconds) that a PyAV `container` declares for its video `stream`: the stream's own,
    else the container's; None if it declares none."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1e6  # av.time_base: microseconds
    return None


def declared_duration_of(path: str) -> float | None:
    """`declared_duration` of the file's first video stream; None also when PyAV cannot read the
    header (the video decoded with another reader: that is no reason to reject it)."""
    try:
        import av

        with av.open(path) as c:
            return declared_duration(c, c.streams.video[0])
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
