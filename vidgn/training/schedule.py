"""Learning-rate rules: linear scaling by the total batch and per-iteration schedules.

The Non-local I3D recipe (arXiv 1711.07971, which the GN paper's Kinetics runs follow) uses LR 0.01 for
64 clips per iteration (8 GPUs x 8 clips), divided by 10 at 150k and 300k of 400k iterations. We keep
the LR "per 64 clips" and scale it linearly with the real total batch (Goyal et al. 2017), and express
the step milestones as fractions of the run (150k/400k = 0.375, 300k/400k = 0.75) so that the same
config fits any dataset size, batch or number of epochs.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

Schedule = Literal["step", "cosine", "constant"]


def scaled_lr(base_lr: float, total_batch: int, reference_batch: int = 64) -> float:
    """Linear scaling rule: `base_lr` is the LR for `reference_batch` clips per iteration."""
    if total_batch <= 0 or reference_batch <= 0:
        raise ValueError(f"batch sizes must be positive, got total={total_batch}, reference={reference_batch}")
    return base_lr * total_batch / reference_batch


def lr_factor(
    step: int,
    total_steps: int,
    schedule: Schedule = "step",
    milestones: Sequence[float] = (0.375, 0.75),
    gamma: float = 0.1,
    warmup_steps: int = 0,
    warmup_start_factor: float = 0.1,
) -> float:
    """Multiplier of the (scaled) base LR at optimizer step `step` (0-based) of `total_steps`.

    - step: x`gamma` at each milestone (fractions of `total_steps`).
    - cosine: half-cosine from 1 to 0 over the steps after warm-up.
    - constant: 1.
    A linear warm-up from `warmup_start_factor` to the schedule's value covers the first `warmup_steps`.
    """
    total_steps = max(int(total_steps), 1)
    if schedule == "step":
        passed = sum(step >= round(m * total_steps) for m in milestones)
        factor = gamma**passed
    elif schedule == "cosine":
        span = max(total_steps - warmup_steps, 1)
        progress = min(max(step - warmup_steps, 0) / span, 1.0)
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "constant":
        factor = 1.0
    else:
        raise ValueError(f"unknown LR schedule {schedule!r}; use 'step', 'cosine' or 'constant'")
    if warmup_steps > 0 and step < warmup_steps:
        alpha = step / warmup_steps
        factor *= warmup_start_factor + (1.0 - warmup_start_factor) * alpha
    return factor
