"""Precise BN: recompute BN population statistics from N training batches before evaluation.

The running averages kept during training lag behind the weights (momentum 0.1 spans the last
~10 steps of a moving network). PySlowFast and the Non-local code re-estimate them with the final
weights before validation/test; like fvcore's `update_bn_stats`, each batch's mean and variance
get equal weight. GN/LN/IN have no population statistics, so this is a no-op for them.
"""
from __future__ import annotations

import itertools
import logging
from typing import Iterable

import torch
from torch import nn

from vidgn.models.norms import is_batch_norm

log = logging.getLogger(__name__)


@torch.no_grad()
def update_bn_stats(model: nn.Module, batches: Iterable[torch.Tensor], num_batches: int) -> int:
    """Set every BN layer's running mean/var to the average of its batch statistics over batches.

    Args:
        model: any module; BatchNorm / SyncBatchNorm / SubBatchNorm3d layers are updated in place
            (FrozenBatchNorm3d layers are frozen and left alone).
        batches: input tensors (B, 3, T, H, W) already on the model's device (e.g. training clips).
        num_batches: use at most this many batches.

    Returns the number of batches used: 0 (and `batches` untouched) when the model has no BN.
    The model's train/eval mode (of every submodule) and the BN momenta are restored.
    """
    bns = [m for m in model.modules() if is_batch_norm(m)]
    if not bns or num_batches <= 0:
        return 0
    modes = {m: m.training for m in model.modules()}
    momenta = {bn: bn.momentum for bn in bns}
    # Accumulate in float64: equal-weight running averages over many batches.
    means = [torch.zeros_like(bn.running_mean, dtype=torch.float64) for bn in bns]
    variances = [torch.zeros_like(bn.running_var, dtype=torch.float64) for bn in bns]
    saved = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]
    n = 0
    try:
        model.train()  # batch statistics in every BN layer (dropout too, as during training)
        for bn in bns:
            # momentum 1: after a forward, the running buffers hold exactly this batch's statistics.
            bn.momentum = 1.0
        for x in itertools.islice(batches, num_batches):
            model(x)
            n += 1
            for bn, mean, var in zip(bns, means, variances):
                mean += (bn.running_mean.double() - mean) / n
                var += (bn.running_var.double() - var) / n
    except BaseException:
        for bn, (mean, var) in zip(bns, saved):  # a failed pass must not leave one batch's stats
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
        raise
    finally:
        for bn in bns:
            bn.momentum = momenta[bn]
        for m, training in modes.items():
            m.training = training
    if n == 0:
        log.warning("update_bn_stats: no batches given; BN statistics unchanged")
        return 0
    for bn, mean, var in zip(bns, means, variances):
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
    if n < num_batches:
        log.warning("update_bn_stats: asked for %d batches, the iterable gave %d", num_batches, n)
    return n
