"""I3D ResNet (the Non-local Networks I3D baseline that the GN paper's Table 8 uses), any norm.

Topology (Wang et al., "Non-local Neural Networks", 2018, Table 1; Wu & He, "Group
Normalization", 2018, Sec. 6.3), for a (B, 3, 32, 224, 224) clip:

    conv1  5x7x7, 64, stride (2,2,2)                  -> 16 x 112 x 112
    pool1  max 2x3x3 (pool1_kernel), stride (2,2,2)   ->  8 x  56 x  56
    res2   blocks, inflation table below              ->  8 x  56 x  56
    pool2  max 2x1x1, stride (2,1,1)                  ->  4 x  56 x  56
    res3 / res4 / res5 (spatial stride 2 each)        ->  4 x 28 x 28 / 4 x 14 x 14 / 4 x 7 x 7
    global average pool -> dropout 0.5 -> fc

The containers (ResBlock, BottleneckBlock, ResStage, ResNetBasicStem) are pytorchvideo's, which take
any norm module; its `create_*` builders are bypassed because they cannot take GroupNorm
(docs/models.md). Spatial strides sit on the 3x3 conv of a bottleneck (torchvision's ResNet v1.5
layout), so 2D ImageNet checkpoints inflate one-to-one.
"""
from __future__ import annotations

import logging
import warnings
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from vidgn.models.norms import canonical_norm_name, make_norm

with warnings.catch_warnings():
    # fvcore (imported by pytorchvideo.models) calls the deprecated torch.jit.script at import.
    warnings.simplefilter("ignore", FutureWarning)
    from pytorchvideo.models.resnet import BottleneckBlock, ResBlock, ResStage
    from pytorchvideo.models.stem import ResNetBasicStem

log = logging.getLogger(__name__)

# depth -> (block type, blocks per stage res2..res5), as in He et al. 2016, Table 1.
ARCH: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

# Which blocks are inflated: 1 = the block's first conv gets a temporal kernel of 3 (3x1x1 on a
# bottleneck's 1x1 conv, 3x3x3 on a basic block's first 3x3 conv), 0 = it stays 1xkxk.
# R50 and R101 are the Non-local code's I3D tables (arc_type 2 and 4; R101's res4 alternates
# 1,0,... over 23 blocks). R34 has R50's block counts and reuses its table. R18 and R152 have no
# published I3D table: they continue the same alternating pattern (our extrapolation).
INFLATE: dict[int, tuple[list[int], list[int], list[int], list[int]]] = {
    18: ([1, 1], [1, 0], [1, 0], [0, 1]),
    34: ([1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [0, 1, 0]),
    50: ([1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [0, 1, 0]),
    101: ([1, 1, 1], [1, 0, 1, 0], [1, 0] * 11 + [1], [0, 1, 0]),
    152: ([1, 1, 1], [1, 0] * 4, [1, 0] * 18, [0, 1, 0]),
}
STAGES = ("res2", "res3", "res4", "res5")
STAGE_SPATIAL_STRIDE = (1, 2, 2, 2)  # res2 keeps pool1's resolution; res3-res5 halve H and W


def _sum(shortcut: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    return shortcut + branch


class ReplicateTConv3d(nn.Conv3d):
    """nn.Conv3d that pads the time axis by repeating the edge frames instead of with zeros.

    With it a clip of identical frames stays constant in time through every layer, so an
    inflated network reproduces its 2D network exactly (the I3D "boring video" property). Space is
    still zero-padded, like the 2D network. Same parameters/state dict as nn.Conv3d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        pt, ph, pw = self.padding
        x = F.pad(x, (0, 0, 0, 0, pt, pt), mode="replicate")  # (B, C, T + 2pt, H, W)
        return F.conv3d(x, self.weight, self.bias, self.stride, (0, ph, pw), self.dilation, self.groups)


class BasicBlock(nn.Module):
    """ResNet-18/34 residual branch: conv_a (t x 3 x 3, stride) -> norm -> ReLU -> conv_b (1x3x3) -> norm.

    pytorchvideo has no 2-conv block; attribute names follow its BottleneckBlock (conv_a, norm_a,
    ...), so inflation and zero-init treat both block types alike.
    """

    expansion = 1

    def __init__(self, dim_in: int, width: int, *, t: int, stride: tuple[int, int, int],
                 conv: type[nn.Conv3d], norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.conv_a = conv(dim_in, width, (t, 3, 3), stride=stride, padding=(t // 2, 1, 1), bias=False)
        self.norm_a, self.act_a = norm(width), nn.ReLU(inplace=True)
        self.conv_b = conv(width, width, (1, 3, 3), padding=(0, 1, 1), bias=False)
        self.norm_b = norm(width)

    @property
    def last_norm(self) -> nn.Module:
        return self.norm_b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_b(self.conv_b(self.act_a(self.norm_a(self.conv_a(x)))))


class Bottleneck(BottleneckBlock):
    """ResNet-50/101/152 residual branch: conv_a (t x 1 x 1) -> conv_b (1x3x3, stride) -> conv_c (1x1x1,
    width x 4), each followed by a norm, ReLU between; pytorchvideo's BottleneckBlock built from sizes."""

    expansion = 4

    def __init__(self, dim_in: int, width: int, *, t: int, stride: tuple[int, int, int],
                 conv: type[nn.Conv3d], norm: Callable[[int], nn.Module]) -> None:
        # Not BottleneckBlock.__init__: it copies its locals() onto self, __class__ included, which
        # would turn this object back into a plain BottleneckBlock. Its forward is used as is.
        nn.Module.__init__(self)
        self.conv_a = conv(dim_in, width, (t, 1, 1), padding=(t // 2, 0, 0), bias=False)
        self.norm_a, self.act_a = norm(width), nn.ReLU(inplace=True)
        self.conv_b = conv(width, width, (1, 3, 3), stride=stride, padding=(0, 1, 1), bias=False)
        self.norm_b, self.act_b = norm(width), nn.ReLU(inplace=True)
        self.conv_c = conv(width, width * self.expansion, (1, 1, 1), bias=False)
        self.norm_c = norm(width * self.expansion)

    @property
    def last_norm(self) -> nn.Module:
        return self.norm_c


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def make_stage(name: str, block: type[BasicBlock] | type[Bottleneck], dim_in: int, width: int,
               inflate: list[int], spatial_stride: int, conv: type[nn.Conv3d],
               norm: Callable[[int], nn.Module]) -> ResStage:
    """One res stage of len(inflate) blocks (inflate[j] = 1: block j's first conv is 3 frames deep).
    The first block strides in space and projects the shortcut when the shape changes."""
    dim_out = width * block.expansion
    blocks = []
    for j, inflated in enumerate(inflate):
        stride = (1, spatial_stride, spatial_stride) if j == 0 else (1, 1, 1)
        project = dim_in != dim_out or stride != (1, 1, 1)
        try:
            blocks.append(ResBlock(
                branch1_conv=conv(dim_in, dim_out, (1, 1, 1), stride=stride, bias=False) if project else None,
                branch1_norm=norm(dim_out) if project else None,
                branch2=block(dim_in, width, t=3 if inflated else 1, stride=stride, conv=conv, norm=norm),
                activation=nn.ReLU(inplace=True),
                branch_fusion=_sum,
            ))
        except ValueError as err:  # name the block: GN group counts fail on narrow layers
            raise ValueError(f"I3DResNet layer {name}.res_blocks.{j}: {err}") from None
        dim_in = dim_out
    return ResStage(nn.ModuleList(blocks))


class I3DResNet(nn.Module):
    """I3D ResNet-18/34/50/101/152 for (B, 3, T, H, W) clips, returning (B, num_classes) logits.

    Args:
        depth: 18, 34 (basic blocks), 50, 101, 152 (bottlenecks).
        num_classes: classifier outputs (400 for Kinetics-400).
        norm: bn, gn, ln, in, sync_bn, frozen_bn (see vidgn.models.norms), used everywhere: stem,
            blocks and downsample branches.
        groups: GN group count (GN paper default 32); ignored by other norms.
        channels_per_group: GN channels per group instead of `groups`.
        bn_clips: norm='bn' only: BN statistics over groups of this many clips of the per-process
            batch (one GPU with 32 clips and bn_clips=4 behaves like 8 GPUs x 4 clips).
        sync_bn_group_size: norm='sync_bn' only: sync within groups of this many processes
            (None = all); the groups are made by the training code once DDP has started.
        pretrained_2d: path of a 2D torchvision-layout ResNet state dict (BN or GN) to inflate.
        dropout: dropout before fc (0.5 in the Non-local code).
        pool1_kernel: (t, h, w) of the max pool after conv1, stride (2,2,2). (2,3,3) is the
            official Non-local code; the paper's table says 3x3x3; both give the same sizes.
        base_channels: width of conv1/res2 (64 for the paper's nets; small for CPU demos).
        zero_init_last_norm: start every residual block's last norm weight at 0 (GN paper, Sec. 5.1).
        norm_eps: epsilon of every norm layer.
        norm_momentum: running-statistics momentum of the BN variants.
        temporal_padding: 'zeros' (Non-local code) or 'replicate' (edge frames repeated in time;
            makes a static clip's output exactly the 2D network's).
        in_channels: input channels (3 for RGB).
    """

    def __init__(
        self,
        depth: int = 50,
        num_classes: int = 400,
        norm: str = "bn",
        groups: int = 32,
        channels_per_group: int | None = None,
        bn_clips: int | None = None,
        sync_bn_group_size: int | None = None,
        pretrained_2d: str | None = None,
        dropout: float = 0.5,
        pool1_kernel: tuple[int, int, int] = (2, 3, 3),
        base_channels: int = 64,
        zero_init_last_norm: bool = True,
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        temporal_padding: Literal["zeros", "replicate"] = "zeros",
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if depth not in ARCH:
            raise ValueError(f"I3DResNet: depth={depth} is not supported; use one of {sorted(ARCH)}")
        if temporal_padding not in ("zeros", "replicate"):
            raise ValueError(f"I3DResNet: temporal_padding must be 'zeros' or 'replicate', got {temporal_padding!r}")
        if len(tuple(pool1_kernel)) != 3:
            raise ValueError(f"I3DResNet: pool1_kernel must be (t, h, w), got {pool1_kernel!r}")
        self.depth, self.norm_name = depth, canonical_norm_name(norm)
        if sync_bn_group_size is not None and self.norm_name != "sync_bn":
            raise ValueError(f"sync_bn_group_size applies to norm='sync_bn' only, not {norm!r}")
        # Read by the training code, which makes the process groups once DDP has started
        # (vidgn.training.distributed.set_sync_bn_process_group); until then SyncBN syncs over all.
        self.sync_bn_group_size = sync_bn_group_size
        norm_layer = make_norm(norm, groups=groups, channels_per_group=channels_per_group,
                               bn_clips=bn_clips, eps=norm_eps, momentum=norm_momentum)
        conv_cls = ReplicateTConv3d if temporal_padding == "replicate" else nn.Conv3d

        block_type, counts = ARCH[depth]
        try:
            stem_norm = norm_layer(base_channels)
        except ValueError as err:  # name the layer: GN group counts fail on narrow layers
            raise ValueError(f"I3DResNet layer conv1 ({base_channels} channels): {err}") from None
        self.conv1 = ResNetBasicStem(
            conv=conv_cls(in_channels, base_channels, (5, 7, 7), stride=(2, 2, 2), padding=(2, 3, 3), bias=False),
            norm=stem_norm,
            activation=nn.ReLU(inplace=True),
            pool=None,  # pool1 is separate so forward_stages can report conv1's output
        )
        pk = tuple(int(k) for k in pool1_kernel)
        self.pool1 = nn.MaxPool3d(pk, stride=(2, 2, 2), padding=tuple((k - 1) // 2 for k in pk))
        self.pool2 = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1))

        block = BLOCKS[block_type]
        dim_in = base_channels
        stages = zip(STAGES, counts, INFLATE[depth], STAGE_SPATIAL_STRIDE)
        for i, (name, n_blocks, inflate, stride) in enumerate(stages):
            assert len(inflate) == n_blocks, (depth, name)  # the tables above must agree
            width = base_channels * 2 ** i
            setattr(self, name, make_stage(name, block, dim_in, width, inflate, stride, conv_cls, norm_layer))
            dim_in = width * block.expansion

        self.num_features = dim_in  # channels of res5 (2048 for R50 at base 64)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim_in, num_classes)
        self._init_weights(zero_init_last_norm)

        if self.norm_name == "frozen_bn" and pretrained_2d is None:
            log.warning("I3DResNet(norm='frozen_bn') without pretrained_2d: statistics stay at mean 0 / "
                        "var 1 and the zero-initialised last gammas stay frozen, so residual branches are "
                        "off. frozen_bn is meant for fine-tuning from loaded weights.")
        if pretrained_2d is not None:
            from vidgn.models.inflate import load_pretrained_2d

            report = load_pretrained_2d(self, pretrained_2d)
            if report.problems():
                # Loud: part of the network keeps its random init (or checkpoint tensors go unused),
                # e.g. a BN checkpoint loaded into norm='gn' -- rarely what the experiment meant.
                log.warning("I3DResNet(norm=%r): pretrained_2d %s does not fully fit this network:\n%s",
                            self.norm_name, pretrained_2d, report.summary())
            else:
                log.info("I3DResNet: pretrained_2d %s: %s", pretrained_2d, report.summary().replace("\n", "; "))

    # -- initialisation ----------------------------------------------------------------------------
    def residual_blocks(self) -> list[ResBlock]:
        return [b for name in STAGES for b in getattr(self, name).res_blocks]

    def last_norms(self) -> list[nn.Module]:
        """The last norm of every residual branch (the ones zero-initialised)."""
        return [b.branch2.last_norm for b in self.residual_blocks()]

    @torch.no_grad()
    def _init_weights(self, zero_init_last_norm: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):  # MSRA init, as torchvision and the Non-local code
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, std=0.01)  # Non-local code's fc init
        nn.init.zeros_(self.fc.bias)
        if zero_init_last_norm:
            # GN paper, Sec. 5.1 (after Goyal et al. 2017): gamma=0 in each block's last norm, so
            # every block starts as the identity.
            for m in self.last_norms():
                nn.init.zeros_(m.weight)

    # -- forward -----------------------------------------------------------------------------------
    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs of conv1, res2, res3, res4, res5 (each (B, C, T', H', W'))."""
        if x.ndim != 5:
            raise ValueError(f"I3DResNet expects (B, C, T, H, W) clips, got shape {tuple(x.shape)}")
        self.check_num_frames(x.shape[2])
        out = {}
        x = out["conv1"] = self.conv1(x)             # (B, 64, T/2, H/2, W/2)
        x = self.pool1(x)
        x = out["res2"] = self.res2(x)               # (B, 256, T/4, H/4, W/4)
        x = out["res3"] = self.res3(self.pool2(x))   # (B, 512, T/8, H/8, W/8)
        x = out["res4"] = self.res4(x)               # (B, 1024, T/8, H/16, W/16)
        out["res5"] = self.res5(x)                   # (B, 2048, T/8, H/32, W/32)
        return out

    def check_num_frames(self, num_frames: int) -> None:
        """Raise ValueError if clips of `num_frames` frames are too short for this network. The
        training code calls it with data.num_frames before a run writes anything; forward checks
        every clip (shapes only: no computation)."""
        t = int(num_frames)
        for k, s, p in ((self.conv1.conv.kernel_size[0], self.conv1.conv.stride[0], self.conv1.conv.padding[0]),
                        (self.pool1.kernel_size[0], self.pool1.stride[0], self.pool1.padding[0])):
            t = (t + 2 * p - k) // s + 1  # conv/pool output length (no dilation, floor mode)
        if t < 2:  # pool2 halves time once more
            raise ValueError(f"I3DResNet: a clip of {num_frames} frames is too short; time is downsampled 8x "
                             "(conv1, pool1, pool2), so use clips of at least 8 frames (data.num_frames)")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled res5 features, (B, num_features). Works for any crop size."""
        return self.forward_stages(x)["res5"].mean(dim=(2, 3, 4))  # (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, T, H, W) -> (B, num_classes)
        return self.fc(self.dropout(self.forward_features(x)))
