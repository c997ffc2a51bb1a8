"""Optimizer parameter groups: no weight decay on norm parameters and biases (Non-local code recipe)."""
from __future__ import annotations

from torch import nn

from vidgn.models.norms import is_norm


def param_groups(model: nn.Module, weight_decay: float, norm_bias_decay: bool = False) -> list[dict]:
    """Optimizer parameter groups: weight decay on conv/fc weights only.

    With norm_bias_decay=False (the usual recipe), norm parameters (gamma, beta) and every bias go
    to a group with weight_decay=0. Frozen parameters (requires_grad=False, e.g. frozen_bn) are
    left out. Groups carry a "name" ("decay" / "no_decay"); empty groups are dropped.
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if not norm_bias_decay and (is_norm(module) or pname == "bias" or p.ndim <= 1):
                no_decay.append(p)
            else:
                decay.append(p)
    groups = [{"name": "decay", "params": decay, "weight_decay": weight_decay},
              {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
