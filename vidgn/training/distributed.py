"""Process groups for SyncBatchNorm: sync BN statistics within groups of processes, not the world.

The network only records `sync_bn_group_size`; the groups are made here, by the training code, once
the process group exists (VideoClassifier.setup: under Lightning the model is built before DDP
starts). Every function here is collective: all ranks call it, in the same order.
"""
from __future__ import annotations

import torch.distributed as dist
from torch import nn


def set_sync_bn_process_group(model: nn.Module, group_size: int | None) -> int:
    """Point every nn.SyncBatchNorm in `model` at groups of `group_size` consecutive ranks.

    Collective. Returns the number of layers changed: 0 when group_size is None (sync over all
    processes), when there is no SyncBatchNorm, or when no process group is initialised.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.SyncBatchNorm)]
    if group_size is None or not layers or not (dist.is_available() and dist.is_initialized()):
        return 0
    world = dist.get_world_size()
    if group_size < 1 or world % group_size:
        raise ValueError(
            f"sync_bn_group_size={group_size} does not divide the world size {world}; set it to a "
            f"divisor of {world} (or null to sync over all processes)"
        )
    group, _ = dist.new_subgroups(group_size)
    for m in layers:
        m.process_group = group
    return len(layers)
