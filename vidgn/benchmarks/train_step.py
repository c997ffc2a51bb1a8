"""One training step of a video network on a fixed synthetic batch, timed, with its FLOPs and memory.

Shared by `vidgn bench model` (every norm of a setting, interleaved) and `vidgn bench fit` (the
model-only figure beside the end-to-end one). A step is what a training iteration costs the model:
forward under the chosen precision, cross-entropy, backward, SGD step (the recipe's Nesterov SGD
with weight decay on conv/fc weights only, vidgn.training.optim.param_groups), gradients freed.
"""
from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidgn.training.optim import param_groups

PRECISIONS = ("32", "bf16-mixed")


def parse_norm_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """'gn' -> ('gn', {}); 'bn:bn_clips=4' -> ('bn', {'bn_clips': 4}); 'gn:groups=8,norm_eps=1e-5'.

    The keyword arguments go to I3DResNet, which hands the norm's ones to make_norm: any norm name
    or option those accept can be benchmarked without changing this code.
    """
    name, _, rest = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"norm spec {spec!r}: expected key=value after ':', got {item!r}")
        kwargs[key.strip()] = _value(value.strip())
    return name.strip(), kwargs


def _value(text: str) -> Any:
    """'4' -> 4, '1e-5' -> 1e-05 (YAML 1.1 would keep that a string), 'true' / 'null' as YAML reads them."""
    import yaml

    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def sync_bn_syncs() -> bool:
    """Whether nn.SyncBatchNorm would really synchronise here: only with an initialised process group
    of more than one process; otherwise its forward falls back to plain batch norm (torch's
    SyncBatchNorm.forward), which is what a single-process run of this project does with sync_bn."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class TrainStep:
    """A network, its optimizer and one synthetic batch on `device`; call `timed()` for one step.

    Args:
        network: (B, 3, T, H, W) -> (B, num_classes) logits; moved to `device`, put in train mode.
        num_classes: classes of the random labels.
        clips, frames, crop: batch shape (clips, 3, frames, crop, crop).
        device: 'cpu' or 'cuda[:k]'.
        precision: '32' or 'bf16-mixed' (autocast to bfloat16, as Lightning's bf16-mixed).
        channels_last: network and input in channels_last_3d, as VideoClassifier(channels_last=True).
        compile: torch.compile the network (compiled during the first, untimed, steps).
        seed: for the batch.
    """

    def __init__(self, network: nn.Module, *, num_classes: int, clips: int, frames: int, crop: int,
                 device: str, precision: str, channels_last: bool, compile: bool, seed: int = 0) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.bf16 = precision == "bf16-mixed"
        self.net = network.to(self.device).train()
        if channels_last:
            self.net.to(memory_format=torch.channels_last_3d)
        # lr small: the batch is noise, and a diverging step would change what is timed (NaN paths).
        self.opt = torch.optim.SGD(param_groups(self.net, weight_decay=1e-4), lr=1e-3, momentum=0.9,
                                   nesterov=True)
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(clips, 3, frames, crop, crop, generator=g)
        self.x = x.to(self.device).contiguous(memory_format=torch.channels_last_3d) if channels_last \
            else x.to(self.device)
        self.y = torch.randint(0, num_classes, (clips,), generator=g).to(self.device)
        self.fn = torch.compile(self.net) if compile else self.net
        self.last_loss: float | None = None

    def _step(self, fn) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = F.cross_entropy(fn(self.x), self.y)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)  # gradients freed: between steps only static memory stays
        return loss

    def static_bytes(self) -> int:
        """Parameters, buffers, optimizer state and the batch: what this model holds between steps."""
        state = [v for s in self.opt.state.values() for v in s.values() if torch.is_tensor(v)]
        return _nbytes(self.net.parameters()) + _nbytes(self.net.buffers()) + _nbytes(state) + \
            _nbytes([self.x, self.y])

    def timed(self) -> tuple[float, int | None]:
        """One step: (wall seconds, peak bytes on the GPU or None on CPU).

        GPU: synchronised before and after, so the time is the step's own. The peak is the step's
        transient (max_memory_allocated over what was allocated before it, other models' memory
        included there) plus this model's static bytes: what a process training this model alone
        would peak at, less the allocator's caching. Other models sharing the process (bench model
        interleaves norms) do not inflate it.
        """
        if self.cuda:
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        t0 = time.perf_counter()
        loss = self._step(self.fn)
        if self.cuda:
            torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - t0
        self.last_loss = float(loss.detach())  # after the clock: .item() would synchronise inside it
        peak = None
        if self.cuda:
            peak = torch.cuda.max_memory_allocated(self.device) - before + self.static_bytes()
        return dt, peak

    def count_flops(self) -> int:
        """FLOPs of one forward + backward (torch.utils.flop_counter: 2 x multiply-adds of convs and
        matmuls; norms, activations and the optimizer are not counted, and cost little next to the
        convolutions). Runs once, untimed, on the uncompiled network; the optimizer does not step."""
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                loss = F.cross_entropy(self.net(self.x), self.y)
            loss.backward()
        self.opt.zero_grad(set_to_none=True)
        return int(counter.get_total_flops())
