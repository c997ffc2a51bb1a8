"""channels_last end to end: the collated uint8 batch, `normalize`, VideoClassifier.forward and every
conv / norm / pool of an I3D ResNet stay in channels_last_3d memory, with no layout copy on the way."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from vidgn.data.dataset import collate_clips
from vidgn.data.transforms import normalize
from vidgn.models import I3DResNet, is_norm
from vidgn.models.group_norm import is_channels_last_3d
from vidgn.training.module import VideoClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CL3D = torch.channels_last_3d
# Sizes where every activation has T, H, W > 1 at 8 channels or more (16 frames at 64x64: res5 is
# 2 x 2 x 2), so channels_last_3d and the standard layout have distinct strides everywhere.
FRAMES, SIZE, CLIPS = 16, 64, 4
NORMS = [("bn", {}), ("gn", {"groups": 4}), ("gn_cl", {"groups": 4}), ("bn", {"bn_clips": 2})]
NORM_IDS = ["bn", "gn", "gn_cl", "bn_clips2"]


def uint8_batch(seed: int = 0) -> dict:
    """A batch as the loader hands it over: items of (1, 3, T, h, w) uint8 views in (T, h, w, 3) memory
    order (what train_view returns), collated."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(CLIPS):
        frames = torch.randint(0, 256, (FRAMES, SIZE, SIZE, 3), dtype=torch.uint8, generator=g)  # decoder layout
        items.append({"video": frames.permute(3, 0, 1, 2).unsqueeze(0), "label": torch.tensor([i % 3]),
                      "video_index": torch.tensor([i]), "clip_index": torch.tensor([0]),
                      "crop_index": torch.tensor([0]), "bad": []})
    return collate_clips(items)


def classifier(norm: str, kw: dict, channels_last: bool = True, dropout: float = 0.5) -> VideoClassifier:
    torch.manual_seed(0)
    net = I3DResNet(depth=18, num_classes=3, norm=norm, base_channels=8, zero_init_last_norm=False,
                    dropout=dropout, **kw)
    clf = VideoClassifier(net, channels_last=channels_last)
    clf.configure_model()
    return clf.train()


class CopyCounter(TorchDispatchMode):
    """Counts the aten ops that copy a tensor's elements into a new layout."""

    COPIES = {"copy_", "clone", "_to_copy", "contiguous"}

    def __init__(self):
        super().__init__()
        self.copies: list[tuple[str, tuple]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in self.COPIES and isinstance(args[0], torch.Tensor) and args[0].dim() == 5:
            self.copies.append((func.overloadpacket.__name__, tuple(args[0].shape)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("norm,kw", NORMS, ids=NORM_IDS)
def test_layout_is_channels_last_3d_from_uint8_batch_to_every_layer(norm, kw):
    batch = uint8_batch()
    assert is_channels_last_3d(batch["video"]) and batch["video"].dtype == torch.uint8
    video = normalize(batch["video"])
    assert is_channels_last_3d(video) and video.dtype == torch.float32
    clf = classifier(norm, kw)
    seen: list[str] = []
    bad: list[str] = []

    def check(name):
        def hook(module, inputs, output):
            seen.append(name)
            for what, t in (("input", inputs[0]), ("output", output)):
                if not is_channels_last_3d(t):
                    bad.append(f"{name} ({type(module).__name__}) {what} strides {t.stride()} shape {tuple(t.shape)}")
        return hook

    layers = {name: m for name, m in clf.network.named_modules()
              if isinstance(m, (nn.Conv3d, nn.MaxPool3d)) or is_norm(m)}
    for name, m in layers.items():
        m.register_forward_hook(check(name))
    video.requires_grad_(True)
    loss = F.cross_entropy(clf(video), batch["label"])
    loss.backward()
    assert not bad, "\n".join(bad)
    assert sorted(seen) == sorted(layers)  # every conv, norm and pool ran and was checked
    assert is_channels_last_3d(video.grad)  # the backward came through in the same layout


@pytest.mark.parametrize("norm,kw", NORMS, ids=NORM_IDS)
def test_no_layout_copies_in_a_channels_last_train_step(norm, kw):
    """No 5D copy anywhere in forward + backward (CPU: torch's BN and GN kernels keep the layout;
    gn_cl and sub-batch BN keep it themselves)."""
    batch = uint8_batch(1)
    clf = classifier(norm, kw)
    with CopyCounter() as counter:
        video = normalize(batch["video"])
        loss = F.cross_entropy(clf(video), batch["label"])
        loss.backward()
    assert counter.copies == []


def test_standard_layout_network_gets_one_copy_and_same_numbers():
    """channels_last off: forward puts the (channels_last_3d) batch in the standard layout once,
    and the logits equal the channels_last network's."""
    batch = uint8_batch(2)
    video = normalize(batch["video"])
    plain = classifier("gn", {"groups": 4}, channels_last=False).eval()  # eval: no dropout
    cl = classifier("gn", {"groups": 4}).eval()
    assert plain.to_network_layout(video).is_contiguous() and cl.to_network_layout(video) is video
    with CopyCounter() as counter:
        out_plain = plain(video)
    assert [name for name, _ in counter.copies] in (["clone"], ["copy_"], ["contiguous"], ["_to_copy"])
    torch.testing.assert_close(out_plain, cl(video), atol=1e-4, rtol=1e-4)


# ---- on a GPU (skipped without CUDA; run with `-m gpu`) ------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("norm,kw", NORMS, ids=NORM_IDS)
def test_cuda_bf16_channels_last_keeps_layout_and_matches_standard_layout(norm, kw):
    """On CUDA under bf16 autocast, a train-mode forward keeps channels_last_3d at every conv, norm
    and pool (gn via `auto`: torch's kernel where it keeps the layout, else the layout-keeping path),
    and its logits match a standard-layout copy of the network running torch's own kernels."""
    from vidgn.models import group_norm as gnmod
    print(f"torch {torch.__version__}: F.group_norm keeps channels_last_3d on CUDA: "
          f"{gnmod.native_group_norm_keeps_channels_last(torch.device('cuda'))}")
    clf = classifier(norm, kw, dropout=0.0).cuda()
    plain = classifier(norm.replace("gn_cl", "gn_native"), kw, channels_last=False, dropout=0.0).cuda()
    plain.network.load_state_dict(clf.network.state_dict())
    video = normalize(uint8_batch()["video"].cuda())
    bad = []

    def check(module, inputs, output, name=""):
        if not (is_channels_last_3d(inputs[0]) and is_channels_last_3d(output)):
            bad.append(f"{name}: {inputs[0].stride()} -> {output.stride()}")

    for name, m in clf.network.named_modules():
        if isinstance(m, (nn.Conv3d, nn.MaxPool3d)) or is_norm(m):
            m.register_forward_hook(lambda mod, i, o, name=name: check(mod, i, o, name))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out, ref = clf(video), plain(video)
    assert not bad, "\n".join(bad)
    torch.testing.assert_close(out.float(), ref.float(), atol=5e-2, rtol=5e-2)
