"""Norm layers alone, fwd+bwd on a channels_last_3d activation (CPU, 1 thread): SubBatchNorm3d old
(reshape: copy to standard layout, native BN, standard-layout output) vs new (layout kept), and
GroupNorm native CPU kernel vs the layout-keeping eager path. Interleaved, median."""
import statistics, sys, time
import torch
import vidgn.models.norms as norms
from vidgn.models.group_norm import GroupNorm3d

torch.set_num_threads(1)
CL3D = torch.channels_last_3d
shape = tuple(int(v) for v in (sys.argv[1] if len(sys.argv) > 1 else "8,64,4,28,28").split(","))
x = torch.randn(shape).contiguous(memory_format=CL3D).requires_grad_(True)
dy = torch.randn(shape).contiguous(memory_format=CL3D)
C = shape[1]
real = norms.is_channels_last_3d
layers = {
    "bn (native, CL)": (torch.nn.BatchNorm3d(C), real),
    "sub_bn k=2 old": (norms.SubBatchNorm3d(C, bn_clips=2), lambda t: False),
    "sub_bn k=2 new": (norms.SubBatchNorm3d(C, bn_clips=2), real),
    "gn native": (GroupNorm3d(32 if C % 32 == 0 else 8, C, impl="native"), real),
    "gn channels_last": (GroupNorm3d(32 if C % 32 == 0 else 8, C, impl="channels_last"), real),
}
times = {k: [] for k in layers}
for r in range(16):
    for k, (m, pred) in layers.items():
        norms.is_channels_last_3d = pred
        t0 = time.process_time()
        for _ in range(3):
            y = m(x)
            y.backward(dy)
        if r:
            times[k].append((time.process_time() - t0) / 3)
print(f"shape {shape}, torch {torch.__version__}, 1 thread, 15 rounds x 3, median CPU ms fwd+bwd")
for k, ts in times.items():
    print(f"  {k:18s} {statistics.median(ts) * 1000:7.2f} ms (min {min(ts) * 1000:.2f})")
