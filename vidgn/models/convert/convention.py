"""Input conventions of 2D ImageNet ResNets, and folding one into conv1 so another input gives the
same result.

A network trained on s_k = (p_c(k) - M_k) / D_k (channel k of the source's order holds RGB channel
c(k); p the pixel on the source's scale) is to be fed vidgn's x_c = (p_c / 255 - mu_c) / sigma_c.
In units of [0, 1] RGB pixels (M, D reordered to RGB and divided by the pixel scale):

    s = (sigma_c / D_c) * (x_c + delta_c),   delta_c = (mu_c - M_c) / sigma_c

so conv1(s) = W' * (x + delta) with W'[:, c] = W[:, k(c)] * sigma_c / D_c. Channel order and scale
fold into W' exactly. The offset delta is a per-input-channel constant; through conv1 it becomes
a per-output-channel bias b = sum_{c,i,j} W'[:, c, i, j] * delta_c, except where the 7x7 window
overlaps conv1's zero padding (the source padded with its mean pixel M, the target pads with mu).
ResNet's conv1 has no bias, so b goes:
  * BN: into bn1.running_mean (running_mean - b). Exact away from the padded border in eval mode;
    in train mode BN removes any per-channel constant by itself.
  * GN: nowhere. GN subtracts one mean per group of C/G channels (2 channels per group in conv1 at
    G=32), so a bias that differs between the channels of a group changes its output. The converted
    network then computes exactly what the source computes on (p - mu) / D: the image normalised
    with the target's mean instead of the source's (docs/pretrained.md has the measured effect).
With mu = M (the target mean set to the source's mean; the data config then uses it too), delta is
0 and the conversion is exact everywhere, borders included.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class InputConvention:
    """How a network wants its input: channels in `order`, pixels on [0, pixel_max], then
    (pixel - mean) / std per channel, mean and std listed in the network's channel order."""

    name: str
    order: str                            # "RGB" or "BGR"
    pixel_max: float                      # 255 (Caffe2) or 1 (torchvision)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def rgb_unit(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) in RGB order on [0, 1] pixels, float64."""
        mean = torch.tensor(self.mean, dtype=torch.float64) / self.pixel_max
        std = torch.tensor(self.std, dtype=torch.float64) / self.pixel_max
        if self.order == "BGR":
            mean, std = mean.flip(0), std.flip(0)
        return mean, std

    def describe(self) -> str:
        fmt = lambda v: "(" + ", ".join(f"{x:.7g}" for x in v) + ")"  # noqa: E731
        return f"{self.order} on [0, {self.pixel_max:g}], mean {fmt(self.mean)}, std {fmt(self.std)}"


# Detectron (facebookresearch/Detectron, detectron/core/config.py): images are BGR uint8 values
# minus PIXEL_MEANS = [[[102.9801, 115.9465, 122.7717]]], no std (detectron/utils/blob.py). Its
# config notes that every network gets these means "even though it's not exactly what they were
# trained with"; R-50-GN.pkl is used this way by Detectron's GN configs (and with std 1, BGR, by
# mmdetection's configs/gn).
DETECTRON = InputConvention("detectron", "BGR", 255.0, (102.9801, 115.9465, 122.7717), (1.0, 1.0, 1.0))
# torchvision's ResNet weights (IMAGENET1K_V1 transforms) and timm's IMAGENET_DEFAULT_MEAN/STD,
# the pretrained cfg of resnet50_gn.a1h_in1k (timm/models/resnet.py, _ttcfg -> _cfg).
TORCHVISION = InputConvention("torchvision", "RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TIMM = InputConvention("timm", "RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# vidgn's data pipeline: vidgn.data.transforms.normalize defaults (PySlowFast's Kinetics values);
# tests/test_convert_2d.py checks that these stay equal.
VIDGN_DEFAULT = InputConvention("vidgn", "RGB", 1.0, (0.45, 0.45, 0.45), (0.225, 0.225, 0.225))

SOURCES = {"detectron": DETECTRON, "timm": TIMM, "torchvision": TORCHVISION}


@dataclass
class FoldReport:
    """What fold_input_convention did to conv1 (and bn1)."""

    scale: list[float]                    # per RGB input channel: sigma_c / D_c
    swapped_channels: bool                # BGR source: conv1's input channels reversed
    offset: list[float]                   # delta_c, per RGB input channel, in target input units
    bias_max: float                       # max_k |b_k|: the offset through conv1
    bias_folded_into: str | None          # "bn1.running_mean", or None (GN: not folded)

    def summary(self) -> str:
        lines = [
            "conv1: input channels " + ("reversed (BGR -> RGB)" if self.swapped_channels else "kept (RGB)")
            + ", scaled by (" + ", ".join(f"{v:.6g}" for v in self.scale) + "): exact",
        ]
        if max(abs(v) for v in self.offset) == 0.0:
            lines.append("mean offset: none (target mean = source mean): exact everywhere")
        elif self.bias_folded_into:
            lines.append(f"mean offset ({', '.join(f'{v:+.4f}' for v in self.offset)}) -> conv1 bias up to "
                         f"{self.bias_max:.4g}, folded into {self.bias_folded_into}: exact except where "
                         "conv1's 7x7 window overlaps the zero padding (eval mode)")
        else:
            lines.append(f"mean offset ({', '.join(f'{v:+.4f}' for v in self.offset)}) -> conv1 bias up to "
                         f"{self.bias_max:.4g}: NOT folded (GroupNorm has no per-channel mean to absorb it); "
                         "the result equals the source network on the image normalised with the target mean "
                         "and the source std; pass the source's mean as --mean (and data.mean) to be exact")
        return "\n".join(lines)


def fold_input_convention(state: dict[str, torch.Tensor], *, source: InputConvention,
                          target: InputConvention) -> FoldReport:
    """Rewrite state["conv1.weight"] (and state["bn1.running_mean"] for BN) in place so that the
    network fed `target`'s input computes what the original computed on `source`'s input.
    Arithmetic in float64, stored in the tensors' own dtype."""
    w = state["conv1.weight"]
    if w.ndim != 4 or w.shape[1] != 3:
        raise ValueError(f"conv1.weight has shape {tuple(w.shape)}; expected (C, 3, k, k) for RGB input")
    src_mean, src_std = source.rgb_unit()
    tgt_mean, tgt_std = target.rgb_unit()
    if target.order != "RGB":
        raise ValueError("the target convention must be RGB (vidgn's data pipeline decodes RGB)")
    w64 = w.to(torch.float64)
    if source.order == "BGR":
        w64 = w64.flip(1)                               # input channel k(c): RGB order now
    scale = tgt_std / src_std                           # sigma_c / D_c
    w_new = w64 * scale.view(1, 3, 1, 1)
    delta = (tgt_mean - src_mean) / tgt_std             # per RGB channel, target units
    bias = (w_new * delta.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))  # (C,)
    state["conv1.weight"] = w_new.to(w.dtype)
    folded_into = None
    if "bn1.running_mean" in state:
        rm = state["bn1.running_mean"]
        state["bn1.running_mean"] = (rm.to(torch.float64) - bias).to(rm.dtype)
        folded_into = "bn1.running_mean"
    return FoldReport(scale=scale.tolist(), swapped_channels=source.order == "BGR", offset=delta.tolist(),
                      bias_max=float(bias.abs().max()), bias_folded_into=folded_into)
