"""The renderer: one synthetic video, from its job description to an encoded mp4/webm file.

Why it is built this way: every video shows the same kinds of objects on a random smooth
background, and only the actor's track carries the class (see `motions`), so one frame says
nothing about the class. Distractors wander on random smooth paths; `noise` adds camera shake,
brightness flicker and grain. Everything is drawn from a generator seeded by the job's
`seed_key` alone, and the arithmetic avoids order-dependent sums, so that the same job gives the
same bytes on any run (see `encode` for the other half of that promise). `render_video` takes and
returns plain data because it runs in the encoding subprocesses.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vidgn.tools.synthetic.motions import (DISTRACTOR_SPEED, JITTER_SPEED, PALETTE, SHAPES,
                                           STAGE_MARGIN)
from vidgn.tools.synthetic.stamp import _stamp


def _smooth_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Random low-frequency colour field plus faint static texture, (h, w, 3) float32."""
    gh, gw = int(rng.integers(3, 6)), int(rng.integers(3, 7))
    grid = rng.uniform(40, 200, (gh, gw, 3))
    # Bilinear upsampling with element-wise arithmetic only: no sums whose order (and so last bits)
    # could depend on memory alignment; such bits flip pixels when rounded and break "same seed,
    # same bytes".
    ly, fy = _interp_index(gh, h)
    lx, fx = _interp_index(gw, w)
    rows = grid[ly] * (1 - fy)[:, None, None] + grid[ly + 1] * fy[:, None, None]  # (h, gw, 3)
    bg = rows[:, lx] * (1 - fx)[None, :, None] + rows[:, lx + 1] * fx[None, :, None]  # (h, w, 3)
    bg += rng.normal(0, 6, (h, w, 1))  # static texture, cheap to encode
    return bg.astype(np.float32)


def _interp_index(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower grid index and fraction for `size` samples spread over `n` >= 2 grid points."""
    pos = np.linspace(0, n - 1, size)
    lo = np.clip(np.floor(pos).astype(int), 0, n - 2)
    return lo, pos - lo


def _draw(canvas: np.ndarray, shape: str, cx: float, cy: float, r: float, theta: float,
          color: np.ndarray) -> None:
    """Rasterise one object into `canvas` (H, W, 3) float32, in place; parts off-canvas are clipped."""
    h, w = canvas.shape[:2]
    x0, x1 = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, w)
    y0, y1 = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, h)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xs + 0.5 - cx, ys + 0.5 - cy
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * dx + s * dy, -s * dx + c * dy  # object-frame coordinates
    if shape == "bar":
        mask = (np.abs(u) <= r) & (np.abs(v) <= 0.38 * r)
    elif shape == "ellipse":
        mask = (u / r) ** 2 + (v / (0.5 * r)) ** 2 <= 1.0
    else:  # isosceles triangle pointing along +u
        mask = (u >= -0.6 * r) & (u <= r) & (np.abs(v) <= 0.75 * (r - u) / 1.6)
    canvas[y0:y1, x0:x1][mask] = color


def _ou_path(rng: np.random.Generator, n: int, dt: float, std: float, tau: float) -> np.ndarray:
    """(n, 2) displacement of a 2-D Ornstein-Uhlenbeck velocity process with stationary std `std`."""
    a = math.exp(-dt / tau)
    v = rng.normal(0, std, 2)
    out = np.zeros((n, 2))
    for i in range(1, n):
        v = a * v + math.sqrt(1 - a * a) * std * rng.normal(0, 1, 2)
        out[i] = out[i - 1] + v * dt
    return out


def _object_track(rng, kind: str, params: dict, n: int, fps: int, w: int, h: int, cue: float,
                  actor: bool, object_size: float = 0.1):
    """Per-frame (x, y, radius, angle) arrays for one object, in frame pixel coordinates."""
    dt = 1.0 / fps
    t = np.arange(n) * dt
    size = min(w, h)
    r0 = rng.uniform(0.7, 1.2) * object_size * size
    theta0 = rng.uniform(0, 2 * math.pi)
    radius = np.full(n, r0)
    theta = np.full(n, theta0)
    if not actor:
        x0, y0 = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.1 * h, 0.9 * h)
        # Distractor: wanders on a smooth random path (reflected at the borders) and spins at a
        # random rate, so that it looks like some class's motion for a while.
        walk = _ou_path(rng, n, dt, DISTRACTOR_SPEED * size, tau=1.0)
        x = _reflect(x0 + walk[:, 0], 0.05 * w, 0.95 * w)
        y = _reflect(y0 + walk[:, 1], 0.05 * h, 0.95 * h)
        theta = theta0 + rng.uniform(-1, 1) * math.pi * t
        return x, y, radius, theta
    # The actor performs the class motion inside the central stage (see STAGE_MARGIN), drawn so
    # that the whole motion fits in it and crops keep the class cue. Translations are the
    # exception along their direction (they wrap around the frame, see below).
    sx0, sx1 = STAGE_MARGIN * w, (1 - STAGE_MARGIN) * w
    sy0, sy1 = STAGE_MARGIN * h, (1 - STAGE_MARGIN) * h
    jit = _ou_path(rng, n, dt, JITTER_SPEED * size, tau=0.5)
    if kind == "translate":
        x0, y0 = _in_stage(rng, sx0, sx1, 0.0), _in_stage(rng, sy0, sy1, 0.0)
        ang = math.radians(params["angle"])
        d = cue * params["speed"] * size * t
        # Wrap around the whole frame (leave it fully at one side, come back in at the other), so
        # that position stays uniform in time: one frame, the first included, says nothing about
        # the direction. Not around the stage: an actor that jumps back inside the view makes a
        # big step against the class direction, and at these speeds most clips would hold one.
        x = np.mod(x0 + d * math.cos(ang) + jit[:, 0] + r0, w + 2 * r0) - r0
        y = np.mod(y0 + d * math.sin(ang) + jit[:, 1] + r0, h + 2 * r0) - r0
    elif kind == "orbit":
        big = rng.uniform(0.18, 0.28) * size  # larger than the object, so that it reads as orbiting
        x0, y0 = _in_stage(rng, sx0, sx1, big), _in_stage(rng, sy0, sy1, big)
        phi = rng.uniform(0, 2 * math.pi) + params["sign"] * cue * 2 * math.pi * t / params["period"]
        # Image y points down, so increasing angle is clockwise on screen.
        x = x0 + big * np.cos(phi) + jit[:, 0]
        y = y0 + big * np.sin(phi) + jit[:, 1]
    elif kind == "spin":
        x0, y0 = _in_stage(rng, sx0, sx1, 0.0), _in_stage(rng, sy0, sy1, 0.0)
        x, y = x0 + jit[:, 0], y0 + jit[:, 1]
        theta = theta0 + params["sign"] * cue * 2 * math.pi * t / params["period"]
    elif kind == "swing":
        ang = math.radians(params["angle"])
        amp = cue * 0.18 * (w if params["angle"] == 0.0 else h)
        x0 = _in_stage(rng, sx0, sx1, amp if params["angle"] == 0.0 else 0.0)
        y0 = _in_stage(rng, sy0, sy1, 0.0 if params["angle"] == 0.0 else amp)
        off = amp * np.sin(2 * math.pi * t / params["period"] + rng.uniform(0, 2 * math.pi))
        x, y = x0 + off * math.cos(ang) + jit[:, 0], y0 + off * math.sin(ang) + jit[:, 1]
    elif kind == "pulse":
        x0, y0 = _in_stage(rng, sx0, sx1, 0.0), _in_stage(rng, sy0, sy1, 0.0)
        x, y = x0 + jit[:, 0], y0 + jit[:, 1]
        radius = r0 * (1 + cue * 0.45 * np.sin(2 * math.pi * t / params["period"]
                                               + rng.uniform(0, 2 * math.pi)))
    else:
        raise ValueError(f"unknown motion kind {kind!r}")
    return x, y, radius, theta


def _in_stage(rng: np.random.Generator, lo: float, hi: float, reach: float) -> float:
    """Uniform centre in [lo + reach, hi - reach] (the stage's middle when the motion is wider)."""
    a, b = lo + reach, hi - reach
    return float(rng.uniform(a, b)) if a < b else (lo + hi) / 2


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def render_video(job: dict) -> dict:
    """Render and encode one video described by `job` (see `make_synthetic`); returns its metadata.

    Runs in worker processes, so it takes and returns plain data.
    """
    import av  # here, not at module import: keeps `vidgn --help` fast

    rng = np.random.default_rng(np.random.SeedSequence(job["seed_key"]))
    w, h, fps, n = job["width"], job["height"], job["fps"], job["frames"]
    noise, cue = job["noise"], job["cue_strength"]
    kind, params = job["kind"], job["params"]
    size = min(w, h)
    # Camera shake: the frame is a moving window on a larger canvas; pad so it never leaves it.
    pad = int(math.ceil(0.04 * size * noise)) + 1
    background = _smooth_background(rng, h + 2 * pad, w + 2 * pad)
    n_objects = job["actors"] + job["distractors"]
    objects = []
    for k in range(n_objects):
        actor = k < job["actors"]
        track = _object_track(rng, kind, params, n, fps, w, h, cue, actor, job["object_size"])
        objects.append((SHAPES[int(rng.integers(len(SHAPES)))],
                        PALETTE[int(rng.integers(len(PALETTE)))], track))
    # Draw order random, so that actors are not always on top (which would single them out).
    order = rng.permutation(n_objects)
    shake = _ou_path(rng, n, 1.0 / fps, 0.15 * size * noise, tau=0.3)
    shake = np.clip(shake, -pad + 1, pad - 1).round().astype(int)
    flicker = 1.0 + 0.12 * noise * np.sin(2 * math.pi * t_axis(n, fps) / rng.uniform(0.7, 3.0)
                                          + rng.uniform(0, 2 * math.pi))
    grain = 10.0 * noise  # pixel noise std, grey levels

    out = Path(job["path"])
    out.parent.mkdir(parents=True, exist_ok=True)
    webm = out.suffix == ".webm"
    # bitexact: no random Matroska segment UID or muxing date, so the same seed gives the same bytes.
    container = av.open(str(out), "w", options={"fflags": "+bitexact"})
    if webm:
        # realtime/cpu-used 8: libvpx's fastest settings; crf needs b=0 in libvpx-vp9.
        stream = container.add_stream("libvpx-vp9", rate=fps, options={
            "deadline": "realtime", "cpu-used": "8", "crf": str(job["crf"] + 10), "b": "0"})
    else:
        stream = container.add_stream("libx264", rate=fps, options={
            "crf": str(job["crf"]), "preset": "veryfast"})
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.thread_count = 1  # one thread: identical bytes on every machine; parallelism is per video
    try:
        for i in range(n):
            ox, oy = pad + shake[i, 0], pad + shake[i, 1]
            canvas = background[oy:oy + h, ox:ox + w].copy()
            for k in order:
                shape, color, (x, y, rad, th) = objects[k]
                # Objects live in the scene, so they move with the background under camera shake.
                _draw(canvas, shape, x[i] - shake[i, 0], y[i] - shake[i, 1], rad[i], th[i], color)
            canvas *= flicker[i]
            if grain > 0:
                canvas += rng.normal(0, grain, (h, w, 1)).astype(np.float32)
            frame = np.clip(canvas, 0, 255).astype(np.uint8)
            if job["stamp"]:
                _stamp(frame, i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return {"path": job["rel"], "label": job["label"], "fps": fps, "width": w, "height": h,
            "frames": n, "codec": "vp9" if webm else "h264"}



def t_axis(n: int, fps: int) -> np.ndarray:
    return np.arange(n) / fps
