"""Small classes that tests plug into real runs through config class paths."""
from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
from torch import nn


class NaNAfterSteps(nn.Module):
    """A tiny video network whose logits turn NaN from its `nan_from`-th training forward on."""

    def __init__(self, num_classes: int = 4, nan_from: int = 2):
        super().__init__()
        self.num_classes = num_classes
        self.nan_from = nan_from
        self.calls = 0
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, T, H, W) -> (B, C)
        out = self.fc(x.mean(dim=(2, 3, 4)))
        if self.training:
            self.calls += 1
            if self.calls >= self.nan_from:
                out = out * float("nan")
        return out


class PauseAtStep(L.Callback):
    """At global step `step`, write `marker` and wait so that the test can signal this process."""

    def __init__(self, step: int, marker: str, wait_s: float = 60.0):
        self.step, self.marker, self.wait_s = step, marker, wait_s

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            Path(self.marker).write_text(str(trainer.global_step))
            deadline = time.monotonic() + self.wait_s
            while time.monotonic() < deadline and not trainer.received_sigterm:
                time.sleep(0.05)
