"""GPU checks of the real Table 8 networks (skipped without CUDA; run with `-m gpu`).

One training step of I3D ResNet-50 at the paper's clip shapes and clips per GPU, bf16 autocast and
channels_last_3d as in configs/kinetics: the step must run (no out-of-memory) and stay finite;
the peak memory is printed (`-s`) for docs/benchmarks.md.
"""
import pytest
import torch
import torch.nn.functional as F

from vidgn.models import I3DResNet

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("frames,clips", [(32, 8), (32, 4), (64, 4)], ids=["32f_8c", "32f_4c", "64f_4c"])
def test_r50_training_step_bf16(norm, frames, clips):
    torch.manual_seed(0)
    net = I3DResNet(depth=50, num_classes=400, norm=norm).cuda().to(memory_format=torch.channels_last_3d)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(clips, 3, frames, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last_3d)
    y = torch.randint(0, 400, (clips,), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)
    peak_gib = torch.cuda.max_memory_allocated() / 2**30
    print(f"{norm} {frames}f x {clips} clips: peak {peak_gib:.1f} GiB")
