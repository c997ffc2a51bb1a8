"""`vidgn bench data`: clip-loading throughput per worker, against pytorchvideo and the decode floor.

For each clip shape (default 32x2 and 64x1) at the training crop, three loaders take the same
training job (random window, random short side in [256, 320], random 224 crop, flip) on the same
videos, each single-process (num_workers=0: the figure is per DataLoader worker):

* vidgn    — ClipDataset, split "train": decord get_batch of the sampled frames, uint8 crop-then-
             resize (normalisation is left to the GPU, as in training).
* pytorchvideo — its LabeledVideoDataset with the decord backend and a RandomClipSampler over the
             same window, plus a transform doing what pytorchvideo's Kinetics recipe does
             (uniform temporal subsample, /255, normalise, short-side scale, random crop, flip)
             on its float output. Its decord reader is pinned to the same number of threads
             (its default 0 = one per core is not a per-worker figure).
* floor    — decord VideoReader + get_batch of the same frame indices vidgn uses, nothing else.

Each (loader, clip shape) runs in a fresh process (pytorchvideo switches decord's bridge to torch
process-wide, and peak memory must be per loader), which reports clips/s (wall), CPU ms per clip
and peak RSS (VmHWM), plus how much of it the loading added over the process after imports and
setup (most of the rest is torch itself, shared between forked workers). The loaders take turns,
`--chunk` clips at a time, one process running at a time, so that all of them see the same machine.

Then the total a node delivers: vidgn's training DataLoader (VideoDataModule, as in training) with
each worker count of `--workers` (default 1 and every core), in clips/s over all workers and per
worker, measured, not the one-worker figure multiplied (vidgn.benchmarks.loading.node_throughput).

Videos: `--data-root/--list`, or a config's `data:` section (`--config`), or else 340x256 H.264
videos of 10 s made with `make_synthetic` into `--cache-dir` (reused when already there).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

METHODS = ("vidgn", "pytorchvideo", "floor")


# ----------------------------------------------------------------------------- measurement (child)

def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _loader(job: dict):
    """Set up one loader in this process; returns clip(k), which loads the k-th clip of the run."""
    import numpy as np
    import torch

    import cv2
    import decord  # noqa: F401  (imported before the memory baseline, for every loader alike)

    torch.set_num_threads(job["threads"])  # one core per worker, like a DataLoader worker
    cv2.setNumThreads(job["threads"])  # as ClipDataset does in each loading process
    from vidgn.data.dataset import ClipDataset, collate_clips
    from vidgn.data.lists import parse_list, resolve

    entries = parse_list(job["list"], job["root"], check_files=True)
    clip_spec = job["clip"]
    ds = ClipDataset(entries, job["root"], clip_spec, split="train", decode_threads=job["threads"])
    order = np.random.default_rng(job["seed"]).integers(0, len(entries), job["warmup"] + job["clips"])
    method = job["method"]
    if method == "vidgn":
        def clip(k):
            # collate included: it makes the one copy of the clip into batch memory
            return collate_clips([ds.item(int(order[k]), torch.Generator().manual_seed(job["seed"] + k))])["video"]
    elif method == "floor":
        def clip(k):
            g = torch.Generator().manual_seed(job["seed"] + k)  # same draws -> same window as vidgn
            path = str(resolve(entries[int(order[k])], job["root"]))
            reader = decord.VideoReader(path, num_threads=job["threads"])
            idx = ds.frame_indices(len(reader), reader.get_avg_fps(), 0, g)
            return reader.get_batch(idx.tolist())
    elif method == "pytorchvideo":
        from vidgn.benchmarks.pytorchvideo_ref import pytorchvideo_loader

        it = pytorchvideo_loader(entries, job["root"], clip_spec, job["threads"], job["mean"], job["std"])

        def clip(k):
            return next(it)
    else:
        raise ValueError(method)
    return clip


class _Timed:
    """One loader, measured in chunks: run(ks) loads those clips and adds up wall and CPU time."""

    def __init__(self, job: dict):
        self.job = job
        self.clip = _loader(job)
        self.base_kb = _rss_kb("VmRSS")  # after imports and setup, before the first clip
        self.wall = self.cpu = 0.0
        self.count = 0
        self.shape: tuple = ()
        for k in range(job["warmup"]):
            self.clip(k)

    def run(self, ks: range) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        for k in ks:
            out = self.clip(k)
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.count += len(ks)
        self.shape = tuple(out.shape)

    def result(self) -> dict:
        job = self.job
        clip = f"{job['clip'].num_frames}x{job['clip'].sampling_rate}"
        return {"method": job["method"], "clip": clip, "clips": self.count,
                "clips_per_s": self.count / self.wall, "cpu_ms_per_clip": 1000 * self.cpu / self.count,
                "peak_rss_mb": _rss_kb("VmHWM") / 1024, "growth_mb": (_rss_kb("VmHWM") - self.base_kb) / 1024,
                "out_shape": list(self.shape)}


def _serve(job: dict, conn) -> None:
    """Child process: set the loader up, then run the chunks the parent asks for."""
    try:
        timed = _Timed(job)
        conn.send("ready")
        while (msg := conn.recv()) is not None:
            timed.run(range(*msg))
            conn.send("done")
        conn.send(timed.result())
    except BaseException as e:  # report, don't hang the parent
        conn.send({"error": f"{type(e).__name__}: {e}"})


def _chunks(job: dict):
    first, last, step = job["warmup"], job["warmup"] + job["clips"], job["chunk"]
    return [(k, min(k + step, last)) for k in range(first, last, step)]


def measure(jobs: list[dict], in_process: bool = False) -> list[dict]:
    """Measure the loaders of `jobs` (same clip shape) on the same clips, interleaved.

    Each loader runs in its own fresh process (pytorchvideo switches decord's bridge to torch
    process-wide, and peak memory must be per loader). The timed clips go in chunks, round-robin
    over the loaders (A B C, B C A, ...), so that a change in the machine's load during the run
    (shared VMs have them) hits every loader alike instead of skewing their ratio.
    """
    if in_process:
        timed = [_Timed(job) for job in jobs]
        for ks in _chunks(jobs[0]):
            for t in timed:
                t.run(range(*ks))
        return [t.result() for t in timed]
    ctx = mp.get_context("spawn")
    procs, conns, errors = [], [], {}
    for job in jobs:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(job, child))
        proc.start()
        procs.append(proc)
        conns.append(parent)

    def reply(i):
        # A child that dies without reporting (crash, OOM kill) must not hang the run.
        while not conns[i].poll(1.0):
            if not procs[i].is_alive():
                return {"error": f"measurement process died (exit code {procs[i].exitcode})"}
        return conns[i].recv()

    for i in range(len(jobs)):  # wait for every setup before timing anything
        msg = reply(i)
        if msg != "ready":
            errors[i] = msg
    live = [i for i in range(len(jobs)) if i not in errors]
    for r, ks in enumerate(_chunks(jobs[0])):
        turn = (live[r % len(live):] + live[:r % len(live)]) if live else []  # A B C, B C A, ...
        for i in turn:
            if i in errors:
                continue
            conns[i].send(ks)
            msg = reply(i)
            if msg != "done":
                errors[i] = msg
    results = []
    for i, job in enumerate(jobs):
        if i not in errors:
            conns[i].send(None)
            msg = reply(i)
            if "error" in msg:
                errors[i] = msg
        tag = {"method": job["method"], "clip": f"{job['clip'].num_frames}x{job['clip'].sampling_rate}"}
        results.append({**tag, **(errors[i] if i in errors else msg)})
        procs[i].join(timeout=10)
        if procs[i].is_alive():
            procs[i].kill()
    return results


# ----------------------------------------------------------------------------- driver

def _load_config(path: str) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    return cfg.get("data") or {}


def _synthetic_videos(cache_dir: Path, num_videos: int, seconds: float, width: int, height: int):
    """340x256 H.264, 30 fps, `seconds` long, `num_videos` of them, made once into cache_dir."""
    from vidgn.tools.synthetic import make_synthetic

    tag = f"{num_videos}x{seconds:g}s_{width}x{height}"
    root = cache_dir / tag
    if not (root / "train.txt").is_file():
        print(f"making {num_videos} synthetic {width}x{height} H.264 videos of {seconds:g} s in {root} ...",
              flush=True)
        make_synthetic(root, num_classes=2, train_per_class=(num_videos + 1) // 2, val_per_class=0,
                       width=width, height=height, size_jitter=0.0, seconds=seconds, fps_choices=(30,),
                       webm_fraction=0.0, seed=0, workers=min(2, os.cpu_count() or 1))
    return str(root), str(root / "train.txt")


def _parse_clip(text: str) -> tuple[int, int]:
    t, s = text.lower().split("x")
    return int(t), int(s)


def bench_data(args) -> list[dict]:
    """Per-worker figures of every loader (the `results` of the JSON)."""
    return _bench(args)[0]


def _bench(args) -> tuple[list[dict], list[dict]]:
    """(per-worker rows of every loader, total clips/s of vidgn's training loader per worker count)."""
    from vidgn.benchmarks.common import parse_list
    from vidgn.benchmarks.loading import node_throughput
    from vidgn.data.clip import ClipSpec  # torch: not at import, so that `vidgn --help` stays light

    data = _load_config(args.config) if args.config else {}
    root = args.data_root or data.get("data_root")
    lst = args.list or data.get("train_list")
    if lst and not Path(lst).is_file():
        # Asked for real videos: measuring synthetic ones instead would be a silent lie.
        where = "--list" if args.list else f"data.train_list of {args.config}"
        raise SystemExit(f"vidgn bench data: error: {lst} ({where}) is not a file; fix the path, or leave out "
                         "--config/--list to measure synthetic 340x256 videos")
    if lst and not root:
        raise SystemExit(f"vidgn bench data: error: {lst} needs a data root (--data-root or data.data_root)")
    if not lst:
        root, lst = _synthetic_videos(Path(args.cache_dir), args.videos, args.seconds, 340, 256)
    short_side = tuple(args.short_side or data.get("train_short_side") or (256, 320))
    crop = args.crop or data.get("train_crop") or 224
    threads = args.decode_threads or data.get("decode_threads") or 1
    mean = tuple(data.get("mean") or (0.45, 0.45, 0.45))
    std = tuple(data.get("std") or (0.225, 0.225, 0.225))
    print(f"videos: {lst} (data root {root}); crop {crop}, short side {short_side}, {threads} decode thread(s)",
          flush=True)
    clips = args.clip or ["32x2", "64x1"]
    methods = [m for m in METHODS if m not in (args.skip or [])]
    results, node = [], []
    for text in clips:
        t, s = _parse_clip(text)
        clip_spec = ClipSpec(num_frames=t, sampling_rate=s, train_short_side=short_side, train_crop=crop)
        clip_spec.check("train")
        jobs = [dict(method=method, root=root, list=lst, clip=clip_spec, threads=threads, clips=args.clips,
                     warmup=args.warmup,
                     chunk=args.chunk, seed=args.seed, mean=mean, std=std) for method in methods]
        for r in measure(jobs, in_process=args.in_process):
            results.append(r)
            if "error" in r:
                print(f"{r['clip']:>5} {r['method']:<13} ERROR {r['error']}", flush=True)
            else:
                print(f"{r['clip']:>5} {r['method']:<13} {r['clips_per_s']:7.2f} clips/s  {r['cpu_ms_per_clip']:7.1f} "
                      f"CPU ms/clip  peak RSS {r['peak_rss_mb']:6.0f} MB "
                      f"(+{r['growth_mb']:.0f} MB over imports)", flush=True)
        for n in parse_list(args.workers, int):
            node += node_throughput(data_root=root, train_list=lst, frames=t, sampling=s, workers=[n],
                                    clips=args.batch, short_side=short_side, crop=crop, decode_threads=threads,
                                    warmup=args.warmup, batches=args.batches, seed=args.seed)
            r = node[-1]
            print(f"{r['clip']:>5} {'loader x' + str(n):<13} " + (f"ERROR {r['error']}" if "error" in r else
                  f"{r['clips_per_s']:7.2f} clips/s total, {r['clips_per_s_per_worker']:.2f} per worker"), flush=True)
    return results, node


def summary_table(results: list[dict]) -> str:
    by = {(r["clip"], r["method"]): r for r in results if "error" not in r}
    lines = ["| clip | loader | clips/s | CPU ms/clip | peak RSS MB | of which loading | vs pytorchvideo | vs floor |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (clip, method), r in by.items():
        pv, fl = by.get((clip, "pytorchvideo")), by.get((clip, "floor"))
        vs_pv = f"{r['clips_per_s'] / pv['clips_per_s']:.2f}x" if pv else "-"
        vs_fl = f"{r['clips_per_s'] / fl['clips_per_s']:.2f}x" if fl else "-"
        lines.append(f"| {clip} | {method} | {r['clips_per_s']:.2f} | {r['cpu_ms_per_clip']:.0f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['growth_mb']:.0f} | {vs_pv} | {vs_fl} |")
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    """Register `vidgn bench data` with the sub-subparsers of `vidgn bench` (vidgn.benchmarks)."""
    d = subparsers.add_parser("data", help="clip loading throughput per worker vs pytorchvideo and the decode floor",
                       description=__doc__.split("\n\n")[0])
    d.add_argument("--config", help="YAML whose data: section gives data_root, train_list, crop, ...")
    d.add_argument("--data-root", help="folder the list's paths are relative to")
    d.add_argument("--list", help="video list (`path label` lines); default: the config's train_list, "
                                  "else synthetic videos in --cache-dir")
    d.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "vidgn", "bench"),
                   help="where synthetic benchmark videos are made and reused")
    d.add_argument("--videos", type=int, default=6, help="synthetic videos to make")
    d.add_argument("--seconds", type=float, default=10.0, help="length of synthetic videos")
    d.add_argument("--clip", action="append", help="clip shape TxS, repeatable (default 32x2 and 64x1)")
    d.add_argument("--crop", type=int, help="training crop (default: config or 224)")
    d.add_argument("--short-side", type=int, nargs=2, metavar=("LO", "HI"), help="default: config or 256 320")
    d.add_argument("--decode-threads", type=int, help="decord threads (default: config or 1)")
    d.add_argument("--clips", type=int, default=30, help="timed clips per loader and shape")
    d.add_argument("--warmup", type=int, default=3, help="untimed clips first")
    d.add_argument("--chunk", type=int, default=5,
                   help="timed clips per turn; the loaders take turns (interleaved, so load drift hits all)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--skip", action="append", choices=METHODS, help="leave a loader out (repeatable)")
    d.add_argument("--in-process", action="store_true",
                   help="measure in this process (fast smoke runs; peak memory then is the whole run's)")
    d.add_argument("--workers", default=",".join(sorted({"1", str(os.cpu_count() or 1)}, key=int)),
                   help="comma list of worker counts: total clips/s of the training DataLoader (VideoDataModule, "
                        "N workers) with each, what a node delivers (default: 1 and every core; '' skips)")
    d.add_argument("--batch", type=int, default=8, help="clips per batch of the N-worker loader")
    d.add_argument("--batches", type=int, default=10, help="timed batches of the N-worker loader")
    d.add_argument("--json", help="also write the results (with date, machine, command) to this file")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vidgn.benchmarks.common import run_info, write_json
    from vidgn.benchmarks.loading import node_table

    results, node = _bench(args)
    print()
    print(summary_table(results))
    if node:
        print()
        print(node_table(node))
    if args.json:
        meta = {**run_info(), "processor": platform.processor(), "results": results, "node": node}
        write_json(args.json, meta)
    return 1 if any("error" in r for r in results + node) else 0
