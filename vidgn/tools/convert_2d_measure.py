"""Measure what convert-2d's default (vidgn mean 0.45, not the source's) changes: the converted
network on vidgn's input against the source network on its own input, same images.

    python -m vidgn.tools.convert_2d_measure --size 112 --images 32 [--mean 0.485 0.456 0.406]

Networks are randomly initialised torchvision ResNet-50s (no ImageNet weights can be downloaded
where this was written), norm affine parameters and BN statistics randomised as in the tests;
images are smooth random colour fields (8x8 upsampled). Reports, per source convention and norm:
max |delta logit| / max |logit|, top-1 agreement, and the relative change of conv1's normalised
output (stem), over all positions and away from the padded border.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from vidgn.models.convert.convention import (
    DETECTRON, TORCHVISION, VIDGN_DEFAULT, InputConvention, fold_input_convention,
)


def random_resnet(arch: str = "resnet50", *, gn: bool, seed: int) -> nn.Module:
    """A randomly initialised torchvision ResNet (GN: 32 groups) with non-trivial norm parameters
    and statistics, in eval mode: the stand-in for ImageNet weights, which cannot be downloaded here."""
    torch.manual_seed(seed)
    kw = {"norm_layer": lambda c: nn.GroupNorm(32, c)} if gn else {}
    model = getattr(torchvision.models, arch)(weights=None, **kw)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _prep(pixels: torch.Tensor, conv: InputConvention) -> torch.Tensor:
    """pixels (B, 3, H, W) RGB on [0, 1] -> conv's input."""
    x = pixels.flip(1) if conv.order == "BGR" else pixels
    x = x * conv.pixel_max
    return (x - torch.tensor(conv.mean).view(1, 3, 1, 1)) / torch.tensor(conv.std).view(1, 3, 1, 1)


def measure(source: InputConvention, *, gn: bool, size: int, images: int, seed: int = 0,
            target: InputConvention = VIDGN_DEFAULT) -> dict[str, float]:
    src = random_resnet(gn=gn, seed=seed)
    state = {k: v.clone() for k, v in src.state_dict().items()}
    fold_input_convention(state, source=source, target=target)
    ours = random_resnet(gn=gn, seed=seed)
    ours.load_state_dict(state)
    g = torch.Generator().manual_seed(seed + 1)
    pixels = F.interpolate(torch.rand(images, 3, 8, 8, generator=g), size=(size, size), mode="bilinear")
    pixels = (pixels * 255).round() / 255
    with torch.no_grad():
        a, b = ours(_prep(pixels, target)), src(_prep(pixels, source))
        sa, sb = ours.bn1(ours.conv1(_prep(pixels, target))), src.bn1(src.conv1(_prep(pixels, source)))
    n = sa.shape[-1]
    inner = (slice(None), slice(None), slice(2, n - 1), slice(2, n - 1))
    return {
        "max|dlogit|/max|logit|": ((a - b).abs().max() / b.abs().max()).item(),
        "top1 agreement": (a.argmax(1) == b.argmax(1)).float().mean().item(),
        "stem rel change (all)": ((sa - sb).norm() / sb.norm()).item(),
        "stem rel change (interior)": ((sa[inner] - sb[inner]).norm() / sb[inner].norm()).item(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--mean", nargs=3, type=float, default=list(VIDGN_DEFAULT.mean),
                   help="target (vidgn data) mean, as convert-2d --mean")
    args = p.parse_args(argv)
    target = InputConvention("vidgn", "RGB", 1.0, tuple(args.mean), VIDGN_DEFAULT.std)
    torch.set_num_threads(1)
    for source, gn in ((DETECTRON, True), (TORCHVISION, True), (TORCHVISION, False)):
        for seed in range(args.seeds):
            r = measure(source, gn=gn, size=args.size, images=args.images, seed=seed, target=target)
            print(f"{source.name:11s} {'GN' if gn else 'BN'} seed {seed}: "
                  + ", ".join(f"{k} {v:.4g}" for k, v in r.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
