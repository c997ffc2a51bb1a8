"""Crop geometry and augmentation of the uint8 transforms.

Frames here carry their own pixel coordinates (x in the red/green channels, y in blue) so that the
crop position can be read back exactly; the same checks on decoded videos are in test_dataset.py.
"""
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from vidgn.data import transforms as T


def coord_frames(t=2, h=256, w=340):
    y = torch.arange(h).view(h, 1).expand(h, w)
    x = torch.arange(w).view(1, w).expand(h, w)
    f = torch.stack([x % 256, x // 256, y % 256], dim=-1).to(torch.uint8)  # (H, W, 3)
    return f.unsqueeze(0).expand(t, h, w, 3).contiguous()  # (T, H, W, 3)


def xs(view):  # view (3, T, h, w) -> x coordinate of each column
    return (view[0, 0, 0].long() + 256 * view[1, 0, 0].long())


def test_three_crops_along_long_side_cover_both_ends():
    frames = coord_frames()  # 340 wide, 256 high: short side already 256
    views = T.eval_views(frames, short_side=256, crop=256, num_crops=3)
    assert views.shape == (3, 3, 2, 256, 256) and views.dtype == torch.uint8
    lefts = [int(xs(v)[0]) for v in views]
    rights = [int(xs(v)[-1]) for v in views]
    assert lefts == [0, (340 - 256) // 2, 340 - 256]
    assert rights[0] == 255 and rights[-1] == 339  # left crop touches x=0, right crop touches x=339
    for v in views:
        assert torch.equal(xs(v), torch.arange(int(xs(v)[0]), int(xs(v)[0]) + 256))  # no resampling
        assert int(v[2, 0, 0, 0]) == 0 and int(v[2, 0, -1, 0]) == 255  # full height


def test_three_crops_portrait_go_top_to_bottom():
    frames = coord_frames(h=340, w=256).clone()
    frames[..., 2] = torch.arange(340).view(1, 340, 1).div(2, rounding_mode="floor").to(torch.uint8)  # y // 2
    views = T.eval_views(frames, short_side=256, crop=256, num_crops=3)
    tops = [int(v[2, 0, 0, 0]) * 2 for v in views]
    assert tops == [0, 42, 84]


def test_three_crops_after_scaling():
    frames = coord_frames(h=128, w=170)  # scaled x2 to 256 x 340
    views = T.eval_views(frames, short_side=256, crop=256, num_crops=3)
    assert views.shape == (3, 3, 2, 256, 256)
    # leftmost crop starts at source x ~ 0, rightmost ends at source x ~ 169
    assert int(xs(views[0])[0]) <= 1 and int(xs(views[2])[-1]) >= 168


def test_single_centre_crop():
    frames = coord_frames()
    (view,) = T.eval_views(frames, short_side=256, crop=224, num_crops=1)
    assert view.shape == (3, 2, 224, 224)
    assert int(xs(view)[0]) == (340 - 224) // 2 and int(view[2, 0, 0, 0]) == 16


def test_multi_crop_boxes_errors():
    with pytest.raises(ValueError, match="larger"):
        T.multi_crop_boxes(256, 340, 300, 3)
    with pytest.raises(ValueError, match="1 or 3"):
        T.multi_crop_boxes(256, 340, 224, 2)


def smooth_frames(t=4, h=120, w=160):
    y = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    x = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    img = torch.stack([x * 255, y * 255, (x + y) * 127], dim=-1)
    return img.round().to(torch.uint8).unsqueeze(0).expand(t, h, w, 3).contiguous()


def test_train_view_matches_resize_then_crop():
    """Crop-in-source-then-resize must give (almost) the same pixels as scaling the whole frame and
    cropping there, for the same random draws."""
    frames = smooth_frames()
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        out = T.train_view(frames, short_side_range=(128, 160), crop=112, flip=False, generator=g)
        assert out.shape == (1, 3, 4, 112, 112) and out.dtype == torch.uint8
        g = torch.Generator().manual_seed(seed)  # replay the same draws
        short = int(torch.randint(128, 161, (1,), generator=g))
        sh, sw = T.scaled_size(120, 160, short)
        top = int(torch.randint(0, sh - 112 + 1, (1,), generator=g))
        left = int(torch.randint(0, sw - 112 + 1, (1,), generator=g))
        full = TF.resize(frames.permute(0, 3, 1, 2).float(), [sh, sw], antialias=True)
        ref = full[:, :, top:top + 112, left:left + 112].permute(1, 0, 2, 3)
        err = (out[0].float() - ref).abs().mean()
        assert err < 3.0, f"seed {seed}: mean abs error {err:.2f} vs resize-then-crop"


def test_shrinking_is_antialiased_like_torchvision():
    """Sources larger than the target (raw Kinetics is often 1280x720) are shrunk with an
    antialiased filter: close to torchvision's antialias=True resize, unlike plain bilinear."""
    frames = smooth_frames(t=2, h=240, w=320)
    frames[:, ::2] = 255 - frames[:, ::2]  # fine horizontal stripes: aliasing shows at once
    views = T.eval_views(frames, short_side=100, crop=100, num_crops=3)  # 2.4x smaller, 3 crops
    ref = TF.resize(frames.permute(0, 3, 1, 2).float(), [100, 133], antialias=True)  # (T, 3, 100, 133)
    aliased = TF.resize(frames.permute(0, 3, 1, 2).float(), [100, 133], antialias=False)
    base = (aliased - ref).abs().mean()  # how far plain bilinear lands from the antialiased image
    for view, left in zip(views, (0, 16, 33)):
        err = (view.float() - ref[:, :, :, left:left + 100].permute(1, 0, 2, 3)).abs().mean()
        assert err < base / 2, f"crop at {left}: mean abs error {err:.2f} vs torchvision antialias " \
                               f"(plain bilinear: {base:.2f})"


def test_train_view_flip_and_determinism():
    frames = coord_frames(t=2, h=64, w=96)
    runs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(3)
        runs.append([T.train_view(frames, short_side_range=(64, 64), crop=64, generator=g) for _ in range(20)])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    flipped = [bool(xs(v[0])[0] > xs(v[0])[-1]) for v in runs[0]]
    assert any(flipped) and not all(flipped)
    noflip = T.train_view(frames, short_side_range=(64, 64), crop=64, flip=False,
                          generator=torch.Generator().manual_seed(3))
    assert bool(xs(noflip[0])[0] < xs(noflip[0])[-1])


def test_train_view_random_short_side_range():
    frames = smooth_frames(t=1, h=64, w=64)
    g = torch.Generator().manual_seed(0)
    # With a square frame, short side s and crop c, the crop covers c/s of the frame: check the
    # covered fraction varies over [64/80, 64/64] through the value span it shows.
    spans = []
    for _ in range(40):
        v = T.train_view(frames, short_side_range=(64, 80), crop=64, flip=False, generator=g)
        spans.append(int(v[0, 0, 0, 0, -1]) - int(v[0, 0, 0, 0, 0]))
    assert max(spans) - min(spans) > 20


def test_normalize():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 1, 2).expand(2, 3, 1, 1, 2)
    y = T.normalize(x, (0.45, 0.45, 0.45), (0.225, 0.225, 0.225))
    assert y.dtype == torch.float32 and y.shape == (2, 3, 1, 1, 2)
    assert torch.allclose(y[0, 0, 0, 0], torch.tensor([-2.0, (1 - 0.45) / 0.225]))
