"""Synthetic Kinetics-format dataset: real encoded videos whose class is a MOTION, not an appearance.

Why: the GN paper's Kinetics experiment (Table 8) cannot be re-run here without the dataset, yet the
demo, the tests and the benchmarks need videos laid out exactly like Kinetics (class-name folders with
spaces and parentheses, `{youtube_id}_{start:06d}_{end:06d}.mp4` clips, mostly H.264 mp4 and some VP9
webm, ~340x256, 24/25/30 fps) and a task in which a 3D model must use time:

* every video shows the same kinds of objects (bars, triangles, ellipses in colours drawn from one
  palette) on a random smooth background; the class says only how the "actor" object(s) move:
  direction, speed, orbiting or spinning clockwise vs counter-clockwise, swinging period, pulsing.
  Many classes come in time-reversed pairs (moving right/left, clockwise/counter-clockwise), so one
  frame carries no class information: start positions, orientations, shapes and colours are drawn
  from the same distributions for every class;
* the actor performs its motion inside a central "stage" (see STAGE_MARGIN), so that the crops of
  the training/testing pipeline keep the class cue; translations wrap around the whole frame;
  `object_size` sets how large objects are relative to the frame;
* `distractors` identical-looking objects wander on random smooth paths and spin at random rates;
* `noise` adds camera shake, brightness flicker and pixel grain; `cue_strength` scales the class
  motion (speed, angular rate, swing/pulse amplitude) against the random jitter every object has.

Lower `cue_strength`, more `distractors` and `noise`, more `num_classes` keep models far from 100%
accuracy, the regime in which Kinetics results live.

Output (paths in the lists are relative to `out_dir`):
    out_dir/classes.txt                       class names, sorted (Kinetics index order)
    out_dir/train.txt, out_dir/val.txt        `path label` lists (label = class index)
    out_dir/{train,val}/<class name>/<id>_<start:06d>_<end:06d>.{mp4,webm}
    out_dir/synthetic.json                    the parameters and per-video fps/size/frames

Frame-index stamping (`stamp_frame_index=True`) writes each frame's index as a row of large black or
white blocks in the bottom eighth of the frame, which survives H.264/VP9 compression and resizing
(not cropping); `read_frame_index` reads it back, for exact-index tests of samplers and decoders.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import string
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (name, kind, params). Order matters: `num_classes=k` takes the first k, so the first entries mix
# direction, rotation sense and periodicity, and time-reversed pairs sit next to each other.
# Speeds are in frame sizes per second and periods in seconds, so that the motion looks the same at
# any fps and resolution.
MOTIONS: list[tuple[str, str, dict]] = [
    ("moving right", "translate", {"angle": 0.0, "speed": 0.35}),
    ("moving left", "translate", {"angle": 180.0, "speed": 0.35}),
    ("orbiting (clockwise)", "orbit", {"sign": 1.0, "period": 2.5}),
    ("orbiting (counter-clockwise)", "orbit", {"sign": -1.0, "period": 2.5}),
    ("spinning (clockwise)", "spin", {"sign": 1.0, "period": 2.0}),
    ("spinning (counter-clockwise)", "spin", {"sign": -1.0, "period": 2.0}),
    ("swinging (horizontal)", "swing", {"angle": 0.0, "period": 1.6}),
    ("pulsing (slow)", "pulse", {"period": 1.5}),
    ("moving up", "translate", {"angle": 270.0, "speed": 0.35}),
    ("moving down", "translate", {"angle": 90.0, "speed": 0.35}),
    ("swinging (vertical)", "swing", {"angle": 90.0, "period": 1.6}),
    ("pulsing (fast)", "pulse", {"period": 0.6}),
    ("moving right (fast)", "translate", {"angle": 0.0, "speed": 0.8}),
    ("moving left (fast)", "translate", {"angle": 180.0, "speed": 0.8}),
    ("moving up (fast)", "translate", {"angle": 270.0, "speed": 0.8}),
    ("moving down (fast)", "translate", {"angle": 90.0, "speed": 0.8}),
    ("swinging (horizontal, fast)", "swing", {"angle": 0.0, "period": 0.7}),
    ("swinging (vertical, fast)", "swing", {"angle": 90.0, "period": 0.7}),
    ("orbiting (clockwise, fast)", "orbit", {"sign": 1.0, "period": 1.1}),
    ("orbiting (counter-clockwise, fast)", "orbit", {"sign": -1.0, "period": 1.1}),
    ("spinning (clockwise, fast)", "spin", {"sign": 1.0, "period": 0.8}),
    ("spinning (counter-clockwise, fast)", "spin", {"sign": -1.0, "period": 0.8}),
    ("moving diagonally (up-right)", "translate", {"angle": 315.0, "speed": 0.4}),
    ("moving diagonally (down-left)", "translate", {"angle": 135.0, "speed": 0.4}),
    ("moving diagonally (up-left)", "translate", {"angle": 225.0, "speed": 0.4}),
    ("moving diagonally (down-right)", "translate", {"angle": 45.0, "speed": 0.4}),
]
SHAPES = ("bar", "triangle", "ellipse")  # none is rotationally symmetric, so spinning is visible
PALETTE = np.array([[230, 40, 40], [40, 200, 60], [50, 90, 230], [240, 210, 40], [220, 60, 220],
                    [40, 210, 220], [250, 140, 30], [245, 245, 245], [20, 20, 20]], np.float32)
JITTER_SPEED = 0.06  # std of every object's random velocity, frame sizes per second
DISTRACTOR_SPEED = 0.3  # std of a distractor's wandering velocity, frame sizes per second
# The actor's motion stays inside the frame minus this fraction of the width and height on each
# side. A centre crop of the short side (val/test) cuts 1/8 of a 4:3 frame's width off each side,
# random training crops of a larger short side cut more (but at random places); an actor outside
# the crop leaves a clip without its class cue. Distractors, which carry no cue, roam everywhere.
STAGE_MARGIN = 0.15
STAMP_BITS = 12  # frame index stamp: up to 4095 frames (136 s at 30 fps)
STAMP_BAND = 1 / 8  # fraction of the frame height, at the bottom, that carries the stamp
_ID_CHARS = string.ascii_letters + string.digits + "-_"  # YouTube id alphabet


@dataclass
class SyntheticDataset:
    root: Path
    train_list: Path
    val_list: Path
    classes_file: Path
    classes: list[str]


# ----------------------------------------------------------------------------- frame-index stamp

def _stamp(frame: np.ndarray, index: int) -> None:
    """Write `index` into the bottom band of `frame` (H, W, 3) uint8, in place, MSB first."""
    h, w = frame.shape[:2]
    if not 0 <= index < 2**STAMP_BITS:
        raise ValueError(f"frame index {index} does not fit the {STAMP_BITS}-bit stamp")
    top = h - max(2, round(h * STAMP_BAND))
    for b in range(STAMP_BITS):
        bit = (index >> (STAMP_BITS - 1 - b)) & 1
        x0, x1 = round(b * w / STAMP_BITS), round((b + 1) * w / STAMP_BITS)
        frame[top:, x0:x1] = 255 if bit else 0


def read_frame_index(frame) -> int:
    """Frame index stamped by `make_synthetic(stamp_frame_index=True)`.

    Args:
        frame: (H, W, 3) uint8 numpy array, torch tensor or decord NDArray, a whole decoded frame
            (it may be resized, not cropped).

    Raises:
        ValueError: the frame carries no readable stamp.
    """
    if hasattr(frame, "asnumpy"):  # decord NDArray
        frame = frame.asnumpy()
    elif not isinstance(frame, np.ndarray):  # torch tensor
        frame = frame.detach().cpu().numpy()
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"expected one (H, W, 3) frame, got shape {tuple(frame.shape)}")
    h, w = frame.shape[:2]
    band = h * STAMP_BAND
    # Read only the centre of each block: its edges are blurred by compression and resizing.
    y0, y1 = int(h - 0.75 * band), max(int(h - 0.25 * band), int(h - 0.75 * band) + 1)
    index = 0
    for b in range(STAMP_BITS):
        x0 = int((b + 0.25) * w / STAMP_BITS)
        x1 = max(int(math.ceil((b + 0.75) * w / STAMP_BITS)), x0 + 1)
        level = float(frame[y0:y1, x0:x1].astype(np.float32).mean())
        if 70 < level < 185:
            raise ValueError(f"no frame-index stamp in this frame (bit {b} reads grey level {level:.0f}; "
                             "was it made with stamp_frame_index=True, and is it uncropped?)")
        index = (index << 1) | int(level >= 128)
    return index


# ----------------------------------------------------------------------------- rendering

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


def _render_in_subprocesses(jobs: list[dict], workers: int) -> list[dict]:
    """Run `render_video` over `jobs` in `workers` fresh `python` processes; metadata in job order.

    Plain subprocesses, not multiprocessing: spawn/forkserver re-run the caller's __main__ script,
    and fork would inherit decord's libvpx (see make_synthetic).
    """
    env = dict(os.environ)
    env["MALLOC_PERTURB_"] = "165"  # see make_synthetic: same seed, same bytes, whatever ran before
    pkg_parent = str(Path(__file__).resolve().parents[2])  # so that `import vidgn` works in the child
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    chunks = [list(range(i, len(jobs), workers)) for i in range(workers)]
    chunks = [c for c in chunks if c]
    procs = []
    for chunk in chunks:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import vidgn.data.synthetic as s; s._render_stdin()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        proc.stdin.write(json.dumps([jobs[i] for i in chunk]))
        proc.stdin.close()
        procs.append(proc)
    metas: list[dict | None] = [None] * len(jobs)
    failed = []
    for chunk, proc in zip(chunks, procs):
        out = proc.stdout.read()
        proc.stdout.close()
        if proc.wait() != 0:
            failed.append(proc.returncode)
            continue
        for i, meta in zip(chunk, json.loads(out)):
            metas[i] = meta
    if failed:
        raise RuntimeError(f"video rendering subprocess(es) failed with exit status {failed}; "
                           "see the error printed above")
    return metas


def _render_stdin() -> None:
    """Subprocess entry: JSON list of jobs on stdin -> JSON list of metadata on stdout."""
    jobs = json.loads(sys.stdin.read())
    json.dump([render_video(job) for job in jobs], sys.stdout)


def t_axis(n: int, fps: int) -> np.ndarray:
    return np.arange(n) / fps


# ----------------------------------------------------------------------------- dataset

def _size(x: float) -> int:
    # Multiple of 4: yuv420p needs even sizes, and with an odd chroma width (luma width 2 mod 4)
    # libx264 reads uninitialised row padding, so its output changes from run to run.
    return max(4, int(round(x / 4)) * 4)


def _youtube_id(rng: np.random.Generator) -> str:
    return "".join(_ID_CHARS[i] for i in rng.integers(0, len(_ID_CHARS), 11))


def make_synthetic(
    out_dir,
    *,
    num_classes: int = 8,
    train_per_class: int = 8,
    val_per_class: int = 4,
    width: int = 340,
    height: int = 256,
    size_jitter: float = 0.1,
    seconds: float = 2.0,
    fps_choices: tuple[int, ...] = (24, 25, 30),
    webm_fraction: float = 0.2,
    noise: float = 0.3,
    distractors: int = 2,
    cue_strength: float = 0.8,
    stamp_frame_index: bool = False,
    seed: int = 0,
    workers: int = 1,
    actors: int = 1,
    crf: int = 23,
    object_size: float = 0.1,
    motions: tuple[str, ...] | None = None,
) -> SyntheticDataset:
    """Write a deterministic Kinetics-format dataset of motion-defined classes (see module doc).

    Args:
        out_dir: output folder (created; existing files with the same names are overwritten).
        num_classes: number of classes, the first `num_classes` of `MOTIONS` (at most len(MOTIONS)).
        train_per_class: training videos per class.
        val_per_class: validation videos per class.
        width: nominal frame width in pixels (Kinetics clips are commonly resized to 340x256).
        height: nominal frame height in pixels.
        size_jitter: each video's width and height are scaled independently by a factor drawn
            from [1 - size_jitter, 1 + size_jitter] (then rounded to a multiple of 4).
        seconds: duration of every video in seconds (frames = round(seconds * fps)).
        fps_choices: frame rates, spread evenly over the videos in a seeded order.
        webm_fraction: fraction of videos written as VP9 webm (the rest H.264 mp4), chosen by seed.
        noise: nuisance strength in [0, 1]: camera shake, brightness flicker, pixel grain (std
            10 * noise grey levels).
        distractors: objects per video that look like the actor but wander randomly.
        cue_strength: scale of the class motion (speed, angular rate, swing/pulse amplitude); every
            object also has a random jitter of fixed size, so small values make classes hard.
        stamp_frame_index: write each frame's index into its bottom band (see `read_frame_index`).
        seed: everything (ids, sizes, fps, content, codecs) is a function of the seed.
        workers: processes that render/encode videos in parallel (the output does not depend on it).
        actors: objects per video that perform the class motion.
        crf: H.264 quality (lower = better and bigger); VP9 uses crf + 10 on its own scale.
        object_size: mean object radius (half the length of a bar) as a fraction of the frame's
            short side; each object's is drawn from [0.7, 1.2] times this. Small objects at low
            resolution carry a weaker motion signal.
        motions: class names picked from `MOTIONS` (overrides `num_classes`), e.g. the four
            translation directions for an easy task.

    Returns:
        SyntheticDataset with the root, list and classes paths and the class names.
    """
    if motions:
        known = {name: (name, kind, params) for name, kind, params in MOTIONS}
        unknown = [m for m in motions if m not in known]
        if unknown:
            raise ValueError(f"unknown motions {unknown}; choose from: {', '.join(known)}")
        chosen = [known[m] for m in dict.fromkeys(motions)]
        num_classes = len(chosen)
    else:
        chosen = None
    if not 1 <= num_classes <= len(MOTIONS):
        raise ValueError(f"num_classes must be in 1..{len(MOTIONS)}, got {num_classes}")
    if train_per_class < 0 or val_per_class < 0 or train_per_class + val_per_class == 0:
        raise ValueError("train_per_class and val_per_class must be >= 0 and not both 0")
    if not fps_choices or any(int(f) <= 0 for f in fps_choices):
        raise ValueError(f"fps_choices must be positive frame rates, got {fps_choices}")
    if not 0.0 <= webm_fraction <= 1.0 or not 0.0 <= size_jitter < 1.0:
        raise ValueError("webm_fraction must be in [0, 1] and size_jitter in [0, 1)")
    if seconds <= 0 or actors < 1 or distractors < 0:
        raise ValueError("seconds must be > 0, actors >= 1, distractors >= 0")
    if not 0.0 < object_size <= 0.3:
        raise ValueError(f"object_size must be in (0, 0.3] (a fraction of the short side), got {object_size}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    chosen = chosen or MOTIONS[:num_classes]
    classes = sorted(name for name, _, _ in chosen)  # Kinetics convention: index = sorted position
    label_of = {name: i for i, name in enumerate(classes)}

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    jobs = []
    used_ids: set[str] = set()
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for motion_idx, (name, kind, params) in enumerate(chosen):
            for k in range(per_class):
                vid = _youtube_id(rng)
                while vid in used_ids:
                    vid = _youtube_id(rng)
                used_ids.add(vid)
                start = int(rng.integers(0, 600))
                end = start + max(1, round(seconds))
                jobs.append({
                    "split": split, "label": label_of[name], "kind": kind, "params": params,
                    "stem": f"{vid}_{start:06d}_{end:06d}", "class_name": name,
                    "width": _size(width * rng.uniform(1 - size_jitter, 1 + size_jitter)),
                    "height": _size(height * rng.uniform(1 - size_jitter, 1 + size_jitter)),
                    "seed_key": [seed, 1, 0 if split == "train" else 1, motion_idx, k],
                })
    # fps and codec spread evenly (not i.i.d.), so that even a tiny dataset has every fps and some webm.
    fps_order = rng.permutation(len(jobs))
    n_webm = int(round(webm_fraction * len(jobs)))
    webm_set = set(rng.permutation(len(jobs))[:n_webm].tolist())
    for rank, j in enumerate(fps_order):
        fps = int(fps_choices[rank % len(fps_choices)])
        job = jobs[j]
        ext = "webm" if j in webm_set else "mp4"
        job["rel"] = f"{job['split']}/{job['class_name']}/{job['stem']}.{ext}"
        job.update(path=str(root / job["rel"]), fps=fps, frames=max(1, round(seconds * fps)),
                   noise=float(noise), cue_strength=float(cue_strength), distractors=int(distractors),
                   actors=int(actors), stamp=bool(stamp_frame_index), crf=int(crf),
                   object_size=float(object_size))
        if stamp_frame_index and job["frames"] >= 2**STAMP_BITS:
            raise ValueError(f"{job['frames']} frames do not fit the {STAMP_BITS}-bit index stamp")

    # Always encode in fresh interpreter processes, for two reasons. (1) libx264 reads some
    # uninitialised memory, so a video's bytes would depend on what the process's heap held before
    # (the videos encoded earlier in it, hence on `workers`); the subprocesses run with glibc's
    # MALLOC_PERTURB_, which fills every fresh allocation with a fixed byte. (2) decord loads its
    # own, older libvpx with RTLD_GLOBAL; once it is imported, PyAV's libavcodec binds to that
    # libvpx and VP9 encoding fails ("avcodec_open2(libvpx-vp9) returned 22").
    metas = _render_in_subprocesses(jobs, max(1, workers))

    from vidgn.data.lists import write_list

    classes_file = root / "classes.txt"
    classes_file.write_text("".join(c + "\n" for c in classes), encoding="utf-8")
    lists = {}
    for split in ("train", "val"):
        lists[split] = root / f"{split}.txt"
        write_list(lists[split], [(m["path"], m["label"]) for m, j in zip(metas, jobs)
                                  if j["split"] == split])
    params = dict(num_classes=num_classes, train_per_class=train_per_class,
                  val_per_class=val_per_class, width=width, height=height, size_jitter=size_jitter,
                  seconds=seconds, fps_choices=list(fps_choices), webm_fraction=webm_fraction,
                  noise=noise, distractors=distractors, cue_strength=cue_strength,
                  stamp_frame_index=stamp_frame_index, seed=seed, actors=actors, crf=crf,
                  object_size=object_size)
    (root / "synthetic.json").write_text(json.dumps({"params": params, "videos": metas}, indent=1),
                                         encoding="utf-8")
    return SyntheticDataset(root=root, train_list=lists["train"], val_list=lists["val"],
                            classes_file=classes_file, classes=classes)


# ----------------------------------------------------------------------------- CLI

def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "make-synthetic", help="write a synthetic Kinetics-format dataset (motion-defined classes)",
        description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", help="output folder")
    p.add_argument("--classes", dest="num_classes", type=int, default=8,
                   help=f"number of classes (1..{len(MOTIONS)})")
    p.add_argument("--train-per-class", type=int, default=8)
    p.add_argument("--val-per-class", type=int, default=4)
    p.add_argument("--width", type=int, default=340)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--size-jitter", type=float, default=0.1)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--fps", dest="fps_choices", type=int, nargs="+", default=[24, 25, 30])
    p.add_argument("--webm-fraction", type=float, default=0.2)
    p.add_argument("--noise", type=float, default=0.3, help="camera shake, flicker, grain (0..1)")
    p.add_argument("--distractors", type=int, default=2)
    p.add_argument("--cue-strength", type=float, default=0.8, help="scale of the class motion")
    p.add_argument("--actors", type=int, default=1)
    p.add_argument("--crf", type=int, default=23)
    p.add_argument("--object-size", type=float, default=0.1,
                   help="mean object radius as a fraction of the frame's short side")
    p.add_argument("--motions", nargs="+", metavar="NAME",
                   help="class names from the motion table (overrides --classes), e.g. 'moving left'")
    p.add_argument("--stamp-frame-index", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        ds = make_synthetic(
            args.out_dir, num_classes=args.num_classes, train_per_class=args.train_per_class,
            val_per_class=args.val_per_class, width=args.width, height=args.height,
            size_jitter=args.size_jitter, seconds=args.seconds,
            fps_choices=tuple(args.fps_choices), webm_fraction=args.webm_fraction,
            noise=args.noise, distractors=args.distractors, cue_strength=args.cue_strength,
            stamp_frame_index=args.stamp_frame_index, seed=args.seed, workers=args.workers,
            actors=args.actors, crf=args.crf, object_size=args.object_size,
            motions=tuple(args.motions) if args.motions else None)
    except ValueError as e:
        print(f"vidgn make-synthetic: error: {e}")
        return 2
    n_train = sum(1 for _ in open(ds.train_list, encoding="utf-8"))
    n_val = sum(1 for _ in open(ds.val_list, encoding="utf-8"))
    print(f"wrote {n_train} train + {n_val} val videos, {len(ds.classes)} classes, to {ds.root}")
    print(f"  lists: {ds.train_list}, {ds.val_list}; classes: {ds.classes_file}")
    return 0
