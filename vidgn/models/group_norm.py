"""GroupNorm for 5D video tensors that keeps the channels_last_3d layout.

Why: up to at least torch 2.14.1 the CUDA GroupNorm kernel only handles the standard layout, so
`nn.GroupNorm` on a channels_last_3d tensor copies the input to the standard layout, returns a
standard-layout output, and the next channels_last conv copies back; the backward copies the
output gradient and the saved input to the standard layout and returns a standard-layout input
gradient, which the conv before copies back: about five copies of the activation per GN layer and
training step (docs/models.md has the sources). The CPU kernel keeps the layout.

`GroupNorm3d` is an `nn.GroupNorm` (same parameters, state dict, isinstance checks) that, on a
channels_last_3d input, computes the statistics on the free (N, T*H*W, G, C/G) view of the memory
and writes the output in the input's layout, with a closed-form backward that keeps it too. It
runs with plain tensor ops (forward: per-channel sums and a multiply-add; backward: two sums and
two multiply-adds), an eager path, not a fused kernel: whether it beats torch's kernel plus the
copies on a GPU is to be measured (`gn_cl` vs `gn_native`).

impl:
  auto           the layout-keeping path only where torch's own kernel would not keep the layout
                 (found by running it once per device on a small channels_last_3d tensor), and never
                 under torch.compile (Inductor generates its own GroupNorm kernels).
  native         always torch's kernel (`F.group_norm`).
  channels_last  the layout-keeping path for every channels_last_3d input.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

GroupNormImpl = Literal["auto", "native", "channels_last"]
GROUP_NORM_IMPLS: tuple[str, ...] = ("auto", "native", "channels_last")
_CL3D = torch.channels_last_3d
_LOW_PRECISION = (torch.float16, torch.bfloat16)

# (device type, index) -> does F.group_norm return a channels_last_3d output for such an input?
_NATIVE_KEEPS_LAYOUT: dict[tuple[str, int | None], bool] = {}


def native_group_norm_keeps_channels_last(device: torch.device) -> bool:
    """Whether torch's own GroupNorm returns channels_last_3d for a channels_last_3d input on
    `device` (True on CPU; False on CUDA in torch <= 2.14.1). Measured once per device."""
    key = (device.type, device.index)
    if key not in _NATIVE_KEEPS_LAYOUT:
        # (1, 4, 2, 2, 2): no size-1 dims after the batch, so the two layouts have distinct strides.
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            probe = torch.zeros((1, 4, 2, 2, 2), device=device).contiguous(memory_format=_CL3D)
            _NATIVE_KEEPS_LAYOUT[key] = F.group_norm(probe, 2).is_contiguous(memory_format=_CL3D)
    return _NATIVE_KEEPS_LAYOUT[key]


def is_channels_last_3d(x: torch.Tensor) -> bool:
    """A 5D tensor in channels_last_3d memory that is not also in the standard layout (T=H=W=1 is
    both: then there is no layout to keep)."""
    return x.dim() == 5 and x.is_contiguous(memory_format=_CL3D) and not x.is_contiguous()


def grouped_moments(x: torch.Tensor, dim: int, groups_dim: int | tuple[int, ...],
                    acc: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance of `x` over `dim` and `groups_dim` together, in dtype `acc`.

    Per row over `dim` first (the reduction torch runs fast on channels_last memory: contiguous
    rows of channels; var_mean over several strided dims is ~50x slower on CPU), then the rows are
    merged over `groups_dim` by the law of total variance, so the deviations are taken from each
    row's own mean (no E[x^2] - E[x]^2 cancellation). Result: x's shape without both.
    """
    n = x.shape[dim]
    mean = x.sum(dim, keepdim=True, dtype=acc) / n
    m2 = (x.to(acc) - mean).square_().sum(dim)  # per row: sum of squared deviations
    mean = mean.squeeze(dim)
    gdims = (groups_dim,) if isinstance(groups_dim, int) else groups_dim
    gdims = tuple(d - (d > dim) for d in gdims)  # `dim` is gone now
    rows = 1
    for d in gdims:
        rows *= mean.shape[d]
    total = mean.mean(gdims, keepdim=True)
    var = (m2.sum(gdims) + n * (mean - total).square().sum(gdims)) / (n * rows)
    return total.squeeze(gdims), var


def _per_channel(stat: torch.Tensor, channels_per_group: int) -> torch.Tensor:
    """(N, G) -> (N, C): each group's value repeated for its C/G channels."""
    return stat.repeat_interleave(channels_per_group, dim=1)


def _bcast(t: torch.Tensor) -> torch.Tensor:
    """(N, C) -> (N, C, 1, 1, 1), to broadcast over a (N, C, T, H, W) tensor in any layout."""
    return t.view(*t.shape, 1, 1, 1)


class _GroupNormChannelsLast(torch.autograd.Function):
    """GroupNorm of a channels_last_3d (N, C, T, H, W) tensor; output and input grad in that layout.

    Statistics and coefficients in float32 for half inputs (as torch's kernels accumulate), the
    backward is torch's own closed form (cuda/group_norm_kernel.cu, ComputeBackwardFusedParams):
    dX = rstd * gamma * dY + c2 * X + c3 per (sample, group).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                num_groups: int, eps: float) -> torch.Tensor:
        N, C = x.shape[:2]
        G, D = num_groups, C // num_groups
        acc = torch.float32 if x.dtype in _LOW_PRECISION else x.dtype
        xs = x.permute(0, 2, 3, 4, 1).view(N, -1, G, D)  # (N, T*H*W, G, C/G): the memory as it is
        mean, var = grouped_moments(xs, dim=1, groups_dim=3, acc=acc)  # (N, G)
        rstd = torch.rsqrt(var + eps)
        a = _per_channel(rstd, D)  # (N, C): y = a * x + b
        if weight is not None:
            a = a * weight.to(acc)
        b = -_per_channel(mean, D) * a
        if bias is not None:
            b = b + bias.to(acc)
        # Elementwise with (N, C, 1, 1, 1) operands: the output takes x's (channels_last_3d) strides.
        y = torch.addcmul(_bcast(b), x, _bcast(a)).to(x.dtype)
        ctx.save_for_backward(x, mean, rstd, weight)
        ctx.num_groups, ctx.has_bias = G, bias is not None
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, mean, rstd, weight = ctx.saved_tensors
        N, C = x.shape[:2]
        G = ctx.num_groups
        D = C // G
        acc = mean.dtype
        dy = dy.contiguous(memory_format=_CL3D)  # a no-op when the next layer kept the layout
        xs, dys = x.permute(0, 2, 3, 4, 1).view(N, -1, C), dy.permute(0, 2, 3, 4, 1).view(N, -1, C)
        # Per (sample, channel) sums over T*H*W: sum dY and sum dY * X.
        db = dys.sum(1, dtype=acc)  # (N, C)
        ds = (dys.to(acc) * xs.to(acc)).sum(1)  # (N, C)
        w = weight.to(acc) if weight is not None else torch.ones(C, dtype=acc, device=x.device)
        sum1 = (ds * w).view(N, G, D).sum(-1)  # (N, G)
        sum2 = (db * w).view(N, G, D).sum(-1)
        s = 1.0 / (D * xs.shape[1])
        c2 = (sum2 * mean - sum1) * rstd.pow(3) * s
        c3 = -c2 * mean - sum2 * rstd * s
        dx = dw = dbias = None
        if ctx.needs_input_grad[0]:
            a = _per_channel(rstd, D) * w  # (N, C)
            dx = torch.addcmul(_bcast(_per_channel(c3, D)), x, _bcast(_per_channel(c2, D)))
            dx = dx.addcmul_(dy, _bcast(a)).to(x.dtype)  # (N, C, T, H, W), channels_last_3d
        if weight is not None and ctx.needs_input_grad[1]:
            dw = ((ds - _per_channel(mean, D) * db) * _per_channel(rstd, D)).sum(0).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            dbias = db.sum(0).to(weight.dtype if weight is not None else x.dtype)
        return dx, dw, dbias, None, None


def group_norm_channels_last(x: torch.Tensor, num_groups: int, weight: torch.Tensor | None = None,
                             bias: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """F.group_norm for a channels_last_3d (N, C, T, H, W) tensor, output in the same layout.

    Under CUDA autocast the result is float32, as torch's autocast runs group_norm in float32 there
    (aten/src/ATen/autocast_mode.cpp, fp32 list); on CPU autocast leaves group_norm alone.
    """
    if not x.is_contiguous(memory_format=_CL3D) or x.dim() != 5:
        raise ValueError(f"group_norm_channels_last needs a channels_last_3d 5D tensor, got strides {x.stride()}")
    if x.shape[1] % num_groups:
        raise ValueError(f"GroupNorm: groups={num_groups} does not divide {x.shape[1]} channels")
    device = x.device.type
    if torch.is_autocast_enabled(device) and device == "cuda":
        x = x.float()
    with torch.autocast(device, enabled=False):
        return _GroupNormChannelsLast.apply(x, weight, bias, num_groups, eps)


class GroupNorm3d(nn.GroupNorm):
    """nn.GroupNorm whose channels_last_3d inputs keep their layout (module docstring: `impl`).

    Same constructor, parameters and state dict as nn.GroupNorm (plus `impl`), so GN checkpoints
    and 2D inflation load unchanged.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, *,
                 impl: GroupNormImpl = "auto", device=None, dtype=None) -> None:
        super().__init__(num_groups, num_channels, eps=eps, affine=affine, device=device, dtype=dtype)
        if impl not in GROUP_NORM_IMPLS:
            raise ValueError(f"GroupNorm3d: impl must be one of {', '.join(GROUP_NORM_IMPLS)}, got {impl!r}")
        self.impl = impl

    def extra_repr(self) -> str:
        return super().extra_repr() + f", impl={self.impl}"

    def keeps_layout_itself(self, x: torch.Tensor) -> bool:
        """True when this input goes through the layout-keeping path rather than torch's kernel."""
        if self.impl == "native" or not is_channels_last_3d(x):
            return False
        if self.impl == "channels_last":
            return True
        if torch.compiler.is_compiling() or x.device.type == "meta":
            return False
        return not native_group_norm_keeps_channels_last(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, T, H, W)
        if self.keeps_layout_itself(x):
            return group_norm_channels_last(x, self.num_groups, self.weight, self.bias, self.eps)
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
