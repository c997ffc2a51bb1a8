"""`vidgn convert-2d --from detectron|timm|torchvision IN OUT`: a 2D ImageNet ResNet checkpoint ->
the torchvision-layout state dict that `I3DResNet(pretrained_2d=OUT)` inflates.

The source's input convention (channel order, pixel scale, mean, std) is folded into conv1 so that
vidgn's input (RGB, (p / 255 - mean) / std, by default mean 0.45 and std 0.225: the data config's)
gives the source's result: exactly for the channel order and scale; the mean difference becomes a
per-channel bias that BN absorbs (bn1.running_mean) and GN cannot (see
vidgn/models/convert/convention.py and docs/pretrained.md). `--mean-from-source` makes it exact
for both: the data config must then use the mean it prints.

Exit status: 0 written, 2 unusable input or arguments (the message names the file and the fix).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Heavy imports (torch, torchvision) happen in run(): `vidgn --help` builds every tool's parser.
DEFAULT_MEAN = "0.45 0.45 0.45"   # vidgn's data default (VIDGN_DEFAULT in vidgn/models/convert/convention.py)
DEFAULT_STD = "0.225 0.225 0.225"


def _float_arg(name: str):
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {text!r} is not a number") from None
    return parse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert-2d", help="2D ImageNet ResNet (Detectron .pkl, timm, torchvision) -> torchvision-layout "
                           ".pth for pretrained_2d",
        description=__doc__.split("\n\n")[0], epilog="docs/pretrained.md: where to get each file, what is exact")
    p.add_argument("--from", dest="source", required=True, choices=("detectron", "timm", "torchvision"),
                   help="format and input convention of IN: detectron (R-50-GN.pkl: Caffe2 blobs, BGR 0-255 "
                        "minus means), timm (resnet50_gn .safetensors/.bin, or train.py's .pth.tar), "
                        "torchvision (.pth)")
    p.add_argument("input", metavar="IN", help="the 2D checkpoint")
    p.add_argument("output", metavar="OUT", help="the .pth to write (torchvision keys, tensors only)")
    p.add_argument("--mean", nargs=3, type=_float_arg("--mean"), metavar=("R", "G", "B"),
                   help=f"per-channel mean of vidgn's input on [0, 1], as data.mean (default: {DEFAULT_MEAN})")
    p.add_argument("--std", nargs=3, type=_float_arg("--std"), metavar=("R", "G", "B"),
                   help=f"per-channel std, as data.std (default: {DEFAULT_STD})")
    p.add_argument("--mean-from-source", action="store_true",
                   help="use the source's mean as --mean (exact conversion; set data.mean to the printed value)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vidgn.models.convert.convention import VIDGN_DEFAULT, InputConvention
    from vidgn.models.convert.errors import ConvertError
    from vidgn.models.convert.pipeline import check_output, convert_2d, write_state

    if args.mean and args.mean_from_source:
        print("vidgn convert-2d: error: give --mean or --mean-from-source, not both", file=sys.stderr)
        return 2
    mean = tuple(args.mean) if args.mean else VIDGN_DEFAULT.mean
    std = tuple(args.std) if args.std else VIDGN_DEFAULT.std
    if any(s <= 0 for s in std):
        print(f"vidgn convert-2d: error: --std must be positive, got {list(std)}", file=sys.stderr)
        return 2
    target = InputConvention("vidgn", "RGB", 1.0, mean, std)
    out = Path(args.output)
    try:
        check_output(out, overwrite=args.overwrite)  # before the (slow) conversion
        state, report = convert_2d(args.input, source=args.source, target=target,
                                   mean_from_source=args.mean_from_source)
        write_state(state, out, overwrite=args.overwrite)
    except ConvertError as e:
        print(f"vidgn convert-2d: error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    mean = ", ".join(f"{v:.6g}" for v in report.target.mean)
    std = ", ".join(f"{v:.6g}" for v in report.target.std)
    print(f"wrote {out}: use it as model.network.init_args.pretrained_2d with data.mean [{mean}] "
          f"and data.std [{std}]")
    return 0
