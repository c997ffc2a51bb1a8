"""CPU train-step timing: layout round trips (old normalize + forward) and old vs new SubBatchNorm3d.

old: normalize = float().div_().sub_().div_().contiguous() (to the standard layout), forward converts
     back to channels_last_3d, SubBatchNorm3d reshapes (a copy to the standard layout under CL).
new: normalize = one addcmul keeping channels_last_3d, forward is a no-op, SubBatchNorm3d keeps CL.
Interleaved rounds, median per variant; one torch thread.
"""
import argparse, statistics, time, sys
import torch, torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
import vidgn.models.norms as norms
from vidgn.data.transforms import normalize
from vidgn.models import I3DResNet

CL3D = torch.channels_last_3d


def old_normalize(video, mean=(0.45,) * 3, std=(0.225,) * 3):
    shape = (1, -1, 1, 1, 1)
    m = torch.tensor(mean, dtype=torch.float32).view(shape)
    s = torch.tensor(std, dtype=torch.float32).view(shape)
    return video.float().div_(255.0).sub_(m).div_(s).contiguous()


def make(norm, kw, args):
    torch.manual_seed(0)
    net = I3DResNet(depth=18, num_classes=10, norm=norm, base_channels=args.base, **kw).to(memory_format=CL3D)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    return net, opt


def step(net, opt, u8, labels, old):
    if old:
        x = old_normalize(u8).contiguous(memory_format=CL3D)  # normalize -> standard, forward -> CL
    else:
        x = normalize(u8).contiguous(memory_format=CL3D)  # a no-op: already CL
    loss = F.cross_entropy(net(x), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


class CopyBytes(TorchDispatchMode):
    """Bytes written by 5D layout copies (copy_/clone/_to_copy/contiguous) during a step."""

    def __init__(self):
        super().__init__()
        self.n, self.bytes = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ in ("copy_", "clone", "_to_copy", "contiguous") and \
                isinstance(args[0], torch.Tensor) and args[0].dim() == 5:
            self.n += 1
            self.bytes += args[0].numel() * (out.element_size() if isinstance(out, torch.Tensor) else 4)
        return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--base", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (args.clips, 3, args.frames, args.size, args.size), dtype=torch.uint8,
                       generator=g).contiguous(memory_format=CL3D)  # as collate_clips hands it over
    labels = torch.randint(0, 10, (args.clips,), generator=g)
    variants = {}
    for norm, kw, label in [("bn", {}, "bn"), ("bn", {"bn_clips": 2}, "bn_clips2"), ("gn", {"groups": 8}, "gn"),
                            ("gn_cl", {"groups": 8}, "gn_cl")]:
        for old in (True, False):
            if label == "gn_cl" and old:
                continue
            variants[(label, "old" if old else "new")] = (make(norm, kw, args), old)
    real_is_cl = norms.is_channels_last_3d
    times = {k: [] for k in variants}
    copies = {}
    for r in range(args.rounds + 1):  # round 0 warms up
        for key, ((net, opt), old) in variants.items():
            norms.is_channels_last_3d = (lambda x: False) if old else real_is_cl  # old SubBN: reshape copy
            if r == 1:  # a steady-state step (the first one also clones the momentum buffers)
                with CopyBytes() as cb:
                    step(net, opt, u8, labels, old)
                copies[key] = (cb.n, cb.bytes)
            t0 = time.process_time()  # CPU time of this (1-thread) process: less hit by other load
            for _ in range(args.steps):
                step(net, opt, u8, labels, old)
            if r:
                times[key].append((time.process_time() - t0) / args.steps)
    norms.is_channels_last_3d = real_is_cl
    print(f"torch {torch.__version__}, {args.clips}x3x{args.frames}x{args.size}x{args.size}, R18 base {args.base}, "
          f"{args.threads} thread(s), {args.rounds} rounds x {args.steps} steps, median CPU ms/step (min-max), "
          "5D layout copies per step (count, MB)")
    for (label, which), ts in times.items():
        base = statistics.median(times[(label if label != "gn_cl" else "gn", "old")])
        med = statistics.median(ts)
        print(f"  {label:10s} {which}: {med * 1000:8.1f} ms  ({min(ts) * 1000:.1f}-{max(ts) * 1000:.1f})  "
              f"vs old {base / med:.3f}x   copies {copies[(label, which)][0]:3d}, "
              f"{copies[(label, which)][1] / 2**20:7.1f} MB")


if __name__ == "__main__":
    main()
