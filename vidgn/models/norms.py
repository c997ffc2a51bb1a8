"""Normalization layers for I3D ResNets: one factory, every norm the GN paper compares.

`make_norm(name, ...)` returns a callable `norm(C) -> nn.Module` (timm style), so every call site in
the network is `norm(C)` and the choice of BN / GN / LN / IN / SyncBN / FrozenBN / sub-batch BN is
made once.

Names (aliases: NORM_ALIASES):
  bn         BatchNorm3d over the process's own clips; with bn_clips=k, over groups of k clips.
  gn         GroupNorm over (C/G, T, H, W); `groups` or `channels_per_group`. A GroupNorm3d: it keeps
             channels_last_3d where torch's kernel would not (vidgn.models.group_norm); gn_native /
             gn_cl force torch's kernel / the layout-keeping path (same layer and state dict).
  ln         GroupNorm with 1 group (GN paper, Sec. 3.1: LN = GN with G=1).
  in         GroupNorm with G=C (GN paper: IN = GN with G=C).
  sync_bn    nn.SyncBatchNorm (process groups: vidgn.training.distributed).
  frozen_bn  population statistics and affine frozen (Non-local code).
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from vidgn.models.group_norm import GroupNorm3d, GroupNormImpl, grouped_moments, is_channels_last_3d

NORM_ALIASES = {
    "bn": "bn", "batch_norm": "bn", "batchnorm": "bn",
    "gn": "gn", "group_norm": "gn", "groupnorm": "gn", "gn_native": "gn", "gn_cl": "gn",
    "ln": "ln", "layer_norm": "ln", "layernorm": "ln",
    "in": "in", "instance_norm": "in", "instancenorm": "in",
    "sync_bn": "sync_bn", "syncbn": "sync_bn", "sync_batch_norm": "sync_bn",
    "frozen_bn": "frozen_bn", "frozenbn": "frozen_bn", "frozen_batch_norm": "frozen_bn",
}
# Names that pick a GroupNorm3d implementation (the layer, its maths and state dict are GN's, so they
# canonicalise to "gn": checkpoints move freely between them). For benchmarks: `vidgn bench model`.
GN_IMPL_NAMES: dict[str, GroupNormImpl] = {"gn_native": "native", "gn_cl": "channels_last"}
# Norms whose statistics come from the batch (and so have population statistics to estimate).
BATCH_NORMS = ("bn", "sync_bn", "frozen_bn")


def canonical_norm_name(name: str) -> str:
    """'BatchNorm' / 'group_norm' / ... -> one of bn, gn, ln, in, sync_bn, frozen_bn."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in NORM_ALIASES:
        raise ValueError(
            f"unknown norm {name!r}: use one of bn, gn, ln, in, sync_bn, frozen_bn "
            f"(aliases: {', '.join(sorted(k for k in NORM_ALIASES if NORM_ALIASES[k] != k))})"
        )
    return NORM_ALIASES[key]


class _SubBatchNormChannelsLast(torch.autograd.Function):
    """Training BN over groups of clips of a channels_last_3d (B, C, T, H, W) tensor, B = k * G,
    group g = clips g, g+G, ...: the memory is (k, G, T*H*W, C), so the statistics are a reduction
    over dims (0, 2) of a free view, and y = a * x + b keeps x's layout. Returns y and the (G*C,)
    group means and biased variances (in `acc`). Backward: BN's closed form per (group, channel),
    dX = a * dY + c2 * X + c3.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                groups: int, eps: float, acc: torch.dtype):
        B, C = x.shape[:2]
        G, k = groups, B // groups
        xs = x.permute(0, 2, 3, 4, 1).view(k, G, -1, C)  # (k, G, T*H*W, C): the memory as it is
        mean, var = grouped_moments(xs, dim=2, groups_dim=0, acc=acc)  # (G, C)
        rstd = torch.rsqrt(var + eps)
        a = rstd * weight.to(acc) if weight is not None else rstd  # (G, C): y = a * x + b
        b = -mean * a + (bias.to(acc) if bias is not None else 0)
        # (B, C, 1, 1, 1) coefficients, clip i*G + g taking group g's: the output keeps x's strides.
        y = torch.addcmul(b.repeat(k, 1).view(B, C, 1, 1, 1), x, a.repeat(k, 1).view(B, C, 1, 1, 1))
        ctx.save_for_backward(x, mean, rstd, weight)
        ctx.groups, ctx.has_bias = G, bias is not None
        ctx.mark_non_differentiable(mean, var)
        return y.to(x.dtype), mean.view(-1), var.view(-1)

    @staticmethod
    def backward(ctx, dy: torch.Tensor, _dmean, _dvar):
        x, mean, rstd, weight = ctx.saved_tensors
        B, C = x.shape[:2]
        G, k = ctx.groups, B // ctx.groups
        acc = mean.dtype
        dy = dy.contiguous(memory_format=torch.channels_last_3d)  # a no-op when the layout was kept
        xs = x.permute(0, 2, 3, 4, 1).view(k, G, -1, C)
        dys = dy.permute(0, 2, 3, 4, 1).view(k, G, -1, C)
        n = k * xs.shape[2]
        db = dys.sum((0, 2), dtype=acc)  # (G, C): sum dY
        dxhat = ((dys.to(acc) * xs.to(acc)).sum((0, 2)) - mean * db) * rstd  # (G, C): sum dY * xhat
        dx = dw = dbias = None
        if ctx.needs_input_grad[0]:
            a = rstd * weight.to(acc) if weight is not None else rstd
            c2 = -a * rstd * dxhat / n
            c3 = -a * db / n - c2 * mean
            dx = torch.addcmul(c3.repeat(k, 1).view(B, C, 1, 1, 1), x, c2.repeat(k, 1).view(B, C, 1, 1, 1))
            dx = dx.addcmul_(dy, a.repeat(k, 1).view(B, C, 1, 1, 1)).to(x.dtype)
        if weight is not None and ctx.needs_input_grad[1]:
            dw = dxhat.sum(0).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            dbias = db.sum(0).to(weight.dtype if weight is not None else x.dtype)
        return dx, dw, dbias, None, None, None


class SubBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm3d whose training statistics come from groups of `bn_clips` clips of the batch.

    One process with 32 clips and bn_clips=4 normalises like 8 unsynchronised DDP processes with
    4 clips each (GN paper, Fig. 1/Table 8 vary clips per GPU this way). Same idea as PySlowFast's
    SubBatchNorm3d, but parameterised by clips per group, so it works for any batch size that is a
    multiple of bn_clips.

    Grouping: with B = G * k clips, group g holds clips g, g+G, g+2G, ... In the standard layout
    this is a free `view` of the (B, C, ...) tensor as (k, G*C, ...), so the native BN kernel does
    the work; a channels_last_3d input is normalised on the free (k, G, T*H*W, C) view of its memory
    instead and the output keeps that layout (same numbers). Which clips share statistics is
    immaterial for a shuffled batch (tests map it onto DDP ranks the same way).

    Running statistics are merged over the groups at every step (law of total variance), so the
    buffers are exactly BatchNorm3d's: evaluation, checkpoints, inflation and precise BN see a
    plain BN layer. Parameters and buffers have the usual C entries.
    """

    def __init__(self, num_features: int, bn_clips: int, eps: float = 1e-5,
                 momentum: float | None = 0.1, **kwargs) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, **kwargs)
        if bn_clips < 1:
            raise ValueError(f"bn_clips must be a positive number of clips, got {bn_clips}")
        self.bn_clips = bn_clips

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bn_clips={self.bn_clips}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:  # population statistics: plain BN
            return super().forward(x)
        self._check_input_dim(x)
        B, C = x.shape[:2]
        k = self.bn_clips
        if B % k != 0:
            raise ValueError(
                f"SubBatchNorm3d: a training batch of {B} clips is not a multiple of bn_clips={k}; "
                "make the per-process batch size a multiple of bn_clips (and use drop_last=True)"
            )
        G = B // k
        # Statistics in the buffers' dtype (float32 under bf16/fp16 autocast, float64 for a .double() net).
        dt = self.running_mean.dtype if self.running_mean is not None else (
            torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype)
        n = x.numel() // (G * C)  # values per group and channel: k clips x T x H x W
        if is_channels_last_3d(x):
            # (k, G*C, ...) is no view of channels_last_3d memory (reshape would copy to the standard
            # layout and hand back a standard-layout output): normalise on the (k, G, THW, C) view.
            y, mean_g, var_g = _SubBatchNormChannelsLast.apply(x, self.weight, self.bias, G, self.eps, dt)
            var_g = var_g * (n / max(n - 1, 1))  # unbiased, as F.batch_norm hands it back
        else:
            xg = x.reshape(k, G * C, *x.shape[2:])  # (k, G*C, T, H, W): channel block g = group g
            # momentum=1 into scratch buffers hands back each group's batch mean and unbiased variance.
            mean_g = torch.zeros(G * C, device=x.device, dtype=dt)
            var_g = torch.ones(G * C, device=x.device, dtype=dt)
            w = None if self.weight is None else self.weight.repeat(G)
            b = None if self.bias is None else self.bias.repeat(G)
            y = F.batch_norm(xg, mean_g, var_g, w, b, True, 1.0, self.eps).view_as(x)
        if self.track_running_stats:
            self._update_running_stats(mean_g.detach().view(G, C), var_g.detach().view(G, C), n=n)
        return y

    @torch.no_grad()
    def _update_running_stats(self, mean_g: torch.Tensor, var_g: torch.Tensor, n: int) -> None:
        """Merge per-group (G, C) mean / unbiased variance over n values into the running buffers."""
        G = mean_g.shape[0]
        mean = mean_g.mean(0)
        var_biased = (var_g * ((n - 1) / n)).mean(0) + ((mean_g - mean) ** 2).mean(0)
        N = n * G
        var = var_biased * (N / max(N - 1, 1))  # unbiased, as nn.BatchNorm stores it
        self.num_batches_tracked.add_(1)
        f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - f).add_(mean.to(self.running_mean.dtype), alpha=f)
        self.running_var.mul_(1 - f).add_(var.to(self.running_var.dtype), alpha=f)


class FrozenBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm3d with frozen population statistics and affine, in train mode too.

    The Non-local code's recipe for long clips (few clips per GPU): keep the pretrained
    statistics. The state dict is BatchNorm3d's, so BN checkpoints load unchanged; the affine
    parameters stay `nn.Parameter`s with requires_grad=False (so they show up, frozen, in
    `named_parameters`). Precise BN leaves these layers alone.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 **kwargs) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, **kwargs)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        # training=False: always the running statistics, never updated.
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)


def _group_norm(num_channels: int, *, groups: int | None, channels_per_group: int | None,
                eps: float, kind: str, impl: GroupNormImpl = "auto") -> GroupNorm3d:
    if kind == "ln":
        g = 1
    elif kind == "in":
        g = num_channels
    elif channels_per_group is not None:
        if channels_per_group < 1 or num_channels % channels_per_group:
            raise ValueError(
                f"GroupNorm: channels_per_group={channels_per_group} does not divide {num_channels} "
                f"channels; set channels_per_group to a divisor of {num_channels} (or use `groups`)"
            )
        g = num_channels // channels_per_group
    else:
        if groups is None or groups < 1 or num_channels % groups:
            raise ValueError(
                f"GroupNorm: groups={groups} does not divide {num_channels} channels; set `groups` "
                f"to a divisor of {num_channels}, or set `channels_per_group` instead"
            )
        g = groups
    return GroupNorm3d(g, num_channels, eps=eps, impl=impl)


def make_norm(
    norm: str,
    *,
    groups: int = 32,
    channels_per_group: int | None = None,
    bn_clips: int | None = None,
    eps: float = 1e-5,
    momentum: float = 0.1,
) -> Callable[[int], nn.Module]:
    """Factory for the normalization layer; every call site is `norm(C)`.

    Args:
        norm: bn, gn, ln, in, sync_bn or frozen_bn (aliases in the module docstring); gn_native /
            gn_cl are gn with torch's kernel / the layout-keeping path forced (GroupNorm3d `impl`).
        groups: GN group count (GN paper default 32).
        channels_per_group: GN channels per group instead of a fixed group count.
        bn_clips: for `bn` only: statistics over groups of this many clips (SubBatchNorm3d);
            None = over the whole per-process batch.
        eps: epsilon of every norm.
        momentum: running-statistics momentum of the BN variants.

    `sync_bn` syncs over every process; groups of processes are set up by the training code once
    DDP has started (`vidgn.training.distributed.set_sync_bn_process_group`).
    """
    kind = canonical_norm_name(norm)
    if bn_clips is not None and kind != "bn":
        raise ValueError(f"bn_clips={bn_clips} applies to norm='bn' only, not {norm!r}; set bn_clips to null")
    if kind == "bn":
        if bn_clips is None:
            return partial(nn.BatchNorm3d, eps=eps, momentum=momentum)
        if bn_clips < 1:
            raise ValueError(f"bn_clips must be >= 1 (clips per BN group), got {bn_clips}")
        return partial(SubBatchNorm3d, bn_clips=bn_clips, eps=eps, momentum=momentum)
    if kind == "frozen_bn":
        return partial(FrozenBatchNorm3d, eps=eps, momentum=momentum)
    if kind == "sync_bn":
        return partial(nn.SyncBatchNorm, eps=eps, momentum=momentum)
    impl = GN_IMPL_NAMES.get(str(norm).strip().lower().replace("-", "_"), "auto")
    return partial(_group_norm, groups=groups, channels_per_group=channels_per_group, eps=eps, kind=kind,
                   impl=impl)


# Every normalization module type (incl. SyncBN, FrozenBN and SubBN: all _BatchNorm subclasses).
_NORM_TYPES = (_BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def is_norm(module: nn.Module) -> bool:
    """True for every normalization layer (BN variants, GN/LN/IN)."""
    return isinstance(module, _NORM_TYPES)


def is_batch_norm(module: nn.Module) -> bool:
    """True for BN layers whose population statistics are estimated from data (not FrozenBN)."""
    return (isinstance(module, _BatchNorm) and not isinstance(module, FrozenBatchNorm3d)
            and module.track_running_stats)
