"""vidgn: normalization in 3D CNNs for video classification (GN paper, Table 8).

Pipeline: data (`vidgn.data`) -> model (`vidgn.models`) -> training (`vidgn.training`)
-> evaluation (`vidgn.evaluation`).
"""
import os

__version__ = "0.1.0"

# libgomp (torch's OpenMP on Linux) keeps its idle threads spinning for ~300k iterations between
# parallel regions. With two torch processes on the same cores (the tests beside the demo, grid cells
# sharing a CPU machine) the spinning threads starve the working ones: a training step of the
# synthetic I3D went from 0.012 s alone to 2.4 s each for two processes. At 1000 spins a lone
# process keeps its speed and two take 0.046 s a step (docs/benchmarks.md, "CPU threads"). libgomp
# reads this when torch loads it, so it must be set before `import torch`: importing vidgn first
# does that (`vidgn` commands always do). A value already in the environment wins.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")


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
