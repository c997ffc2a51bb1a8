"""Inflation of 2D torchvision ResNets (BN and GN): the I3D "boring video" check and the report."""
import logging
import pickle

import pytest
import torch
import torchvision
from torch import nn

from vidgn.models import I3DResNet, load_pretrained_2d
from vidgn.models.inflate import map_2d_key
from vidgn.tools.convert_2d_measure import random_resnet


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# float32 through ~50 layers: relative tolerance on the largest value of each output.
REL_TOL = 1e-4


def random_2d_resnet(arch: str, gn: bool, seed: int = 0) -> nn.Module:
    """Randomly initialised torchvision ResNet with non-trivial norm parameters and statistics."""
    return random_resnet(arch, gn=gn, seed=seed)


def features_2d(model: nn.Module, frame: torch.Tensor) -> torch.Tensor:
    trunk = nn.Sequential(*list(model.children())[:-1])  # everything up to avgpool
    return trunk(frame).flatten(1)  # (B, 2048)


def assert_rel_close(a: torch.Tensor, b: torch.Tensor) -> None:
    err = (a - b).abs().max().item()
    scale = b.abs().max().item()
    assert err <= REL_TOL * scale, f"max |diff| {err:.3g} > {REL_TOL} x max |ref| {scale:.3g}"


@pytest.mark.parametrize("arch,depth,norm_2d,norm_3d,train", [
    ("resnet50", 50, "bn", "bn", False),
    ("resnet50", 50, "gn", "gn", False),
    ("resnet50", 50, "gn", "gn", True),         # GN: train and eval are the same computation
    ("resnet50", 50, "bn", "frozen_bn", True),  # frozen BN in train mode = BN in eval mode
    ("resnet18", 18, "bn", "bn", False),        # basic blocks
])
def test_boring_video_matches_2d_network(tmp_path, arch, depth, norm_2d, norm_3d, train):
    net2d = random_2d_resnet(arch, gn=norm_2d == "gn")
    path = tmp_path / "r2d.pth"
    torch.save(net2d.state_dict(), path)
    # 'replicate' temporal padding keeps a static clip static through every layer, so the match is
    # exact up to float rounding (with zero padding the edge frames see fewer taps).
    net3d = I3DResNet(depth=depth, num_classes=1000, norm=norm_3d, pretrained_2d=str(path),
                      temporal_padding="replicate").train(train)
    torch.manual_seed(1)
    frame = torch.randn(2, 3, 64, 64)                         # (B, 3, H, W)
    clip = frame.unsqueeze(2).expand(-1, -1, 8, -1, -1)       # (B, 3, T, H, W), identical frames
    with torch.no_grad():
        feats = net3d.forward_features(clip)
        ref_feats = features_2d(net2d, frame)
        net3d.eval()
        logits = net3d(clip)
        ref_logits = net2d(frame)
    assert_rel_close(feats, ref_feats)
    assert_rel_close(logits, ref_logits)
    # Inflated kernels are the 2D kernel repeated over time and divided by t.
    w3, w2 = net3d.conv1.conv.weight, net2d.conv1.weight
    assert w3.shape[2] == 5
    torch.testing.assert_close(w3, w2.unsqueeze(2).expand_as(w3) / 5)


def test_report_bn_checkpoint_other_class_count(tmp_path, caplog):
    net2d = random_2d_resnet("resnet50", gn=False)
    path = tmp_path / "r50.pth"
    torch.save(net2d.state_dict(), path)
    with caplog.at_level(logging.INFO, logger="vidgn.models.i3d"):
        model = I3DResNet(depth=50, num_classes=400, pretrained_2d=str(path))
    # Another class count is the usual fine-tuning case: one line, not fc under missing and mismatched.
    (record,) = caplog.records
    assert record.levelno == logging.INFO and "\n" not in record.getMessage()
    assert ("inflated 10 conv kernels" in caplog.text
            and "fc: kept the initialisation (checkpoint 1000 classes, model 400)" in caplog.text)
    assert "missing" not in caplog.text and "mismatched" not in caplog.text
    report = load_pretrained_2d(model, path)
    assert report.fc_classes == (1000, 400) and report.problems() == []
    assert len(report.inflated) == 10  # conv1 + the 9 inflated bottleneck conv_a (3+2+3+1)
    assert report.missing == ["fc.weight", "fc.bias"]  # fc skipped: 1000 vs 400 classes
    assert report.mismatched == ["fc.weight: (1000, 2048) -> (400, 2048)", "fc.bias: (1000,) -> (400,)"]
    assert report.unexpected == []
    assert len(report.copied) + len(report.inflated) == len(net2d.state_dict()) - 2
    # fc keeps its own init; norms (incl. statistics) are the checkpoint's.
    assert model.fc.weight.std() < 0.02
    torch.testing.assert_close(model.res4.res_blocks[2].branch2.norm_b.running_var,
                               net2d.layer3[2].bn2.running_var)


def test_report_between_bn_and_gn(tmp_path):
    bn_path, gn_path = tmp_path / "bn.pth", tmp_path / "gn.pth"
    torch.save(random_2d_resnet("resnet18", gn=False).state_dict(), bn_path)
    torch.save(random_2d_resnet("resnet18", gn=True).state_dict(), gn_path)
    gn_model = I3DResNet(depth=18, num_classes=1000, norm="gn")
    report = load_pretrained_2d(gn_model, bn_path)  # BN statistics have no GN counterpart
    assert report.unexpected and all(k.endswith(("running_mean", "running_var", "num_batches_tracked"))
                                     for k in report.unexpected)
    assert report.missing == []
    bn_model = I3DResNet(depth=18, num_classes=1000, norm="bn")
    report = load_pretrained_2d(bn_model, gn_path)  # the GN checkpoint has no statistics
    assert report.unexpected == [] and report.missing
    assert all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in report.missing)


def test_a_bn_checkpoint_in_a_gn_model_warns(tmp_path, caplog):
    """BN statistics have no place in GN: the load is partial and must be loud, not an INFO line."""
    path = tmp_path / "bn.pth"
    torch.save(random_2d_resnet("resnet18", gn=False).state_dict(), path)
    with caplog.at_level(logging.INFO, logger="vidgn.models.i3d"):
        I3DResNet(depth=18, num_classes=1000, norm="gn", pretrained_2d=str(path))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "norm='gn'" in record.getMessage() and "unexpected (60)" in record.getMessage()
    assert "bn1.running_mean" in record.getMessage()


def deflated_2d_checkpoint(path, **i3d_kwargs) -> None:
    """A torchvision-layout 2D state dict that fits I3DResNet(**i3d_kwargs) (e.g. the narrow
    synthetic nets, for which torchvision has no ResNet): each kernel summed over time."""
    model = I3DResNet(**i3d_kwargs)
    state_3d = model.state_dict()
    keys_2d = torchvision.models.resnet18(weights=None).state_dict()
    state_2d = {}
    for key in keys_2d:
        w = state_3d[map_2d_key(key)]
        state_2d[key] = w.sum(2) if w.ndim == 5 else w
    torch.save(state_2d, path)


def test_a_fit_shows_the_inflation_summary(tmp_path, synthetic_dataset, capsys):
    """Unconfigured logging (a plain `vidgn fit`) shows warnings only; the summary is INFO and must
    still reach the console, without lowering Lightning's level."""
    from test_training import run_args
    from vidgn.cli import main

    path = tmp_path / "r18_narrow.pth"
    deflated_2d_checkpoint(path, depth=18, base_channels=16, num_classes=1000, norm="bn")
    root, vidgn_log = logging.getLogger(), logging.getLogger("vidgn")
    saved, level, lightning_level = root.handlers[:], vidgn_log.level, logging.getLogger("lightning.pytorch").level
    root.handlers.clear()  # as outside pytest: nobody configured logging
    try:
        status = main(["fit", *run_args(synthetic_dataset, tmp_path / "run", epochs=1, norm="bn"),
                       "--model.network.init_args.pretrained_2d", str(path),
                       "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "0"])
    finally:
        root.handlers[:] = saved
        for handler in vidgn_log.handlers[:]:
            vidgn_log.removeHandler(handler)
        vidgn_log.setLevel(level)
    assert status == 0
    err = capsys.readouterr().err
    assert f"I3DResNet: pretrained_2d {path}: inflated" in err
    assert "fc: kept the initialisation (checkpoint 1000 classes, model 4)" in err
    assert logging.getLogger("lightning.pytorch").level == lightning_level


class _NotATensor:
    pass


def test_checkpoint_wrappers_and_safety(tmp_path):
    sd = random_2d_resnet("resnet18", gn=False).state_dict()
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "wrapped.pth")
    model = I3DResNet(depth=18, num_classes=1000)
    report = load_pretrained_2d(model, tmp_path / "wrapped.pth")
    assert report.missing == [] and report.unexpected == []
    torch.testing.assert_close(model.fc.weight, sd["fc.weight"])
    # weights_only=True: a checkpoint that pickles arbitrary objects is refused.
    torch.save({"state_dict": sd, "extra": _NotATensor()}, tmp_path / "unsafe.pth")
    with pytest.raises(pickle.UnpicklingError):
        load_pretrained_2d(model, tmp_path / "unsafe.pth")
    with pytest.raises(FileNotFoundError, match="no such file"):
        I3DResNet(depth=18, pretrained_2d=str(tmp_path / "missing.pth"))


def test_key_mapping():
    assert map_2d_key("conv1.weight") == "conv1.conv.weight"
    assert map_2d_key("bn1.running_var") == "conv1.norm.running_var"
    assert map_2d_key("layer3.5.conv1.weight") == "res4.res_blocks.5.branch2.conv_a.weight"
    assert map_2d_key("layer1.0.bn3.bias") == "res2.res_blocks.0.branch2.norm_c.bias"
    assert map_2d_key("layer4.0.downsample.0.weight") == "res5.res_blocks.0.branch1_conv.weight"
    assert map_2d_key("layer4.0.downsample.1.weight") == "res5.res_blocks.0.branch1_norm.weight"
    assert map_2d_key("avgpool.whatever") is None
