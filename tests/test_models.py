"""I3DResNet: topology (stage shapes, kernels, parameter count), every norm x depth, zero init,
sub-batch BN vs a real 2-process DDP run, channels_last_3d and bf16 autocast."""
import logging
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from torch import nn

from vidgn.models import I3DResNet, SubBatchNorm3d
from vidgn.models.flops import count_flops


pytestmark = pytest.mark.usefixtures("one_torch_thread")

NORMS = [("bn", {}), ("gn", {"groups": 4}), ("gn", {"channels_per_group": 2}), ("ln", {}), ("in", {}),
         ("sync_bn", {}), ("frozen_bn", {}), ("bn", {"bn_clips": 2})]
IDS = ["bn", "gn", "gn_cpg", "ln", "in", "sync_bn", "frozen_bn", "bn_clips"]


def tiny(depth=18, norm="bn", **kw):
    kw = {"num_classes": 5, "base_channels": 8, **kw}
    return I3DResNet(depth=depth, norm=norm, **kw)


@pytest.fixture(autouse=True)
def _quiet_frozen_bn_warning(caplog):
    caplog.set_level(logging.ERROR, logger="vidgn.models.i3d")


@pytest.mark.parametrize("norm,kw", NORMS, ids=IDS)
@pytest.mark.parametrize("depth", [18, 50])
def test_forward_backward_every_norm(depth, norm, kw):
    torch.manual_seed(0)
    model = tiny(depth, norm, zero_init_last_norm=False, **kw).train()
    x = torch.randn(4, 3, 8, 32, 32)
    logits = model(x)
    assert logits.shape == (4, 5)
    loss = F.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.conv1.conv.weight.grad.abs().sum() > 0  # gradient reaches the stem


@pytest.mark.parametrize("depth", [34, 101, 152])
@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_forward_backward_deeper(depth, norm):
    model = tiny(depth, norm, groups=4, base_channels=4, zero_init_last_norm=False)
    logits = model(torch.randn(2, 3, 8, 32, 32))
    logits.sum().backward()
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# Non-local I3D ResNet-50 (GN paper, Table 8): (T, H, W) of each stage output.
SPEC_SHAPES = {
    32: {"conv1": (16, 112, 112), "res2": (8, 56, 56), "res3": (4, 28, 28), "res4": (4, 14, 14), "res5": (4, 7, 7)},
    64: {"conv1": (32, 112, 112), "res2": (16, 56, 56), "res3": (8, 28, 28), "res4": (8, 14, 14), "res5": (8, 7, 7)},
}


@pytest.mark.parametrize("frames", [32, 64])
@pytest.mark.parametrize("pool1_kernel", [(2, 3, 3), (3, 3, 3)])
def test_r50_stage_shapes_at_224_on_meta(frames, pool1_kernel):
    with torch.device("meta"):
        model = I3DResNet(depth=50, pool1_kernel=pool1_kernel)
        out = model.forward_stages(torch.empty(1, 3, frames, 224, 224))
    assert {k: tuple(v.shape[2:]) for k, v in out.items()} == SPEC_SHAPES[frames]
    assert [out[k].shape[1] for k in out] == [64, 256, 512, 1024, 2048]


@pytest.mark.parametrize("frames", [32, 64])
def test_stage_shapes_real_small_input(frames):
    model = I3DResNet(depth=50, num_classes=3, base_channels=4, norm="gn", groups=2).eval()
    with torch.no_grad():
        out = model.forward_stages(torch.randn(1, 3, frames, 64, 64))
    t = frames
    assert {k: tuple(v.shape[2:]) for k, v in out.items()} == {
        "conv1": (t // 2, 32, 32), "res2": (t // 4, 16, 16), "res3": (t // 8, 8, 8),
        "res4": (t // 8, 4, 4), "res5": (t // 8, 2, 2)}
    assert model.forward_features(torch.randn(2, 3, frames, 64, 64)).shape == (2, 4 * 8 * 4)


def test_any_crop_size():
    model = tiny(norm="gn", groups=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 72, 96)).shape == (1, 5)  # not a multiple of 32
    with torch.device("meta"):  # fully convolutional testing at 256 (res5 is 8x8)
        r50 = I3DResNet()
        assert tuple(r50.forward_stages(torch.empty(1, 3, 32, 256, 256))["res5"].shape) == (1, 2048, 4, 8, 8)
        assert r50(torch.empty(1, 3, 32, 256, 256)).shape == (1, 400)


def test_r50_kernel_table():
    with torch.device("meta"):
        model = I3DResNet(depth=50)
    assert model.conv1.conv.kernel_size == (5, 7, 7) and model.conv1.conv.stride == (2, 2, 2)
    # Non-local I3D ResNet-50: 3x1x1 on the first conv of these blocks, 1x1x1 elsewhere.
    expected = {"res2": [1, 1, 1], "res3": [1, 0, 1, 0], "res4": [1, 0, 1, 0, 1, 0], "res5": [0, 1, 0]}
    for stage, pattern in expected.items():
        blocks = getattr(model, stage).res_blocks
        assert [b.branch2.conv_a.kernel_size for b in blocks] == [(3, 1, 1) if i else (1, 1, 1) for i in pattern]
        assert all(b.branch2.conv_b.kernel_size == (1, 3, 3) for b in blocks)


def test_r50_parameter_count():
    """28.0M: torchvision's 2D ResNet-50 (400 classes) plus the extra temporal taps of inflation."""
    import torchvision  # here, not at module level: the DDP workers re-import this file
    with torch.device("meta"):
        params = {norm: sum(p.numel() for p in I3DResNet(depth=50, num_classes=400, norm=norm).parameters())
                  for norm in ("bn", "gn")}
        r50_2d = sum(p.numel() for p in torchvision.models.resnet50(num_classes=400).parameters())
    # conv1 7x7 -> 5x7x7, and every inflated 1x1 (in -> width) conv -> 3x1x1, from the I3D table.
    extra = (5 - 1) * 3 * 64 * 7 * 7
    inflated_1x1 = [(64, 64), (256, 64), (256, 64),             # res2 [1,1,1]
                    (256, 128), (512, 128),                     # res3 [1,0,1,0]
                    (512, 256), (1024, 256), (1024, 256),       # res4 [1,0,1,0,1,0]
                    (2048, 512)]                                # res5 [0,1,0]
    extra += sum((3 - 1) * cin * cout for cin, cout in inflated_1x1)
    assert params["bn"] == params["gn"] == r50_2d + extra
    assert 27.9e6 < params["bn"] < 28.1e6


def test_count_flops_matches_conv_arithmetic():
    model = I3DResNet(depth=18, num_classes=5, base_channels=4, norm="gn", groups=2)
    flops = count_flops(model, (1, 3, 8, 32, 32))
    # conv1 alone: 2 * (out positions) * (kernel volume * C_in) * C_out.
    conv1 = 2 * (4 * 16 * 16) * (5 * 7 * 7 * 3) * 4
    assert conv1 < flops < 40 * conv1
    assert model.training  # mode restored
    assert count_flops(model, (2, 3, 8, 32, 32)) == 2 * flops
    with torch.device("meta"):  # what the docs' full-size numbers use: shapes only, same count
        meta_model = I3DResNet(depth=18, num_classes=5, base_channels=4, norm="gn", groups=2)
    assert count_flops(meta_model, (1, 3, 8, 32, 32)) == flops


@pytest.mark.parametrize("norm,kw", NORMS, ids=IDS)
def test_zero_init_last_norm_every_norm(norm, kw):
    model = tiny(50, norm, base_channels=8, **kw)
    last = model.last_norms()
    assert len(last) == 16
    assert all(m.weight.abs().sum() == 0 for m in last)
    if kw.get("bn_clips"):
        assert all(isinstance(m, SubBatchNorm3d) for m in last)
    others = [m for m in model.modules() if hasattr(m, "weight") and isinstance(
        m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and all(m is not l for l in last)]
    assert others and all(torch.all(m.weight == 1) for m in others)  # stem and downsample norms start at 1
    # Same norm type everywhere: stem, blocks, downsample branches.
    assert len({type(m) for m in last + others}) == 1
    assert type(model.conv1.norm) is type(model.res3.res_blocks[0].branch1_norm) is type(last[0])
    # Blocks start as identity: in eval mode each block is ReLU(shortcut).
    if norm != "frozen_bn":
        block = model.res2.res_blocks[1].eval()
        x = torch.randn(1, 32, 2, 4, 4)
        torch.testing.assert_close(block(x), F.relu(x))


def test_too_short_clip_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 8 frames"):
        tiny()(torch.randn(1, 3, 4, 32, 32))


def test_gn_group_error_names_the_layer():
    with pytest.raises(ValueError, match=r"layer conv1 \(16 channels\).*groups=32"):
        I3DResNet(depth=18, base_channels=16, norm="gn")
    I3DResNet(depth=18, base_channels=16, norm="gn", channels_per_group=4)  # the fix it suggests


@pytest.mark.parametrize("norm,kw", [("bn", {}), ("gn", {"groups": 4}), ("bn", {"bn_clips": 2})],
                         ids=["bn", "gn", "bn_clips"])
@pytest.mark.parametrize("train", [True, False])
def test_channels_last_3d_matches_contiguous(norm, kw, train):
    torch.manual_seed(0)
    model = tiny(norm=norm, zero_init_last_norm=False, dropout=0.0, **kw).train(train)
    x = torch.randn(4, 3, 8, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model_cl = model.to(memory_format=torch.channels_last_3d)
        out = model_cl(x.to(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("norm,kw", [("bn", {}), ("gn", {"groups": 4}), ("bn", {"bn_clips": 2}),
                                     ("frozen_bn", {})], ids=["bn", "gn", "bn_clips", "frozen_bn"])
def test_bf16_autocast_forward_cpu(norm, kw):
    torch.manual_seed(0)
    model = tiny(norm=norm, zero_init_last_norm=False, dropout=0.0, **kw)
    with torch.no_grad():
        model.fc.weight.normal_()  # visible logits
    x = torch.randn(4, 3, 8, 32, 32)
    # Training step under autocast: finite logits and gradients.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    F.cross_entropy(out.float(), torch.tensor([0, 1, 2, 3])).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    # Evaluation: bf16 logits within bf16 rounding of the fp32 ones. (Not compared in train mode:
    # BN over the 4 values per channel of this tiny res5 amplifies rounding arbitrarily.)
    model.eval()
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).norm() < 0.03 * ref.norm()


# ---- sub-batch BN == 2 processes x bn_clips clips with DDP (gloo, CPU) ------------------------------

K = 2  # clips per process = bn_clips


def _ddp_worker(rank, world, init_file, data_file, out_dir):
    torch.set_num_threads(1)
    # Built before the process group exists (as under Lightning): groups must come on first forward.
    lazy_sync = tiny(norm="sync_bn", sync_bn_group_size=1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        data = torch.load(data_file)
        model = tiny(norm="bn", dropout=0.0, zero_init_last_norm=False).double()
        model.load_state_dict(data["state"])
        ddp = nn.parallel.DistributedDataParallel(model)
        x, y = data["x"][rank::world], data["y"][rank::world]  # SubBN's group `rank`: clips rank, rank+world...
        logits = ddp(x)
        F.cross_entropy(logits, y).backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        # sync_bn_group_size: subgroups of one process each, made by the training module's setup
        # (after DDP start-up), never by the network itself, not even in forward (eval, since
        # SyncBatchNorm refuses CPU tensors in training once a process group exists).
        from vidgn.training.module import VideoClassifier

        VideoClassifier(network=lazy_sync).setup("fit")
        left_alone = tiny(norm="sync_bn", sync_bn_group_size=1)
        with torch.no_grad():
            left_alone.eval()(x.float())
        sizes = [dist.get_world_size(m.process_group) for net in (lazy_sync, left_alone)
                 for m in net.modules() if isinstance(m, nn.SyncBatchNorm)]
        torch.save({"logits": logits.detach(), "grads": grads, "sync_sizes": sizes,
                    "running_mean": model.conv1.norm.running_mean.clone()}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_bn_clips_equals_two_process_ddp(tmp_path):
    torch.manual_seed(0)
    world = 2
    # float64: BN over 2 clips is ill-conditioned enough that float32 summation order shows (~1e-4).
    ref_model = tiny(norm="bn", dropout=0.0, zero_init_last_norm=False).double()
    x = torch.randn(world * K, 3, 8, 32, 32, dtype=torch.float64) + torch.arange(world * K).view(-1, 1, 1, 1, 1)
    y = torch.tensor([0, 1, 2, 3])
    torch.save({"state": ref_model.state_dict(), "x": x, "y": y}, tmp_path / "data.pt")
    mp.spawn(_ddp_worker, args=(world, str(tmp_path / "store"), str(tmp_path / "data.pt"), str(tmp_path)),
             nprocs=world, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]

    model = tiny(norm="bn", bn_clips=K, dropout=0.0, zero_init_last_norm=False).double()
    model.load_state_dict(ref_model.state_dict())
    logits = model(x)
    F.cross_entropy(logits, y).backward()

    for r in range(world):
        torch.testing.assert_close(logits[r::world], ranks[r]["logits"], atol=1e-9, rtol=1e-9)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ranks[0]["grads"][name], atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(model.conv1.norm.running_mean,
                               (ranks[0]["running_mean"] + ranks[1]["running_mean"]) / 2)
    # Plain BN over the whole batch of 4 is a different computation (the check can fail).
    assert not torch.allclose(ref_model(x), logits, atol=1e-3)
    # Every SyncBatchNorm of the set-up net syncs within its 1-process group; the other one, which
    # only ran forward, still syncs over both processes.
    n_sync = sum(isinstance(m, nn.SyncBatchNorm) for m in tiny(norm="sync_bn").modules())
    for r in range(world):
        assert ranks[r]["sync_sizes"] == [1] * n_sync + [world] * n_sync
