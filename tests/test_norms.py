"""Norm factory: every name builds the right layer, sub-batch BN = separate BN passes, frozen BN."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vidgn.models import I3DResNet, is_norm, make_norm
from vidgn.models.norms import FrozenBatchNorm3d, SubBatchNorm3d, canonical_norm_name
from vidgn.training.optim import param_groups


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name,expected", [
    ("bn", nn.BatchNorm3d), ("BatchNorm", nn.BatchNorm3d), ("gn", nn.GroupNorm),
    ("group_norm", nn.GroupNorm), ("ln", nn.GroupNorm), ("layer-norm", nn.GroupNorm),
    ("in", nn.GroupNorm), ("instance_norm", nn.GroupNorm), ("sync_bn", nn.SyncBatchNorm),
    ("SyncBN", nn.SyncBatchNorm), ("frozen_bn", FrozenBatchNorm3d),
])
def test_make_norm_names(name, expected):
    layer = make_norm(name, groups=4)(16)
    assert type(layer) is expected
    assert is_norm(layer)


def test_unknown_norm_and_misplaced_options():
    with pytest.raises(ValueError, match="unknown norm 'batchnorm2d'"):
        make_norm("batchnorm2d")
    with pytest.raises(ValueError, match="bn_clips"):
        make_norm("gn", bn_clips=4)
    with pytest.raises(ValueError, match="sync_bn_group_size"):
        I3DResNet(depth=18, norm="bn", sync_bn_group_size=2)
    assert canonical_norm_name("Frozen-BN") == "frozen_bn"
    assert not is_norm(nn.Conv3d(2, 2, 1)) and not is_norm(nn.Linear(2, 2))


def test_group_counts_and_divisibility_errors():
    assert make_norm("gn", groups=4)(16).num_groups == 4
    assert make_norm("gn", channels_per_group=8)(32).num_groups == 4
    assert make_norm("ln")(24).num_groups == 1
    assert make_norm("in")(24).num_groups == 24
    with pytest.raises(ValueError, match=r"groups=8 does not divide 12 channels"):
        make_norm("gn", groups=8)(12)
    with pytest.raises(ValueError, match=r"channels_per_group=5 does not divide 12"):
        make_norm("gn", channels_per_group=5)(12)


def test_gn_ln_in_normalise_over_the_right_axes():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 3, 4, 5) * 3 + 1  # (B, C, T, H, W)
    # GN: each group of C/G channels over (C/G, T, H, W) jointly.
    xg = x.view(2, 4, 2 * 3 * 4 * 5)
    ref = ((xg - xg.mean(-1, keepdim=True)) / torch.sqrt(xg.var(-1, unbiased=False, keepdim=True) + 1e-5)).view_as(x)
    torch.testing.assert_close(make_norm("gn", groups=4)(8)(x), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(make_norm("ln")(8)(x), F.layer_norm(x, x.shape[1:]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(make_norm("in")(8)(x), F.instance_norm(x), atol=1e-5, rtol=1e-5)


def _separate_bn(x, weight, bias, groups):
    """Reference: group g (clips g, g+G, ...) through its own fresh BatchNorm3d."""
    y = torch.empty_like(x)
    bns = []
    for g in range(groups):
        bn = nn.BatchNorm3d(x.shape[1])
        with torch.no_grad():
            bn.weight.copy_(weight)
            bn.bias.copy_(bias)
        y[g::groups] = bn(x[g::groups])
        bns.append(bn)
    return y, bns


def test_sub_batch_norm_equals_separate_bn_passes():
    torch.manual_seed(0)
    B, C, k = 6, 4, 2  # 3 groups of 2 clips
    x = torch.randn(B, C, 2, 3, 3) * 2 + torch.arange(B).view(B, 1, 1, 1, 1)  # groups differ in mean
    w, b = torch.rand(C) + 0.5, torch.randn(C)
    r = torch.randn(B, C, 2, 3, 3)  # random upstream gradient

    sub = make_norm("bn", bn_clips=k)(C)
    assert isinstance(sub, SubBatchNorm3d)
    with torch.no_grad():
        sub.weight.copy_(w)
        sub.bias.copy_(b)
    x1 = x.clone().requires_grad_(True)
    y = sub(x1)
    (y * r).sum().backward()

    x2 = x.clone().requires_grad_(True)
    y_ref, bns = _separate_bn(x2, w, b, groups=B // k)
    (y_ref * r).sum().backward()

    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sub.weight.grad, sum(bn.weight.grad for bn in bns), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(sub.bias.grad, sum(bn.bias.grad for bn in bns), atol=1e-4, rtol=1e-5)
    # Running mean is linear in the batch means: the average of the separate layers' buffers.
    torch.testing.assert_close(sub.running_mean, torch.stack([bn.running_mean for bn in bns]).mean(0))
    # Whole-batch BN would give different outputs (the groups have different means).
    assert not torch.allclose(y, F.batch_norm(x, None, None, w, b, True), atol=1e-3)


def test_sub_batch_norm_merges_running_stats_over_the_whole_batch():
    torch.manual_seed(1)
    x = torch.randn(8, 3, 2, 4, 4) + torch.arange(8).view(8, 1, 1, 1, 1)
    sub = SubBatchNorm3d(3, bn_clips=2, momentum=1.0)
    sub(x)
    # Population statistics of the union of the groups (law of total variance), as plain BN stores them.
    torch.testing.assert_close(sub.running_mean, x.mean(dim=(0, 2, 3, 4)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sub.running_var, x.var(dim=(0, 2, 3, 4), unbiased=True), atol=1e-4, rtol=1e-5)
    # Evaluation is plain BN on those buffers.
    sub.eval()
    ref = nn.BatchNorm3d(3).eval()
    ref.load_state_dict(sub.state_dict())
    torch.testing.assert_close(sub(x), ref(x))


def test_sub_batch_norm_rejects_indivisible_batch():
    sub = SubBatchNorm3d(3, bn_clips=4)
    with pytest.raises(ValueError, match="not a multiple of bn_clips=4"):
        sub(torch.randn(6, 3, 2, 2, 2))


def test_frozen_bn_uses_population_statistics_in_train_mode():
    bn = make_norm("frozen_bn")(4)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, -1.0, 0.5, 0.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25, 2.0]))
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 1.0]))
    bn.train()
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    x = torch.randn(2, 4, 2, 3, 3, requires_grad=True)
    y = bn(x)
    ref = F.batch_norm(x, before["running_mean"], before["running_var"], before["weight"], before["bias"], False)
    torch.testing.assert_close(y, ref)
    y.sum().backward()
    assert x.grad is not None and bn.weight.grad is None
    assert not bn.weight.requires_grad and not bn.bias.requires_grad
    for k, v in bn.state_dict().items():
        if k != "num_batches_tracked":
            torch.testing.assert_close(v, before[k])


def test_sync_bn_single_process_is_batch_norm():
    sync = make_norm("sync_bn")(4)
    assert isinstance(sync, nn.SyncBatchNorm) and sync.process_group is None
    bn = nn.BatchNorm3d(4)
    x = torch.randn(3, 4, 2, 3, 3)
    torch.testing.assert_close(sync(x), bn(x))


@pytest.mark.parametrize("norm", ["bn", "gn", "frozen_bn"])
def test_param_groups_keep_decay_off_norms_and_biases(norm):
    model = I3DResNet(depth=18, num_classes=5, norm=norm, groups=4, base_channels=8)
    groups = param_groups(model, weight_decay=1e-4)
    by_name = {g["name"]: g for g in groups}
    decay_ids = {id(p) for p in by_name["decay"]["params"]}
    no_decay_ids = {id(p) for p in by_name["no_decay"]["params"]}
    assert by_name["decay"]["weight_decay"] == 1e-4 and by_name["no_decay"]["weight_decay"] == 0.0
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad:  # frozen_bn's affine: not optimised at all
                assert id(p) not in decay_ids | no_decay_ids
            elif is_norm(module) or pname == "bias":
                assert id(p) in no_decay_ids, (module, pname)
            else:
                assert isinstance(module, (nn.Conv3d, nn.Linear)) and id(p) in decay_ids
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups for p in g["params"]) == trainable
    torch.optim.SGD(groups, lr=0.1, momentum=0.9)  # a valid optimizer spec
    (single,) = param_groups(model, weight_decay=1e-4, norm_bias_decay=True)
    assert sum(p.numel() for p in single["params"]) == trainable
