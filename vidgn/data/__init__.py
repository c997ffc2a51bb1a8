"""Data: the input pipeline that training, testing and prediction run, from list files to batches:
list files (`lists`), the clip settings and what each split samples (`clip`), frame indices
(`sampling`), decoding (`video`), uint8 scale/crop/flip and normalisation (`transforms`),
`ClipDataset` (`dataset`), the crash-safe loader (`loader`) and `VideoDataModule` (`datamodule`).
The offline tools run once by hand (prepare-kinetics, check-videos, make-synthetic) live in
`vidgn.tools`.

Kept import-light on purpose: `vidgn --help` and the data tools must not pull in torch/Lightning.
"""


def __getattr__(name: str):
    # Lazy, so that `import vidgn.data` stays cheap; the DataModule imports Lightning.
    if name in ("VideoDataModule", "KineticsDataModule"):
        from vidgn.data import datamodule

        return getattr(datamodule, name)
    raise AttributeError(f"module 'vidgn.data' has no attribute {name!r}")
