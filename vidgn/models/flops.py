"""FLOPs of a model on one input, counted with torch.utils.flop_counter (1 multiply-add = 2 FLOPs).

    python -m vidgn.models.flops --depth 50 --frames 32 64 --size 224

builds the network on the meta device (no memory, no compute), so full-size counts take seconds.
"""
from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one eval-mode forward of `model` on a zero tensor of `input_shape` (B, 3, T, H, W).

    Runs on the model's device (the meta device works: shapes only). Restores the train/eval mode.
    """
    p = next(model.parameters())
    x = torch.zeros(input_shape, device=p.device, dtype=p.dtype)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for m, training in modes.items():
            m.training = training
    return int(counter.get_total_flops())


def main(argv: list[str] | None = None) -> int:
    from vidgn.models.i3d import I3DResNet

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--num-classes", type=int, default=400)
    ap.add_argument("--norm", default="bn")
    ap.add_argument("--frames", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args(argv)
    with torch.device("meta"):
        model = I3DResNet(depth=args.depth, num_classes=args.num_classes, norm=args.norm)
    params = sum(p.numel() for p in model.parameters())
    print(f"I3D ResNet-{args.depth} norm={args.norm} classes={args.num_classes}: "
          f"{params:,} parameters ({params / 1e6:.2f} M)")
    for t in args.frames:
        flops = count_flops(model, (1, 3, t, args.size, args.size))
        print(f"  1x3x{t}x{args.size}x{args.size}: {flops / 1e9:.2f} GFLOPs = {flops / 2e9:.2f} G multiply-adds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
