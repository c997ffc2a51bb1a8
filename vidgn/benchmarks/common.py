"""What every `vidgn bench` command shares: timing statistics, memory, device peaks, run metadata, JSON.

Figures in docs/benchmarks.md must say when, where and with what they were measured; `run_info()` is
that record (date, machine, CPU count and load, versions, device, command) and `write_json` puts it
beside the results of every benchmark.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

# Dense (no sparsity) peak bf16 tensor-core FLOP/s from the vendors' data sheets, by a substring of
# torch.cuda.get_device_name(); the first match wins, so the more specific names come first.
# NVIDIA H100 / H200 data sheets: SXM 989.4 TFLOP/s dense (1,979 "with sparsity"); H100 PCIe 756.
# NVIDIA A100 data sheet: 312 (SXM and PCIe). V100 has no bf16: its fp16 tensor-core peak is given
# (V100 data sheet: SXM2 125, PCIe 112), the precision the MMAction2 V100 figures were run at.
# NVIDIA L40S data sheet: 362.05 dense. Anything else: None (no MFU rather than a wrong one);
# `--peak-tflops` gives it by hand.
PEAK_BF16_TFLOPS: tuple[tuple[str, float, str], ...] = (
    ("H200", 989.4, "NVIDIA H200 data sheet, SXM, dense bf16"),
    ("H100 PCIe", 756.0, "NVIDIA H100 data sheet, PCIe, dense bf16"),
    ("H100", 989.4, "NVIDIA H100 data sheet, SXM, dense bf16"),
    ("A100", 312.0, "NVIDIA A100 data sheet, dense bf16"),
    ("V100-PCIE", 112.0, "NVIDIA V100 data sheet, PCIe, fp16 tensor (no bf16 on V100)"),
    ("V100", 125.0, "NVIDIA V100 data sheet, SXM2, fp16 tensor (no bf16 on V100)"),
    ("L40S", 362.05, "NVIDIA L40S data sheet, dense bf16"),
)


def device_peak(device_name: str | None, override_tflops: float | None = None) -> dict[str, Any]:
    """{'tflops': dense bf16 peak or None, 'source': where the number comes from}."""
    if override_tflops is not None:
        return {"tflops": float(override_tflops), "source": "--peak-tflops"}
    for key, tflops, source in PEAK_BF16_TFLOPS:
        if device_name and key.lower() in device_name.lower():
            return {"tflops": tflops, "source": source}
    return {"tflops": None, "source": f"unknown device {device_name!r}: no MFU"}


def time_stats(seconds: list[float]) -> dict[str, float | int | None]:
    """Median and spread of per-step times. The median, not the mean: a step hit by another job on
    a shared machine is an outlier, not part of the model's cost."""
    if not seconds:
        return {"n": 0, "median_s": None, "min_s": None, "max_s": None, "iqr_s": None}
    q = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else [seconds[0]] * 3
    return {"n": len(seconds), "median_s": statistics.median(seconds), "min_s": min(seconds),
            "max_s": max(seconds), "iqr_s": q[2] - q[0]}


def process_peak_rss_mb() -> float | None:
    """Peak resident memory of this process (Linux VmHWM), in MB; None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "lightning", "decord", "torchvision", "vidgn"):
        try:
            out[name] = getattr(__import__(name), "__version__", None)
        except Exception:  # a benchmark must not fail over a version string
            out[name] = None
    try:
        import torch

        out["cuda"] = torch.version.cuda
        out["cudnn"] = str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None
    except Exception:
        pass
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_info(device: str | None = None) -> dict[str, Any]:
    """When, where and with what a benchmark ran (the record docs/benchmarks.md figures need)."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.platform(), "cpu": _cpu_model(), "cpus": os.cpu_count(),
        # Other jobs share development machines: the load says how far to trust the figures.
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "versions": _versions(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if device and device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
            info["gpu_memory_gib"] = torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**30
    except Exception:
        pass
    return info


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")


def parse_list(text: str, cast=str) -> list:
    """'a,b,c' -> [cast(a), cast(b), cast(c)] (command-line lists)."""
    return [cast(t.strip()) for t in str(text).split(",") if t.strip()]


def parse_on_off(text: str) -> list[bool]:
    """'on,off' -> [True, False] (axes such as --channels-last on,off)."""
    table = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}
    out = []
    for t in parse_list(text):
        if t.lower() not in table:
            raise ValueError(f"expected on/off, got {t!r}")
        out.append(table[t.lower()])
    return out


def decode_cores_needed(*, clips_per_step: int, step_s: float, clips_per_s_per_core: float) -> float:
    """Decode cores one GPU needs so it never waits: the clips it consumes per second over what one
    core (one DataLoader worker, one decode thread) delivers per second."""
    return clips_per_step / step_s / clips_per_s_per_core
