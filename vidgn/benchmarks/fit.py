"""`vidgn bench fit`: end-to-end training throughput beside the model-only and data-only figures.

Three measurements in one run of the same configuration, repeated in `--rounds` rounds (medians
reported, every round kept in the JSON):

* data-only  — the real VideoDataModule's train loader with N workers, alone (vidgn.benchmarks.loading);
* model-only — the same network config training on a synthetic batch of the loader's shape
               (vidgn.benchmarks.train_step: forward, backward, SGD step, no data, no Lightning);
* fit        — a Lightning Trainer fitting VideoClassifier on that DataModule, what `vidgn fit`
               runs: clips/s between the end of the warm-up steps and the end of the last one.

The fit is the real Trainer, not a hand loop over training_step: the figure is what users get, so
Lightning's per-step overhead (hooks, logging) counts against it; it is small next to a GPU step of
R50 (hundreds of ms) and visible on tiny CPU configs. The result says which of model and data is
the bound and fit / min(model, data) (goal: at least 0.8). On a CPU-only machine the data workers
and the model share the same cores, so fit cannot reach the smaller of two figures each measured
with the cores to itself; the ratio is meaningful on a GPU node, where the model runs on the GPU.

Videos: `--data-root/--list`, or else 340x256 H.264 videos of 10 s made with make_synthetic into
`--cache-dir` (shared with `vidgn bench data`). The list is repeated so that one epoch covers the run
(see vidgn.benchmarks.loading).
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _clock_callback(warmup: int):
    """A Lightning callback timing the steps after the first `warmup` (device synchronised at both
    ends, so queued GPU work is inside the interval)."""
    import lightning as L
    import torch

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.t0: float | None = None
            self.t1: float | None = None
            self.clips = 0
            self.steps = 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize(pl_module.device)
            now = time.perf_counter()
            done = trainer.global_step  # optimizer steps so far, this one included
            if done == warmup:
                self.t0 = now
            elif done > warmup:
                self.t1, self.clips, self.steps = now, self.clips + len(batch["label"]), self.steps + 1

    return Clock()


def _network(args):
    import torch

    from vidgn.benchmarks.train_step import parse_norm_spec
    from vidgn.models import I3DResNet

    name, kwargs = parse_norm_spec(args.norm)
    torch.manual_seed(args.seed)
    return I3DResNet(depth=args.depth, num_classes=args.num_classes, norm=name, base_channels=args.width, **kwargs)


def _model_only(args, frames: int) -> dict[str, Any]:
    from vidgn.benchmarks.common import time_stats
    from vidgn.benchmarks.train_step import TrainStep

    step = TrainStep(_network(args), num_classes=args.num_classes, clips=args.clips, frames=frames, crop=args.crop,
                     device=args.device, precision=args.precision, channels_last=args.channels_last == "on",
                     compile=args.compile == "on", seed=args.seed)
    times = [step.timed()[0] for _ in range(args.warmup + args.steps)][args.warmup:]
    stats = time_stats(times)
    del step
    return {"step_time": stats, "clips_per_s": args.clips / stats["median_s"]}


def _fit(args, dm, workdir: str, *, skip: int) -> dict[str, Any]:
    import lightning as L
    import torch

    from vidgn.training.module import VideoClassifier

    module = VideoClassifier(network=_network(args), channels_last=args.channels_last == "on",
                             compile=args.compile == "on")
    clock = _clock_callback(skip)
    cuda = args.device.startswith("cuda")
    index = torch.device(args.device).index
    # benchmark=True: cuDNN picks its kernels in the warm-up, as configs/kinetics (trainer.benchmark) do.
    trainer = L.Trainer(accelerator="gpu" if cuda else "cpu", devices=[index] if cuda and index is not None else 1,
                        benchmark=cuda,
                        precision=args.precision, max_steps=skip + args.steps, limit_val_batches=0,
                        num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
                        default_root_dir=workdir)
    trainer.fit(module, datamodule=dm)
    steps_run = trainer.global_step
    # Its loader's workers must be gone before the next round forks new ones: a forked child that
    # inherits a live loader iterator tries to shut its workers down and cannot (not its children).
    del trainer, module
    gc.collect()
    if clock.t0 is None or clock.t1 is None:
        raise RuntimeError(f"fit ran {steps_run} steps, fewer than the untimed ones + 1 ({skip + 1})")
    seconds = clock.t1 - clock.t0
    return {"untimed_steps": skip, "steps": clock.steps, "clips": clock.clips, "seconds": seconds,
            "clips_per_s": clock.clips / seconds}


def bench_fit(args) -> dict[str, Any]:
    from vidgn.benchmarks.common import process_peak_rss_mb, run_info
    from vidgn.benchmarks.data import _parse_clip, _synthetic_videos
    from vidgn.benchmarks.loading import (default_prefetch, make_datamodule, measure_loader, queued_batches,
                                          repeat_list)
    from vidgn.data.lists import find_classes_file

    if args.list:
        if not Path(args.list).is_file() or not args.data_root:
            raise SystemExit(f"vidgn bench fit: error: --list {args.list} must be a file, with --data-root")
        root, lst = args.data_root, args.list
    else:
        root, lst = _synthetic_videos(Path(args.cache_dir), args.videos, args.seconds, 340, 256)
    frames, sampling = _parse_clip(args.clip)
    classes = find_classes_file(lst, root)
    info = run_info(args.device)
    setting = {"depth": args.depth, "width": args.width, "norm": args.norm, "frames": frames, "sampling": sampling,
               "clips": args.clips, "crop": args.crop, "precision": args.precision,
               "channels_last": args.channels_last == "on", "compile": args.compile == "on", "workers": args.workers,
               "decode_threads": args.decode_threads, "device": args.device, "videos": lst}
    with tempfile.TemporaryDirectory(prefix="vidgn-bench-fit-") as tmp:
        # One epoch holds warm-up and timed steps of every measurement, as a Kinetics epoch would.
        # Untimed first: the warm-up and the batches the workers queue ahead (loading.queued_batches).
        skip = args.warmup + default_prefetch() * args.workers
        repeated = repeat_list(lst, min_entries=(skip + args.steps + 2) * args.clips,
                               out_path=Path(tmp) / "train.txt")
        common = dict(data_root=root, train_list=repeated, classes_file=str(classes) if classes else None,
                      frames=frames, sampling=sampling, clips=args.clips, workers=args.workers,
                      decode_threads=args.decode_threads, short_side=tuple(args.short_side), crop=args.crop,
                      seed=args.seed)
        rounds = []
        for r in range(args.rounds):
            # Rounds of data, model, fit: a load change on a shared machine hits the three alike
            # instead of one of them, and the spread over rounds shows how far to trust a figure.
            print(f"round {r + 1}/{args.rounds}: data-only ({args.workers} workers) ...", flush=True)
            data = measure_loader(make_datamodule(**common, persistent_workers=False), warmup=args.warmup,
                                  batches=args.steps)
            print(f"  {data['clips_per_s']:.2f} clips/s\nmodel-only ...", flush=True)
            model = _model_only(args, frames)
            print(f"  {model['clips_per_s']:.2f} clips/s\nfit ...", flush=True)
            dm = make_datamodule(**common)
            fit = _fit(args, dm, tmp, skip=args.warmup + queued_batches(dm))
            del dm
            gc.collect()  # its persistent workers go with it (see _fit)
            print(f"  {fit['clips_per_s']:.2f} clips/s", flush=True)
            bound = min(model["clips_per_s"], data["clips_per_s"])
            rounds.append({"data_only": data, "model_only": model, "fit": fit,
                           "fit_over_bound": fit["clips_per_s"] / bound})
    med = {k: statistics.median(r[k]["clips_per_s"] for r in rounds) for k in ("data_only", "model_only", "fit")}
    info["process_peak_rss_mb"] = process_peak_rss_mb()
    return {**info, "benchmark": "fit", "setting": setting, "warmup": args.warmup, "steps": args.steps,
            "rounds": rounds, "clips_per_s": med,  # medians over the rounds
            "bound_by": "model" if med["model_only"] <= med["data_only"] else "data",
            "fit_over_bound": statistics.median(r["fit_over_bound"] for r in rounds)}


def add_parser(subparsers) -> None:
    """Register `vidgn bench fit` with the sub-subparsers of `vidgn bench` (vidgn.benchmarks)."""
    p = subparsers.add_parser("fit", help="end-to-end training clips/s beside model-only and data-only",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", help="folder the list's paths are relative to")
    p.add_argument("--list", help="training video list; default: synthetic 340x256 videos in --cache-dir")
    p.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "vidgn", "bench"),
                   help="where synthetic benchmark videos are made and reused")
    p.add_argument("--videos", type=int, default=6, help="synthetic videos to make")
    p.add_argument("--seconds", type=float, default=10.0, help="length of synthetic videos")
    p.add_argument("--depth", type=int, default=50)
    p.add_argument("--width", type=int, default=64, help="base channels")
    p.add_argument("--num-classes", type=int, default=400)
    p.add_argument("--norm", default="bn", help="norm spec NAME[:key=value,...] (see `vidgn bench model`)")
    p.add_argument("--clip", default="32x2", help="FRAMESxSAMPLING")
    p.add_argument("--clips", type=int, default=8, help="clips per GPU (batch)")
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--short-side", type=int, nargs=2, default=(256, 320), metavar=("LO", "HI"))
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="DataLoader workers (default: every core of the machine)")
    p.add_argument("--decode-threads", type=int, default=1)
    p.add_argument("--precision", default="bf16-mixed", choices=("32", "bf16-mixed"))
    p.add_argument("--channels-last", default="on", choices=("on", "off"))
    p.add_argument("--compile", default="off", choices=("on", "off"))
    p.add_argument("--steps", type=int, default=20, help="timed steps (batches) of each measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=3, help="rounds of data-only, model-only, fit (medians reported)")
    p.add_argument("--device", default=None, help="cpu or cuda[:k] (default: cuda when visible)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads of the main process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results and the run record (date, machine, versions) here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from vidgn.benchmarks.common import write_json

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("vidgn bench fit: error: --device cuda but no CUDA device is visible")
    if min(args.steps, args.warmup, args.rounds) < 1:  # the fit's clock starts at the end of a warm-up step
        raise SystemExit("vidgn bench fit: error: --steps, --warmup and --rounds must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True  # the model-only steps pick kernels as the fit does
    out = bench_fit(args)
    med = out["clips_per_s"]
    print(f"\nmedians over {args.rounds} round(s): data-only {med['data_only']:.2f} clips/s ({args.workers} workers), "
          f"model-only {med['model_only']:.2f}, fit {med['fit']:.2f}: bound by {out['bound_by']}, "
          f"fit / min(model, data) = {out['fit_over_bound']:.2f}")
    if args.json:
        write_json(args.json, out)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
