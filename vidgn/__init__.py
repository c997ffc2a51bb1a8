"""vidgn: normalization in 3D CNNs for video classification (GN paper, Table 8).

Pipeline: data (`vidgn.data`) -> model (`vidgn.models`) -> training (`vidgn.training`)
-> evaluation (`vidgn.evaluation`).
"""
__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that `import vidgn` (and `vidgn --help`) stays fast and Lightning-free.
    if name == "VideoClassifier":
        from vidgn.training.module import VideoClassifier

        return VideoClassifier
    if name in ("VideoDataModule", "KineticsDataModule"):
        from vidgn.data import datamodule

        return getattr(datamodule, name)
    if name == "I3DResNet":
        from vidgn.models.i3d import I3DResNet

        return I3DResNet
    raise AttributeError(f"module 'vidgn' has no attribute {name!r}")
