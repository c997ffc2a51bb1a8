"""From a grid to runs: each cell x seed's `vidgn fit`/`vidgn test` arguments, its resolved config,
and the emulation of "N GPUs x c clips" on the devices present.

Emulation (PySlowFast/MMAction2 users' most asked question: an 8-GPU result on fewer GPUs): BN
statistics come from the clips of one GPU, so "N GPUs x c clips" is reproduced on D devices with
N*c/D clips per process and BN over groups of c clips (`bn_clips`), and, when that batch does not fit
(`max_clips_per_device`), gradient accumulation. The optimizer then steps on N*c clips, as the N
GPUs did, and the LR is scaled by that real total batch. GN and the other per-clip norms need only
the batch arithmetic.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidgn.comparison.grid import Cell, Grid, GridError


@dataclass(frozen=True)
class Emulation:
    gpus: int  # N: the GPUs the cell is written for
    clips: int  # c: clips per GPU in that setting
    devices: int  # D: devices used here
    per_process: int  # clips per process and micro-batch
    accumulate: int  # micro-batches per optimizer step
    bn_clips: int | None  # BN statistics over groups of this many clips (BN only)

    def describe(self) -> str:
        acc = f" x {self.accumulate} accumulated" if self.accumulate > 1 else ""
        bn = f", BN over {self.bn_clips}-clip groups" if self.bn_clips else ""
        return (f"{self.gpus} GPUs x {self.clips} clips emulated on {self.devices} device(s): "
                f"{self.per_process} clips per process{acc}{bn}")

    def overrides(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = [("trainer.devices", self.devices), ("trainer.num_nodes", 1),
                                      ("data.clips_per_gpu", self.per_process),
                                      ("trainer.accumulate_grad_batches", self.accumulate)]
        if self.devices == 1:
            out.append(("trainer.strategy", "auto"))
        if self.bn_clips:
            out.append(("model.network.init_args.bn_clips", self.bn_clips))
        return out


def plan_emulation(gpus: int, clips: int, devices: int, norm: str | None,
                   max_clips_per_device: int | None = None) -> Emulation:
    """How "gpus x clips" runs on `devices` devices (see the module docstring)."""
    total = gpus * clips
    if gpus < 1 or clips < 1 or devices < 1:
        raise GridError(f"cannot emulate {gpus} GPUs x {clips} clips on {devices} devices")
    if total % devices:
        raise GridError(f"{gpus} GPUs x {clips} clips = {total} clips per step do not split evenly over "
                        f"{devices} devices")
    per = total // devices
    batch_norm = norm in ("bn", "batch_norm", "batchnorm")
    group = clips if batch_norm else 1
    accumulate = 1
    if max_clips_per_device:
        accumulate = next((k for k in range(1, per + 1) if per % k == 0 and per // k <= max_clips_per_device
                           and (per // k) % group == 0), None)
        if accumulate is None:
            raise GridError(f"no micro-batch of at most {max_clips_per_device} clips holds whole BN groups of "
                            f"{clips} clips; raise --max-clips-per-device")
    micro = per // accumulate
    if batch_norm and micro % clips:
        raise GridError(f"{gpus} GPUs x {clips} clips on {devices} devices: {micro} clips per process cannot hold "
                        f"whole BN groups of {clips} clips; use fewer devices (--devices)")
    return Emulation(gpus, clips, devices, micro, accumulate, clips if batch_norm and clips < micro else None)


def cli_value(value: Any) -> str:
    """A YAML value as a command-line value (jsonargparse reads JSON/YAML there)."""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class Run:
    """One cell x seed: where it runs and the arguments after `vidgn fit` / `vidgn test`."""

    cell: Cell
    seed: int
    run_dir: Path
    args: list[str]
    emulation: Emulation | None = None
    config_key: str = ""  # the resolved config (without the run directory): equal keys, equal runs
    error: str | None = None  # the cell cannot be run (bad override, impossible emulation)


def base_args(grid: Grid, cell: Cell, seed: int, sets: list[tuple[str, str]], run_dir: Path) -> list[str]:
    args: list[str] = []
    for path in [*grid.configs, *cell.config_files]:
        args += ["--config", str(path)]
    for key, value in [*cell.overrides, *sets]:
        args += [f"--{key}", cli_value(value)]
    return [*args, "--seed_everything", str(seed), "--data.seed", str(seed),
            "--trainer.default_root_dir", str(run_dir), "--trainer.enable_progress_bar", "false"]


def plan_runs(grid: Grid, cells: list[Cell], seeds: list[int], output_dir: Path, sets: list[tuple[str, str]],
              emulate_gpus: int | None = None, devices: int | None = None,
              max_clips_per_device: int | None = None, clips_per_step: int | None = None) -> list[Run]:
    """Every cell x seed with its arguments; resolving each config catches bad overrides now.

    `emulate_gpus` N: every cell is "N GPUs x its clips_per_gpu". `clips_per_step` S: every cell is
    "S/c GPUs x c clips", i.e. the same total batch S everywhere and BN over c clips (the clips-per-GPU
    effect on BN statistics, with the batch the LR and the number of steps depend on held fixed).
    """
    from vidgn.comparison.resolve import resolve_config

    runs = []
    for cell in cells:
        for seed in seeds:
            run_dir = output_dir / cell.name / f"seed{seed}"
            run = Run(cell, seed, run_dir, base_args(grid, cell, seed, sets, run_dir))
            try:
                config, key = resolve_config(run.args)
                if emulate_gpus or clips_per_step:
                    norm = config.model.network.init_args.get("norm") if "init_args" in config.model.network else None
                    clips = config.data.clips_per_gpu
                    if clips_per_step and clips_per_step % clips:
                        raise GridError(f"clips_per_step {clips_per_step} is not a multiple of clips_per_gpu {clips}")
                    gpus = emulate_gpus or clips_per_step // clips
                    run.emulation = plan_emulation(gpus, clips, devices or 1, norm, max_clips_per_device)
                    for k, v in run.emulation.overrides():
                        run.args += [f"--{k}", cli_value(v)]
                    config, key = resolve_config(run.args)
                run.config_key = key
            except Exception as e:  # a cell that cannot run is reported, the others still run
                run.error = f"{type(e).__name__}: {e}".strip()
            runs.append(run)
    return runs


def default_devices() -> int:
    """Devices present for emulation: the CUDA GPUs, else 1 (the CPU)."""
    import torch

    return max(1, torch.cuda.device_count())
