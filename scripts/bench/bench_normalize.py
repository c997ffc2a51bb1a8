"""uint8 channels_last_3d batch -> float network input: old (normalize to the standard layout, then
forward converts back to channels_last_3d) vs new (one pass, layout kept). CPU, 1 thread, median."""
import statistics, sys, time
import torch
from vidgn.data.transforms import normalize

torch.set_num_threads(1)
CL3D = torch.channels_last_3d
shape = tuple(int(v) for v in sys.argv[1].split(","))
u8 = torch.randint(0, 256, shape, dtype=torch.uint8).contiguous(memory_format=CL3D)
m = torch.tensor((0.45,) * 3).view(1, -1, 1, 1, 1)
s = torch.tensor((0.225,) * 3).view(1, -1, 1, 1, 1)
old = lambda: u8.float().div_(255.0).sub_(m).div_(s).contiguous().contiguous(memory_format=CL3D)
new = lambda: normalize(u8).contiguous(memory_format=CL3D)
torch.testing.assert_close(old(), new())
ts = {"old": [], "new": []}
for r in range(21):
    for k, f in (("old", old), ("new", new)):
        t0 = time.perf_counter(); f(); dt = time.perf_counter() - t0
        if r:
            ts[k].append(dt)
print(f"{shape}: " + ", ".join(f"{k} {statistics.median(v) * 1e3:.2f} ms (min {min(v) * 1e3:.2f})" for k, v in ts.items())
      + f"; old/new {statistics.median(ts['old']) / statistics.median(ts['new']):.2f}x")
