"""`vidgn bench model`: train-step time, clips/s, peak memory, FLOP/s and MFU of an I3D ResNet, per norm.

A setting is clip shape x clips per GPU (default: GN paper Table 8's 32x2 at 8 and 4 clips, 64x1 at
4) x precision x channels_last_3d x torch.compile. Within a setting every norm gets its own network
and optimizer, and the norms take turns one step at a time (rotating who goes first), so that a
change in a shared machine's load hits them alike and the GN/BN ratio stays stable; the ratio is
also given as the median of the per-round ratios. Synthetic input: the model's cost does not
depend on the pixels, and the sampling rate only changes which frames a loader decodes (it is
recorded, it does not change the shape).

FLOPs per step come from torch.utils.flop_counter (one untimed forward + backward); achieved FLOP/s
is that over the median step time, and MFU is achieved over the device's dense bf16 peak
(vidgn.benchmarks.common.PEAK_BF16_TFLOPS; None for devices not in the table, or on CPU).
Peak memory is CUDA's max_memory_allocated per step (see TrainStep.timed); on CPU there is no
per-model figure and it is None (the process's peak RSS is in the run record).

Norms: any name vidgn.models.norms.make_norm takes, with I3DResNet keyword arguments after a colon:
`bn`, `gn`, `bn:bn_clips=4` (BN over groups of 4 clips), `frozen_bn`, `sync_bn`, `gn:groups=16`.
On one process sync_bn does not synchronise (see train_step.sync_bn_syncs): it is measured as what
the project's single-process run does, and the JSON says so.
"""
from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
from typing import Any

TABLE8_SETTINGS = ("32x2:8", "32x2:4", "64x1:4")


def parse_setting(text: str) -> tuple[int, int, int]:
    """'32x2:8' -> (frames 32, sampling 2, clips 8)."""
    clip, _, clips = text.partition(":")
    t, _, s = clip.lower().partition("x")
    if not (t.isdigit() and s.isdigit() and clips.isdigit()):
        raise ValueError(f"setting {text!r}: expected FRAMESxSAMPLING:CLIPS, e.g. 32x2:8")
    return int(t), int(s), int(clips)


def _build(args, norm_spec: str, frames: int, clips: int, precision: str, channels_last: bool,
           compile: bool):
    import torch

    from vidgn.benchmarks.train_step import TrainStep, parse_norm_spec
    from vidgn.models import I3DResNet

    name, kwargs = parse_norm_spec(norm_spec)
    torch.manual_seed(args.seed)  # every norm starts from the same convolution weights
    net = I3DResNet(depth=args.depth, num_classes=args.num_classes, norm=name, base_channels=args.width,
                    **kwargs)
    return TrainStep(net, num_classes=args.num_classes, clips=clips, frames=frames, crop=args.crop,
                     device=args.device, precision=precision, channels_last=channels_last, compile=compile,
                     seed=args.seed)


def _one_setting(args, setting: dict[str, Any], peak_tflops: float | None) -> list[dict[str, Any]]:
    """Measure every norm of one setting, interleaved; one result row per norm."""
    from vidgn.benchmarks.common import time_stats
    from vidgn.benchmarks.train_step import parse_norm_spec, sync_bn_syncs
    from vidgn.models.norms import canonical_norm_name

    steps, rows = [], []
    for spec in args.norms:
        row = {**setting, "norm": spec}
        try:
            step = _build(args, spec, setting["frames"], setting["clips"], setting["precision"],
                          setting["channels_last"], setting["compile"])
            row["flops_per_step"] = step.count_flops()
            steps.append(step)
        except Exception as e:  # e.g. out of memory, or a norm this depth/width cannot take
            row["error"] = f"{type(e).__name__}: {e}"
            steps.append(None)
        rows.append(row)
    live = [i for i, s in enumerate(steps) if s is not None]
    times: dict[int, list[float]] = {i: [] for i in live}
    peaks: dict[int, int] = {}
    for r in range(args.warmup + args.steps):
        order = live[r % len(live):] + live[:r % len(live)] if live else []  # A B C, B C A, ...
        for i in order:
            if i not in times:
                continue
            try:
                dt, peak = steps[i].timed()
            except Exception as e:
                rows[i]["error"] = f"{type(e).__name__}: {e}"
                del times[i]
                steps[i] = None  # free its memory for the others
                continue
            if r >= args.warmup:
                times[i].append(dt)
                if peak is not None:
                    peaks[i] = max(peaks.get(i, 0), peak)
    for i, ts in times.items():
        row, stats = rows[i], time_stats(ts)
        med = stats["median_s"]
        row.update(step_time=stats, clips_per_s=setting["clips"] / med,
                   achieved_tflops=row["flops_per_step"] / med / 1e12,
                   peak_mem_gib=peaks[i] / 2**30 if i in peaks else None,
                   loss_finite=math.isfinite(steps[i].last_loss))
        row["mfu"] = row["achieved_tflops"] / peak_tflops if peak_tflops else None
        if canonical_norm_name(parse_norm_spec(row["norm"])[0]) == "sync_bn":
            row["note"] = ("nn.SyncBatchNorm with " + ("a multi-process group: synchronised" if sync_bn_syncs()
                           else "no multi-process group: falls back to plain batch norm, as a single-process "
                           "run of this project does"))
        # Paired with the first norm, round by round: robust to load drift between rounds.
        if i != live[0] and live[0] in times:
            ref = times[live[0]]
            ratios = [a / b for a, b in zip(ts, ref)]
            row["time_vs_first_norm"] = {"norm": rows[live[0]]["norm"],
                                         "ratio_of_medians": med / time_stats(ref)["median_s"],
                                         "median_paired_ratio": statistics.median(ratios)}
    return rows


def bench_model(args) -> dict[str, Any]:
    import torch

    from vidgn.benchmarks.common import device_peak, parse_list, parse_on_off, process_peak_rss_mb, run_info

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("vidgn bench model: error: --device cuda but no CUDA device is visible")
    gpu = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else None
    peak = device_peak(gpu, args.peak_tflops) if gpu or args.peak_tflops else {"tflops": None, "source": "CPU: no MFU"}
    info = run_info(args.device)
    grid = itertools.product(args.settings, parse_list(args.precision), parse_on_off(args.channels_last),
                             parse_on_off(args.compile))
    results = []
    for text, precision, channels_last, compile in grid:
        frames, sampling, clips = parse_setting(text)
        setting = {"depth": args.depth, "width": args.width, "crop": args.crop, "frames": frames,
                   "sampling": sampling, "clips": clips, "precision": precision,
                   "channels_last": channels_last, "compile": compile, "device": args.device}
        print(f"{frames}x{sampling}, {clips} clips, {precision}, channels_last={channels_last}, "
              f"compile={compile}: {', '.join(args.norms)} ...", flush=True)
        for row in _one_setting(args, setting, peak["tflops"]):
            results.append(row)
            print("  " + format_row(row), flush=True)
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()  # the next setting's models start from a clean cache
    info["process_peak_rss_mb"] = process_peak_rss_mb()
    return {**info, "benchmark": "model", "device_peak": peak, "warmup": args.warmup, "steps": args.steps,
            "results": results}


def format_row(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['norm']:<14} ERROR {row['error']}"
    mem = f"{row['peak_mem_gib']:6.2f} GiB" if row.get("peak_mem_gib") is not None else "   - GiB"
    mfu = f"MFU {100 * row['mfu']:5.1f}%" if row.get("mfu") is not None else "MFU -"
    vs = row.get("time_vs_first_norm")
    rel = f"  x{vs['median_paired_ratio']:.3f} vs {vs['norm']}" if vs else ""
    rel += "" if row.get("loss_finite", True) else "  NON-FINITE LOSS"
    st = row["step_time"]
    return (f"{row['norm']:<14} {1000 * st['median_s']:9.1f} ms/step (IQR {1000 * st['iqr_s']:.1f}) "
            f"{row['clips_per_s']:8.2f} clips/s  {row['achieved_tflops']:8.3f} TFLOP/s  {mfu}  peak {mem}{rel}")


def summary_table(results: list[dict[str, Any]]) -> str:
    lines = ["| clip | clips | precision | ch_last | compile | norm | ms/step (median) | IQR ms | clips/s | "
             "TFLOP/s | MFU | peak GiB | vs first norm |",
             "| --- | ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        head = (f"| {r['frames']}x{r['sampling']} | {r['clips']} | {r['precision']} | {r['channels_last']} | "
                f"{r['compile']} | {r['norm']} |")
        if "error" in r:
            lines.append(head + f" error: {r['error'][:60]} | | | | | | |")
            continue
        vs = r.get("time_vs_first_norm")
        mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        mem = "-" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.2f}"
        rel = f"{vs['median_paired_ratio']:.3f}" if vs else "-"
        st = r["step_time"]
        lines.append(head + f" {1000 * st['median_s']:.1f} | {1000 * st['iqr_s']:.1f} | {r['clips_per_s']:.2f} | "
                     f"{r['achieved_tflops']:.3f} | {mfu} | {mem} | {rel} |")
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    """Register `vidgn bench model` with the sub-subparsers of `vidgn bench` (vidgn.benchmarks)."""
    p = subparsers.add_parser("model", help="I3D train-step time, clips/s, memory, FLOP/s, MFU per norm",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=50, help="I3D ResNet depth (18, 34, 50, 101, 152)")
    p.add_argument("--width", type=int, default=64, help="base channels (64: the paper's nets)")
    p.add_argument("--num-classes", type=int, default=400)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--setting", dest="settings", action="append",
                   help=f"FRAMESxSAMPLING:CLIPS, repeatable (default the Table 8 ones: {' '.join(TABLE8_SETTINGS)})")
    p.add_argument("--norm", dest="norms", action="append",
                   help="norm spec NAME[:key=value,...], repeatable, measured interleaved; the first is the "
                        "reference of the ratios (default: bn, gn)")
    p.add_argument("--precision", default="bf16-mixed", help="comma list of 32, bf16-mixed")
    p.add_argument("--channels-last", default="on", help="comma list of on, off (channels_last_3d)")
    p.add_argument("--compile", default="off", help="comma list of on, off (torch.compile)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per norm")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per norm first (compile happens here)")
    p.add_argument("--device", default=None, help="cpu or cuda[:k] (default: cuda when visible)")
    p.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, for a GPU not in the table")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", help="write the results and the run record (date, machine, versions) here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from vidgn.benchmarks.common import write_json

    args.settings = args.settings or list(TABLE8_SETTINGS)
    args.norms = args.norms or ["bn", "gn"]
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    # cuDNN picks its kernels in the warm-up steps, as in training (configs/kinetics: trainer.benchmark).
    torch.backends.cudnn.benchmark = True
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("vidgn bench model: error: --steps must be >= 1 and --warmup >= 0")
    out = bench_model(args)
    print()
    print(summary_table(out["results"]))
    if args.json:
        write_json(args.json, out)
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 1 if any("error" in r for r in out["results"]) else 0
