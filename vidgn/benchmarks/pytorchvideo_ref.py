"""The pytorchvideo reference loader of `vidgn bench data`: its Kinetics training recipe on the same clips.

pytorchvideo's LabeledVideoDataset with the decord backend and a RandomClipSampler over the same
window as vidgn, plus a transform doing what pytorchvideo's Kinetics recipe does on its float
output. Kept apart from data.py, which drives the measurement.
"""
from __future__ import annotations


def pytorchvideo_loader(entries, root, clip_spec, threads, mean, std):
    """Iterator of pytorchvideo clips doing the same job as vidgn's training transform."""
    import math
    import random

    import decord
    import torch
    from pytorchvideo.data import LabeledVideoDataset
    from pytorchvideo.data.clip_sampling import RandomClipSampler
    from pytorchvideo.data.encoded_video_decord import EncodedVideoDecord

    from vidgn.data.lists import resolve

    # Same decoder threads as vidgn: replace the default num_threads=0 ("auto", one per core).
    d = list(EncodedVideoDecord.__init__.__defaults__)
    d[-2] = threads  # (video_name, decode_audio, sample_rate, mono, width, height, num_threads, fault_tol)
    EncodedVideoDecord.__init__.__defaults__ = tuple(d)
    fps = decord.VideoReader(str(resolve(entries[0], root)), num_threads=1).get_avg_fps()
    m = torch.tensor(mean).view(3, 1, 1, 1)
    sd = torch.tensor(std).view(3, 1, 1, 1)
    t, s, crop = clip_spec.num_frames, clip_spec.sampling_rate, clip_spec.train_crop
    lo, hi = clip_spec.train_short_side

    def transform(sample: dict) -> dict:
        # pytorchvideo's recipe: UniformTemporalSubsample(T), x/255, Normalize, RandomShortSideScale,
        # RandomCrop, RandomHorizontalFlip, on float (C, T, H, W).
        x = sample["video"]
        idx = torch.linspace(0, x.shape[1] - 1, t).clamp(0, x.shape[1] - 1).long()
        x = x.index_select(1, idx) / 255.0
        x = (x - m) / sd
        size = random.randint(lo, hi)
        h, w = x.shape[-2:]
        new_h, new_w = (size, int(math.floor(w / h * size))) if h <= w else (int(math.floor(h / w * size)), size)
        x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
        i, j = random.randint(0, new_h - crop), random.randint(0, new_w - crop)
        x = x[..., i:i + crop, j:j + crop]
        if random.random() < 0.5:
            x = x.flip(-1)
        sample["video"] = x
        return sample

    ds = LabeledVideoDataset([(str(resolve(e, root)), {"label": e.label}) for e in entries],
                             RandomClipSampler(t * s / fps), transform=transform, decode_audio=False,
                             decoder="decord")
    def forever():  # LabeledVideoDataset stops after one pass over its video sampler
        while True:
            for item in ds:
                yield item["video"]

    return forever()
