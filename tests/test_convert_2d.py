"""`vidgn convert-2d`: round trips through Detectron's, timm's and torchvision's formats, the input
convention folded into conv1, inflation of the result, and refused inputs.

Each round trip starts from a randomly initialised torchvision ResNet-50 taken to be the source's
network (it expects the source's preprocessing), writes it in the source's format, converts it,
and compares the converted network on vidgn's preprocessing of an image with the source network on
the source's own preprocessing of the same image.
"""
import argparse
import contextlib
import datetime
import inspect
import io
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from vidgn.cli import main
from vidgn.data.transforms import normalize
from vidgn.models import I3DResNet
from vidgn.models.convert import DETECTRON, VIDGN_DEFAULT, ConvertError, read_state_file, torchvision_to_detectron
from vidgn.models.convert import pipeline
from vidgn.models.convert.file_kinds import PICKLE, SAFETENSORS, TORCH_LEGACY, TORCH_ZIP, file_kind, read_head
from vidgn.models.convert.state_files import read_safetensors
from vidgn.tools.convert_2d_measure import random_resnet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# float32 through ~50 layers: relative tolerance on the largest logit (test_inflate.py's, measured
# ~1e-6 here). Used only where the conversion is exact in exact arithmetic.
REL_TOL = 1e-4
SIZE = 64
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision and timm


def load_converted(path, *, gn: bool) -> nn.Module:
    kw = {"norm_layer": lambda c: nn.GroupNorm(32, c)} if gn else {}
    model = torchvision.models.resnet50(weights=None, **kw)
    model.load_state_dict(torch.load(path, weights_only=True), strict=True)
    return model.eval()


def smooth_image(seed: int) -> np.ndarray:
    """uint8 RGB (H, W, 3): random 8x8 colours upsampled, a stand-in for natural image statistics."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 8, 8, generator=g) * 255
    img = F.interpolate(low, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return img[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def prep_detectron(img: np.ndarray, means=DETECTRON.mean) -> torch.Tensor:
    """Detectron: BGR, 0-255, minus PIXEL_MEANS (in BGR order), no std."""
    bgr = torch.from_numpy(img[:, :, ::-1].copy()).float()
    return (bgr - torch.tensor(means)).permute(2, 0, 1).unsqueeze(0)


def prep_imagenet(img: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    x = torch.from_numpy(img).float().permute(2, 0, 1) / 255
    return ((x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)).unsqueeze(0)


def prep_vidgn(img: np.ndarray, mean=VIDGN_DEFAULT.mean) -> torch.Tensor:
    """vidgn's own normalisation (the data pipeline's function), on a 1-frame clip."""
    clip = torch.from_numpy(img).permute(2, 0, 1)[None, :, None]   # (1, 3, 1, H, W) uint8
    return normalize(clip, mean=tuple(mean), std=VIDGN_DEFAULT.std)[:, :, 0]


def assert_rel_close(a: torch.Tensor, b: torch.Tensor) -> None:
    err, scale = (a - b).abs().max().item(), b.abs().max().item()
    assert err <= REL_TOL * scale, f"max |diff| {err:.3g} > {REL_TOL} x max |ref| {scale:.3g}"


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item() / b.abs().max().item()


def write_detectron(state: dict, path) -> None:
    blobs = torchvision_to_detectron(state)
    # Momentum blobs: what a Caffe2 checkpoint saved during training holds beside the weights.
    blobs.update({k + "_momentum": np.zeros_like(v) for k, v in list(blobs.items())[:3]})
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs, "cfg": "MODEL:\n  TYPE: ''\n"}, f, protocol=2)


def write_safetensors(state: dict, path) -> None:
    """The safetensors layout, written from its specification (no package needed)."""
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in state.items():
        data = t.detach().contiguous().numpy().tobytes()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)  # the format pads the header to 8 bytes with spaces
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(chunks))


def convert(capsys, *args) -> tuple[int, str, str]:
    rc = main(["convert-2d", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_vidgn_convention_is_the_data_pipelines():
    params = inspect.signature(normalize).parameters
    assert VIDGN_DEFAULT.mean == params["mean"].default
    assert VIDGN_DEFAULT.std == params["std"].default


@pytest.fixture(scope="module")
def detectron_net():
    return random_resnet(gn=True, seed=0)


@pytest.fixture(scope="module")
def detectron_pkl(detectron_net, tmp_path_factory):
    """detectron_net written once as a Detectron pickle (read-only for the tests)."""
    pkl = tmp_path_factory.mktemp("detectron") / "R-50-GN.pkl"
    write_detectron(detectron_net.state_dict(), pkl)
    return pkl


@pytest.fixture(scope="module")
def detectron_converted(detectron_pkl, tmp_path_factory):
    """(stdout, OUT) of `vidgn convert-2d --from detectron` with the default (vidgn) mean."""
    out, stdout = tmp_path_factory.mktemp("converted") / "r50_gn.pth", io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["convert-2d", "--from", "detectron", str(detectron_pkl), str(out)]) == 0
    return stdout.getvalue(), out


def test_detectron_round_trip_exact_with_source_mean(tmp_path, capsys, detectron_net, detectron_pkl):
    pkl, out = detectron_pkl, tmp_path / "r50_gn.pth"
    rc, stdout, err = convert(capsys, "--from", "detectron", pkl, out, "--mean-from-source")
    assert rc == 0, err
    assert "skipped 3 blobs" in stdout and "resnet50, GN" in stdout
    converted = load_converted(out, gn=True)
    rgb_mean = [m / 255 for m in DETECTRON.mean[::-1]]
    img = smooth_image(1)
    with torch.no_grad():
        ours = converted(prep_vidgn(img, mean=rgb_mean))
        ref = detectron_net(prep_detectron(img))
    assert_rel_close(ours, ref)


def test_detectron_default_mean_is_source_on_vidgn_mean(detectron_net, detectron_converted):
    """With vidgn's mean 0.45 the offset cannot be folded into GN: the converted network is exactly
    the source network on the image minus 0.45 * 255 instead of Detectron's means."""
    stdout, out = detectron_converted
    assert "NOT folded" in stdout
    converted = load_converted(out, gn=True)
    img = smooth_image(2)
    with torch.no_grad():
        ours = converted(prep_vidgn(img))
        shifted = detectron_net(prep_detectron(img, means=(255 * 0.45,) * 3))
        ref = detectron_net(prep_detectron(img))
    assert_rel_close(ours, shifted)
    assert rel_diff(ours, ref) > REL_TOL  # the offset is real (measured effect: docs/pretrained.md)


@pytest.mark.parametrize("suffix,exact", [(".safetensors", True), (".bin", False)])
def test_timm_round_trip(tmp_path, capsys, suffix, exact):
    net = random_resnet(gn=True, seed=3)
    src, out = tmp_path / ("model" + suffix), tmp_path / "r50_gn.pth"
    if suffix == ".safetensors":
        write_safetensors(net.state_dict(), src)
    else:
        torch.save(net.state_dict(), src)  # timm's pytorch_model.bin
    rc, _, err = convert(capsys, "--from", "timm", src, out, *(["--mean-from-source"] if exact else []))
    assert rc == 0, err
    converted = load_converted(out, gn=True)
    img = smooth_image(4)
    with torch.no_grad():
        if exact:
            ours, ref = converted(prep_vidgn(img, mean=IMAGENET_MEAN)), net(prep_imagenet(img))
        else:  # GN: the source on vidgn's mean with its own std
            ours, ref = converted(prep_vidgn(img)), net(prep_imagenet(img, mean=VIDGN_DEFAULT.mean))
    assert_rel_close(ours, ref)


def test_torchvision_bn_folds_offset_into_running_mean(tmp_path, capsys):
    net = random_resnet(gn=False, seed=5)
    src, out, exact_out = tmp_path / "resnet50.pth", tmp_path / "bn.pth", tmp_path / "bn_exact.pth"
    torch.save(net.state_dict(), src)
    assert convert(capsys, "--from", "torchvision", src, out)[0] == 0
    assert convert(capsys, "--from", "torchvision", src, exact_out, "--mean-from-source")[0] == 0
    converted, exact = load_converted(out, gn=False), load_converted(exact_out, gn=False)
    img = smooth_image(6)
    with torch.no_grad():
        stem = lambda m, x: m.bn1(m.conv1(x))  # noqa: E731
        ours, ref = stem(converted, prep_vidgn(img)), stem(net, prep_imagenet(img))
        # conv1 (7x7, stride 2, pad 3) outputs 2..30 of 32 see no padding: exact there, not at the border
        inner = (slice(None), slice(None), slice(2, 31), slice(2, 31))
        assert_rel_close(ours[inner], ref[inner])
        assert rel_diff(ours, ref) > REL_TOL
        assert_rel_close(exact(prep_vidgn(img, mean=IMAGENET_MEAN)), net(prep_imagenet(img)))


def test_converted_detectron_file_inflates_into_i3d_gn(detectron_converted):
    _, out = detectron_converted
    net3d = I3DResNet(depth=50, num_classes=1000, norm="gn", temporal_padding="replicate").eval()
    from vidgn.models import load_pretrained_2d
    report = load_pretrained_2d(net3d, out)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    converted = load_converted(out, gn=True)
    frame = prep_vidgn(smooth_image(7))
    clip = frame.unsqueeze(2).expand(-1, -1, 8, -1, -1)   # 8 identical frames: I3D's boring video
    with torch.no_grad():
        assert_rel_close(net3d(clip), converted(frame))


def test_refuses_bad_inputs(tmp_path, capsys, detectron_net):
    out = tmp_path / "out.pth"
    blobs = torchvision_to_detectron(detectron_net.state_dict())

    def dump(name, obj):
        path = tmp_path / name
        path.write_bytes(pickle.dumps(obj, protocol=2))
        return path

    cases = [
        (dump("not_resnet.pkl", {"blobs": {"fpn_inner_w": np.zeros((2, 2), np.float32)}}), "fpn_inner_w"),
        (dump("missing.pkl", {k: v for k, v in blobs.items() if k != "res3_1_branch2b_w"}), "res3_1_branch2b_w"),
        (dump("bn.pkl", {"res_conv1_bn_s": np.ones(64, np.float32), "conv1_w": blobs["conv1_w"]}),
         "AffineChannel"),
        (dump("code.pkl", {"blobs": {"conv1_w": np.ones(2)}, "x": __import__("os").getcwd}), "refusing to load"),
    ]
    text = tmp_path / "notes.pkl"
    text.write_text("not a pickle")
    cases.append((text, "not a PyTorch checkpoint, a Detectron pickle or a safetensors file"))
    for path, expected in cases:
        rc, _, err = convert(capsys, "--from", "detectron", path, out)
        assert rc == 2 and expected in err and str(path) in err, err
        assert not out.exists()
    # a torchvision file given as timm works, given as Detectron it does not
    tv = tmp_path / "tv.pth"
    torch.save(detectron_net.state_dict(), tv)
    rc, _, err = convert(capsys, "--from", "detectron", tv, out)
    assert rc == 2 and "Detectron" in err
    # never overwrite without --overwrite
    out.write_bytes(b"keep")
    rc, _, err = convert(capsys, "--from", "timm", tv, out)
    assert rc == 2 and "--overwrite" in err and out.read_bytes() == b"keep"
    assert convert(capsys, "--from", "timm", tv, out, "--overwrite")[0] == 0
    assert torch.load(out, weights_only=True).keys() == detectron_net.state_dict().keys()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_safetensors_reader_dtypes_and_errors(tmp_path):
    state = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "n": torch.tensor(7, dtype=torch.int64)}
    path = tmp_path / "m.safetensors"
    write_safetensors(state, path)
    back = read_safetensors(path)
    assert torch.equal(back["a"], state["a"]) and back["n"].item() == 7 and back["n"].dtype == torch.int64
    path.write_bytes(path.read_bytes()[:-4])  # truncated data
    with pytest.raises(ValueError, match="cut short"):
        read_safetensors(path)


# What torch.load says about files it cannot read with weights_only=True; convert-2d must never
# pass it on (it is unsafe advice, and wrong for a file that is not a checkpoint at all).
TORCH_ADVICE = ("weights_only", "will likely succeed")


@pytest.fixture
def no_conversion(monkeypatch):
    """convert_2d replaced by a stub that refuses: a test sees whether the command got that far."""
    def refuse(*args, **kwargs):
        raise ConvertError("conversion reached")
    monkeypatch.setattr(pipeline, "convert_2d", refuse)


def test_unwritable_out_refused_before_conversion(tmp_path, capsys, no_conversion):
    src = tmp_path / "tv.pth"
    src.write_bytes(b"unused: the conversion is a stub")
    (tmp_path / "a_file").write_text("keep")
    (tmp_path / "a_folder").mkdir()
    bad = [tmp_path / "a_file" / "out.pth", tmp_path / "a_folder"]
    if Path("/proc").is_dir():        # exists, lists processes, takes no new files (not even for root)
        bad.append(Path("/proc/nope/out.pth"))
    for out in bad:
        rc, _, err = convert(capsys, "--from", "timm", src, out)
        assert rc == 2 and str(out) in err and "conversion reached" not in err and "Traceback" not in err, err
    assert (tmp_path / "a_file").read_text() == "keep" and list((tmp_path / "a_folder").iterdir()) == []
    # a folder that is not there yet is fine (write_state makes it), and the check does not make it
    out = tmp_path / "new" / "sub" / "out.pth"
    rc, _, err = convert(capsys, "--from", "timm", src, out)
    assert rc == 2 and "conversion reached" in err, err
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".probe"] == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_folder_refused_before_conversion(tmp_path, capsys, no_conversion):
    src, folder = tmp_path / "tv.pth", tmp_path / "ro"
    src.write_bytes(b"unused")
    folder.mkdir()
    folder.chmod(0o555)
    try:
        rc, _, err = convert(capsys, "--from", "timm", src, folder / "out.pth")
    finally:
        folder.chmod(0o755)
    assert rc == 2 and str(folder / "out.pth") in err and "Permission denied" in err, err
    assert "conversion reached" not in err


def test_timm_training_checkpoint_converts_its_state_dict(tmp_path, capsys, detectron_net):
    """What timm's train.py writes (timm/utils/checkpoint_saver.py): the weights beside an
    argparse.Namespace, the optimizer's state, numbers and strings; the EMA weights are left out."""
    state = detectron_net.state_dict()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    param = nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    param.sum().backward()
    opt.step()                                  # momentum buffers: tensors in the optimizer's state
    ckpt, bare = tmp_path / "last.pth.tar", tmp_path / "bare.pth"
    torch.save({
        "epoch": 3, "arch": "resnet50_gn", "version": 2, "metric": 76.5,
        "optimizer": opt.state_dict(), "amp_scaler": {"scale": 65536.0, "_growth_tracker": 0},
        "args": argparse.Namespace(model="resnet50_gn", lr=0.1, device="cuda:0", mean=None,
                                   input_size=[3, 224, 224], sched="cosine"),
        "state_dict": state, "state_dict_ema": ema,
    }, ckpt)
    torch.save(state, bare)
    rc, stdout, err = convert(capsys, "--from", "timm", ckpt, tmp_path / "ckpt_out.pth")
    assert rc == 0, err
    assert "state_dict_ema" in stdout and "EMA" in stdout
    assert convert(capsys, "--from", "timm", bare, tmp_path / "bare_out.pth")[0] == 0
    got = torch.load(tmp_path / "ckpt_out.pth", weights_only=True)
    want = torch.load(tmp_path / "bare_out.pth", weights_only=True)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_not_a_checkpoint_says_what_it_is(tmp_path, capsys):
    out = tmp_path / "out.pth"

    def write(name, data: bytes):
        path = tmp_path / name
        path.write_bytes(data)
        return path

    dated = tmp_path / "dated.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "saved": datetime.date(2024, 1, 1)}, dated)
    cases = [  # (--from, file, what the message says)
        ("timm", write("clip.mp4", b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2" + bytes(64)),
         "MP4/MOV video"),
        ("detectron", write("clip2.mp4", b"\x00\x00\x00\x20ftypisom" + bytes(64)), "MP4/MOV video"),
        # what a login-gated download saves under the asked-for name
        ("timm", write("model.safetensors", b"<!DOCTYPE html><html><body>Sign in</body></html>"), "web page"),
        ("torchvision", write("empty.pth", b""), "it is empty"),
        ("timm", write("r50.pkl", pickle.dumps({"blobs": {"conv1_w": np.ones(2, np.float32)}}, protocol=2)),
         "use --from detectron"),
        ("detectron", write("tv.safetensors", b""), "it is empty"),
        ("timm", dated, "datetime.date"),
    ]
    for source, path, expected in cases:
        rc, _, err = convert(capsys, "--from", source, path, out)
        assert rc == 2 and str(path) in err and expected in err, err
        assert not any(advice in err for advice in TORCH_ADVICE), err
        assert "Traceback" not in err and not out.exists()
    # each --from is named with what it expects
    _, _, err = convert(capsys, "--from", "timm", tmp_path / "clip.mp4", out)
    assert all(f"--from {name} expects" in err for name in ("detectron", "timm", "torchvision")), err


def test_state_file_format_from_content_not_name(tmp_path):
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "n": torch.tensor(7, dtype=torch.int64)}
    files = {}
    for name in ("model.SAFETENSORS", "weights"):           # any case; no suffix at all
        write_safetensors(state, tmp_path / name)
        files[name] = SAFETENSORS
    torch.save(state, tmp_path / "zip.safetensors")        # a torch file under a safetensors name
    files["zip.safetensors"] = TORCH_ZIP
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    files["legacy.pth"] = TORCH_LEGACY
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"w": [1.0]}, protocol=4))
    assert file_kind(*read_head(tmp_path / "plain.pkl")) == PICKLE
    for name, kind in files.items():
        assert file_kind(*read_head(tmp_path / name)) == kind, name
        back = read_state_file(tmp_path / name)
        assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state), name
    # legacy format in pickle protocol 4 (a FRAME before the magic number): recognised, and refused
    # with the reason, since torch's safe unpickler cannot read it
    legacy4 = tmp_path / "legacy4.pth"
    torch.save(state, legacy4, _use_new_zipfile_serialization=False, pickle_protocol=4)
    assert file_kind(*read_head(legacy4)) == TORCH_LEGACY
    with pytest.raises(ConvertError, match="legacy.*protocol 4") as e:
        read_state_file(legacy4)
    assert not any(advice in str(e.value) for advice in TORCH_ADVICE)
    # cut short (an interrupted download): said so, also under a safetensors name in another case
    cut = tmp_path / "cut.SafeTensors"
    cut.write_bytes((tmp_path / "weights").read_bytes()[:-8])
    with pytest.raises(ConvertError, match="cut short"):
        read_state_file(cut)
