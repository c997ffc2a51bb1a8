"""Grid files: which runs a comparison is made of.

    name: small_batch                        # title of the report
    configs: [configs/synthetic/base.yaml]   # base configs, composed in this order
    axes:                                    # ordered; cells = cross product of the axes' labels
      norm:                                  # axis -> label -> dotted overrides, or a list of config files
        bn: {model.network.init_args.norm: bn}
        gn: {model.network.init_args.norm: gn}
      clips_per_gpu:
        "8": {data.clips_per_gpu: 8}
    seeds: [0, 1, 2]                         # optional, default [0]
    output_dir: runs/compare/small_batch     # optional; --output-dir wins
    emulate_gpus: 8                          # optional: run "N GPUs x c clips" on the devices present
    clips_per_step: 8                        # optional, instead: "8/c GPUs x c clips", a fixed total batch
    reference: {source: ..., cells: {bn-8: {video_top1: 73.3, video_top5: 90.7}}}   # optional

A cell x seed is one `vidgn fit` + `vidgn test` with `--config` for every base file, then the cell's
config files and dotted overrides, then `--set` overrides, then the seed. Paths in the grid file are
relative to the current directory, like `--config` paths.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KEYS = ("name", "configs", "axes", "seeds", "output_dir", "reference", "emulate_gpus", "clips_per_step")


class GridError(ValueError):
    """A grid file that cannot be run; the message names the file and the key."""


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a label per axis, and what it adds to the base configs."""

    labels: dict[str, str]
    config_files: tuple[str, ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:  # "bn-8": the run directory and the reference key
        return "-".join(self.labels.values())


@dataclass
class Grid:
    name: str
    configs: list[str]
    axes: dict[str, dict[str, Any]]  # axis -> label -> overrides dict or list of config files
    seeds: list[int] = field(default_factory=lambda: [0])
    output_dir: str | None = None
    reference: dict | None = None
    emulate_gpus: int | None = None
    clips_per_step: int | None = None
    path: str = ""

    def cells(self, only: dict[str, list[str]] | None = None) -> list[Cell]:
        """The cross product of the axes' labels, in axis order, restricted by `only` {axis: labels}."""
        only = only or {}
        for axis, labels in only.items():
            if axis not in self.axes:
                raise GridError(f"--only {axis}=...: no axis {axis!r} in {self.path} (axes: {', '.join(self.axes)})")
            unknown = [lb for lb in labels if lb not in self.axes[axis]]
            if unknown:
                raise GridError(f"--only {axis}={','.join(unknown)}: not a label of axis {axis!r} "
                                f"(labels: {', '.join(self.axes[axis])})")
        picked = [[lb for lb in values if axis not in only or lb in only[axis]] for axis, values in self.axes.items()]
        cells = []
        for combo in itertools.product(*picked):
            files: list[str] = []
            overrides: list[tuple[str, Any]] = []
            for axis, label in zip(self.axes, combo):
                spec = self.axes[axis][label]
                if isinstance(spec, dict):
                    overrides += list(spec.items())
                else:
                    files += list(spec)
            cells.append(Cell(dict(zip(self.axes, combo)), tuple(files), tuple(overrides)))
        return cells


def load_grid(path: str | Path) -> Grid:
    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid file {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise GridError(f"grid file {path} is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise GridError(f"grid file {path}: expected a mapping with keys {', '.join(KEYS)}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise GridError(f"grid file {path}: unknown key(s) {', '.join(unknown)}; the keys are {', '.join(KEYS)}")
    for key in ("name", "axes"):
        if key not in data:
            raise GridError(f"grid file {path}: `{key}` is missing")
    axes = data["axes"]
    if not isinstance(axes, dict) or not axes:
        raise GridError(f"grid file {path}: `axes` must map each axis name to {{label: overrides}}")
    clean: dict[str, dict[str, Any]] = {}
    for axis, values in axes.items():
        if not isinstance(values, dict) or not values:
            raise GridError(f"grid file {path}: axis {axis!r} must map each label to overrides or config files")
        clean[str(axis)] = {}
        for label, spec in values.items():
            if spec is None:
                spec = {}
            if isinstance(spec, str):
                spec = [spec]
            if not isinstance(spec, (dict, list)):
                raise GridError(f"grid file {path}: axes.{axis}.{label} must be {{dotted.key: value}} or a list of "
                                f"config files, got {spec!r}")
            clean[str(axis)][str(label)] = spec
    names: dict[str, tuple] = {}
    for combo in itertools.product(*(list(v) for v in clean.values())):
        name = "-".join(combo)
        if name in names:
            raise GridError(f"grid file {path}: cells {names[name]} and {combo} would both be named {name!r} "
                            "(labels are joined with '-'): rename a label")
        names[name] = combo
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise GridError(f"grid file {path}: `seeds` must be a non-empty list of integers, got {seeds!r}")
    configs = data.get("configs") or []
    if isinstance(configs, str):
        configs = [configs]
    return Grid(name=str(data["name"]), configs=[str(c) for c in configs], axes=clean, seeds=seeds,
                output_dir=data.get("output_dir"), reference=data.get("reference"),
                emulate_gpus=data.get("emulate_gpus"), clips_per_step=data.get("clips_per_step"), path=str(path))


def parse_assignments(items: list[str], option: str) -> list[tuple[str, str]]:
    """`KEY=VALUE` strings (--set, --only) as pairs; the value is kept as text."""
    pairs = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise GridError(f"{option} {item!r}: expected KEY=VALUE")
        pairs.append((key.strip(), value))
    return pairs
