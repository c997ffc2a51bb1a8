"""Inflate a 2D ImageNet ResNet checkpoint (torchvision layout, BN or GN) into an I3DResNet.

Each k x k kernel becomes t x k x k by repeating it t times along time and dividing by t
(Carreira & Zisserman 2017, Sec. 2.3), so a clip of identical frames gives every layer the 2D
response. Norm parameters and buffers are copied as they are. The fc layer is copied only when the
class counts agree. Everything not copied is reported, never silently dropped.

torchvision key            -> I3DResNet key
conv1 / bn1                -> conv1.conv / conv1.norm
layerL.J.convN / bnN       -> res{L+1}.res_blocks.J.branch2.conv_{a,b,c} / norm_{a,b,c}
layerL.J.downsample.0 / .1 -> res{L+1}.res_blocks.J.branch1_conv / branch1_norm
fc                         -> fc
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

_ABC = {"1": "a", "2": "b", "3": "c"}
_RULES = [
    (re.compile(r"^conv1\.(.+)$"), lambda m: f"conv1.conv.{m[1]}"),
    (re.compile(r"^bn1\.(.+)$"), lambda m: f"conv1.norm.{m[1]}"),
    (re.compile(r"^layer(\d)\.(\d+)\.conv(\d)\.(.+)$"),
     lambda m: f"res{int(m[1]) + 1}.res_blocks.{m[2]}.branch2.conv_{_ABC[m[3]]}.{m[4]}"),
    (re.compile(r"^layer(\d)\.(\d+)\.bn(\d)\.(.+)$"),
     lambda m: f"res{int(m[1]) + 1}.res_blocks.{m[2]}.branch2.norm_{_ABC[m[3]]}.{m[4]}"),
    (re.compile(r"^layer(\d)\.(\d+)\.downsample\.0\.(.+)$"),
     lambda m: f"res{int(m[1]) + 1}.res_blocks.{m[2]}.branch1_conv.{m[3]}"),
    (re.compile(r"^layer(\d)\.(\d+)\.downsample\.1\.(.+)$"),
     lambda m: f"res{int(m[1]) + 1}.res_blocks.{m[2]}.branch1_norm.{m[3]}"),
    (re.compile(r"^fc\.(.+)$"), lambda m: f"fc.{m[1]}"),
]


@dataclass
class InflateReport:
    """What load_pretrained_2d did. Keys are I3DResNet keys unless noted."""

    inflated: list[str] = field(default_factory=list)     # conv kernels t x k x k from k x k
    copied: list[str] = field(default_factory=list)       # norms, 1x1 convs kept 1x1x1, fc
    missing: list[str] = field(default_factory=list)      # model keys the checkpoint did not set (mismatched included)
    unexpected: list[str] = field(default_factory=list)   # checkpoint keys (2D names) not used
    mismatched: list[str] = field(default_factory=list)   # "key: 2D shape -> 3D shape", skipped
    # (checkpoint, model) class counts when only fc's class count differs: fine-tuning on another
    # dataset, the expected case, so it is reported as one line and is no problem.
    fc_classes: tuple[int, int] | None = None

    def _other_class_count(self, key: str) -> bool:
        return self.fc_classes is not None and key.split(":")[0] in ("fc.weight", "fc.bias")

    def _listed(self) -> dict[str, list[str]]:
        # A mismatched key is also missing; list it once, under mismatched. fc with another class
        # count gets its own line (summary).
        mismatched = [k for k in self.mismatched if not self._other_class_count(k)]
        skipped = {k.split(":")[0] for k in self.mismatched}
        missing = [k for k in self.missing if k not in skipped]
        return {"missing": missing, "unexpected": self.unexpected, "mismatched": mismatched}

    def problems(self) -> list[str]:
        """Lines naming what the checkpoint did not set or could not use, fc with another class count
        aside (empty: everything but that fits)."""
        lines = [f"{name} ({len(keys)}): " + ", ".join(keys[:12]) + (" ..." if len(keys) > 12 else "")
                 for name, keys in self._listed().items() if keys]
        stats = ("running_mean", "running_var", "num_batches_tracked")
        if self.unexpected and all(k.endswith(stats) for k in self.unexpected):
            lines.append("(the unused tensors are BN running statistics: a BN checkpoint, and this norm has none)")
        return lines

    def summary(self) -> str:
        lines = [f"inflated {len(self.inflated)} conv kernels, copied {len(self.copied)} tensors"]
        if self.fc_classes is not None:
            lines.append(f"fc: kept the initialisation (checkpoint {self.fc_classes[0]} classes, "
                         f"model {self.fc_classes[1]})")
        return "\n".join(lines + self.problems())


def map_2d_key(key: str) -> str | None:
    """torchvision ResNet key -> I3DResNet key (None for keys with no counterpart)."""
    for pattern, target in _RULES:
        m = pattern.match(key)
        if m:
            return target(m)
    return None


def _unwrap(obj: object, path: str) -> dict[str, torch.Tensor]:
    # Accept a bare state dict or the usual {"state_dict": ...} / {"model": ...} wrappers, with
    # DDP's "module." prefix stripped.
    if isinstance(obj, dict):
        for k in ("state_dict", "model", "model_state"):
            if k in obj and isinstance(obj[k], dict):
                obj = obj[k]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a ResNet state dict (name -> tensor), got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def inflate_2d_state_dict(state_2d: dict[str, torch.Tensor],
                          target: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], InflateReport]:
    """Map and inflate a 2D state dict onto `target` (an I3DResNet's state dict, for the shapes).

    Returns (the tensors to load, report). A 4D kernel (O, I, k, k) becomes (O, I, t, k, k) with
    t from the target, each slice w / t. Tensors with shapes that do not fit are reported in
    `mismatched` (e.g. fc with another class count, or GN groups' counterpart missing).
    """
    out: dict[str, torch.Tensor] = {}
    report = InflateReport()
    for key_2d, w in state_2d.items():
        key = map_2d_key(key_2d)
        if key is None or key not in target:
            report.unexpected.append(key_2d)
            continue
        shape = tuple(target[key].shape)
        if w.ndim == 4 and len(shape) == 5 and tuple(w.shape) == shape[:2] + shape[3:]:
            t = shape[2]
            out[key] = (w.unsqueeze(2).repeat(1, 1, t, 1, 1) / t).to(target[key].dtype)  # (O, I, t, k, k)
            (report.inflated if t > 1 else report.copied).append(key)
        elif tuple(w.shape) == shape:
            out[key] = w.to(target[key].dtype)
            report.copied.append(key)
        else:
            report.mismatched.append(f"{key}: {tuple(w.shape)} -> {shape}")
    report.missing = [k for k in target if k not in out]
    fc_2d, fc_3d = state_2d.get("fc.weight"), target.get("fc.weight")
    if (fc_2d is not None and fc_3d is not None and fc_2d.ndim == fc_3d.ndim == 2
            and fc_2d.shape[1] == fc_3d.shape[1] and fc_2d.shape[0] != fc_3d.shape[0]
            and "fc.weight" not in out and "fc.bias" not in out):
        report.fc_classes = (int(fc_2d.shape[0]), int(fc_3d.shape[0]))
    return out, report


def load_pretrained_2d(model: nn.Module, path: str | Path) -> InflateReport:
    """Inflate the 2D ResNet checkpoint at `path` into `model` in place; returns the report.

    Loaded with torch.load(weights_only=True): only tensors, no pickled code. Tensors not in the
    checkpoint keep the model's initialisation (report.missing).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained_2d: no such file {path}; point it at a 2D ResNet state dict (.pth)")
    state_2d = _unwrap(torch.load(path, map_location="cpu", weights_only=True), str(path))
    target = model.state_dict()
    tensors, report = inflate_2d_state_dict(state_2d, target)
    if not tensors:
        raise ValueError(f"{path}: no tensor matched an I3DResNet parameter; is it a torchvision-layout ResNet?")
    with torch.no_grad():
        for key, value in tensors.items():
            target[key].copy_(value)  # state_dict tensors share storage with the model
    return report
