"""Data: list files (`lists`), synthetic Kinetics-format videos (`synthetic`), Kinetics ingestion
(`kinetics`), video checks (`check`) and the clip pipeline (`datamodule` and friends).

Kept import-light on purpose: `vidgn --help` and the data tools must not pull in torch/Lightning.
"""


def __getattr__(name: str):
    # Lazy, so that `import vidgn.data` stays cheap; the DataModule imports Lightning.
    if name == "KineticsDataModule":
        from vidgn.data.datamodule import KineticsDataModule

        return KineticsDataModule
    raise AttributeError(f"module 'vidgn.data' has no attribute {name!r}")
