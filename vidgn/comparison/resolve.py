"""A run's resolved config, as `vidgn fit` would see it, without building anything.

Used to check a cell's overrides before any run starts, to read what emulation needs (clips per
GPU, norm), and to find cells whose configs are identical (run once, reported under each label).
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from typing import Any

from vidgn.data.datamodule import VideoDataModule
from vidgn.training.cli import VidgnCLI
from vidgn.training.module import VideoClassifier


class _Resolved(Exception):
    def __init__(self, config: Any, parser: Any):
        self.config, self.parser = config, parser


class _ResolveOnly(VidgnCLI):
    def before_instantiate_classes(self) -> None:  # parsed and checked by jsonargparse: stop here
        raise _Resolved(self.config, self.parser)


def resolve_config(args: list[str]) -> tuple[Any, str]:
    """(config namespace, key) for `vidgn fit ARGS`; the key ignores where the run is written."""
    seed_log = logging.getLogger("lightning.fabric.utilities.seed")
    level = seed_log.level
    seed_log.setLevel(logging.WARNING)  # no "Seed set to ..." per cell
    try:
        with warnings.catch_warnings():  # "args given while sys.argv has some": intended here
            warnings.simplefilter("ignore", UserWarning)
            _ResolveOnly(VideoClassifier, VideoDataModule, args=args, run=False, seed_everything_default=0,
                         parser_kwargs={"exit_on_error": False, "prog": "vidgn"})
    except _Resolved as r:
        config = r.config.clone()
        for key in ("config", "trainer.default_root_dir"):
            if key in config:
                config[key] = None
        text = r.parser.dump(config, skip_none=False, skip_validation=True)
        return r.config, hashlib.sha256(text.encode()).hexdigest()[:16]
    finally:
        seed_log.setLevel(level)
    raise RuntimeError("the config was not resolved")  # unreachable: instantiation always comes first
