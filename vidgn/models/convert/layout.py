"""Check that a state dict is exactly a torchvision ResNet (BN, or GN as
`torchvision.models.resnetN(norm_layer=lambda c: nn.GroupNorm(32, c))`), so that what convert-2d
writes inflates with nothing missing or unexpected.

The architecture is read off the keys (blocks per stage, basic or bottleneck blocks), the norm off
the statistics (BN has running_mean/var, GN none); the reference model is built on the meta device
(shapes only, no memory) and every key and shape compared. GN's group count is not in the weights:
32 is assumed, what Detectron (GROUP_NORM.NUM_GROUPS), timm (layers/norm.py GroupNorm) and vidgn's
`norm="gn"` (groups=32) all use.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn

from vidgn.models.convert.errors import ConvertError

# (block type, blocks per stage) -> torchvision constructor (torchvision/models/resnet.py).
ARCHS = {
    ("basic", (2, 2, 2, 2)): "resnet18",
    ("basic", (3, 4, 6, 3)): "resnet34",
    ("bottleneck", (3, 4, 6, 3)): "resnet50",
    ("bottleneck", (3, 4, 23, 3)): "resnet101",
    ("bottleneck", (3, 8, 36, 3)): "resnet152",
}
_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


@dataclass(frozen=True)
class ResNetLayout:
    arch: str              # "resnet50", ...
    norm: str              # "bn" or "gn"
    num_classes: int | None  # None: the file has no fc


def check_resnet_layout(state: dict[str, torch.Tensor], *, path: str | Path,
                        display: Callable[[str], str] = str) -> ResNetLayout:
    """The file's architecture, or ConvertError naming what is missing, unexpected or misshapen
    (`display` renders a torchvision key in the file's own naming, e.g. Detectron's blob names)."""
    blocks = [0, 0, 0, 0]
    for key in state:
        m = _BLOCK_KEY.match(key)
        if m:
            blocks[int(m[1]) - 1] = max(blocks[int(m[1]) - 1], int(m[2]) + 1)
    kind = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    arch = ARCHS.get((kind, tuple(blocks)))
    if arch is None or "conv1.weight" not in state:
        raise ConvertError(
            f"{path}: not a torchvision-layout ResNet ({kind} blocks per stage {tuple(blocks)}; keys such as "
            f"{', '.join(sorted(state)[:4])}); expected ResNet-18/34/50/101/152 keys conv1.weight, bn1.*, "
            "layer1.0.conv1.weight, ..., fc.*")
    norm = "bn" if "bn1.running_mean" in state else "gn"
    num_classes = int(state["fc.weight"].shape[0]) if "fc.weight" in state else None
    kw = {"norm_layer": lambda c: nn.GroupNorm(32, c)} if norm == "gn" else {}
    with torch.device("meta"):
        ref = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes or 1000, **kw).state_dict()
    if num_classes is None:
        ref = {k: v for k, v in ref.items() if not k.startswith("fc.")}
    # torchvision writes bnN.num_batches_tracked; files from elsewhere may not have it (unused at eval).
    optional = {k for k in ref if k.endswith("num_batches_tracked")}
    missing = sorted(display(k) for k in ref if k not in state and k not in optional)
    unexpected = sorted(display(k) for k in state if k not in ref)
    wrong = sorted(f"{display(k)} {tuple(state[k].shape)} (expected {tuple(ref[k].shape)})"
                   for k in ref if k in state and state[k].shape != ref[k].shape)
    problems = [f"{name}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
                for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    if problems:
        raise ConvertError(f"{path}: not a complete {norm.upper()} {arch} ({'; '.join(problems)})")
    return ResNetLayout(arch=arch, norm=norm, num_classes=num_classes)
