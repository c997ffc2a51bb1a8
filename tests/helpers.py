"""Small classes that tests plug into real runs through config class paths."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import lightning as L
import torch
from torch import nn


def ctrl_c_as_in_a_terminal() -> None:
    """`preexec_fn` for a subprocess a test sends Ctrl-C (SIGINT) to: a suite started in the
    background (`cmd &`, nohup, some CI runners) has SIGINT ignored, and the child would inherit
    that, so Python would never install its KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


class RecordBatches(L.Callback):
    """Append, per training step, the step, the batch's video indices and a checksum of its pixels
    to the JSON-lines file `path` (so that two runs' data can be compared step by step)."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        import json

        row = {"step": trainer.global_step, "epoch": trainer.current_epoch,
               "videos": batch["video_index"].tolist(), "pixels": round(float(batch["video"].double().sum()), 3)}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def write_decoder_crashing_mp4(path: str | Path) -> Path:
    """A real H.264 mp4 that kills decord (0.6 and decord2 3.4) with SIGABRT in the VideoReader constructor.

    Found by fuzzing mp4 index tables: the time-to-sample table (`stts`) is rewritten to claim
    4096 x 0xFFFFFFFF samples. decord then reserves a frame-time entry per claimed frame (~512 TiB,
    beyond any x86-64 address space), std::bad_alloc escapes its C API, and the process aborts:
    no Python exception, on any machine. The same class of damage (a corrupt index claiming
    absurd frame counts) turns up in real downloads.
    """
    import struct

    import av
    import numpy as np

    path = Path(path)
    c = av.open(str(path), "w")  # no faststart: moov after mdat, so chunk offsets stay valid
    s = c.add_stream("libx264", rate=30)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    for i in range(60):
        img = np.zeros((48, 64, 3), np.uint8)
        img[10:18, (2 * i) % 56:(2 * i) % 56 + 8] = 255
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()

    data = bytearray(path.read_bytes())
    containers = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
    ancestors, stts, pos, end = [], None, 0, len(data)
    while pos + 8 <= end:  # walk down moov/trak/mdia/minf/stbl to stts
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"stts":
            stts = (pos, size)
            break
        if kind in containers:
            ancestors.append(pos)
            pos, end = pos + 8, pos + size
        else:
            pos += size
    assert stts is not None, "no stts box found"
    off, size = stts
    delta = struct.unpack(">I", data[off + 20:off + 24])[0]  # first entry's sample delta
    n = 4096
    payload = struct.pack(">II", 0, n) + struct.pack(">II", 0xFFFFFFFF, delta) * n
    new = struct.pack(">I4s", 8 + len(payload), b"stts") + payload
    for a in ancestors:  # the enclosing boxes grow by as much
        struct.pack_into(">I", data, a, struct.unpack(">I", data[a:a + 4])[0] + len(new) - size)
    data[off:off + size] = new
    path.write_bytes(bytes(data))
    return path
