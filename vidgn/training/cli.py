"""`vidgn fit|validate|test|predict`: LightningCLI over VideoClassifier and VideoDataModule.

Configs are YAML diffs composed with repeated `--config` (later files win), then dotted overrides,
e.g. `vidgn fit --config configs/kinetics/base.yaml --config configs/kinetics/gn_32f_8c.yaml
--data.data_root /data/kinetics400`. The run directory is `--trainer.default_root_dir`: it holds
`config.yaml`, TensorBoard and CSV logs, `checkpoints/` (last and best by val/top1) and evaluation
reports.
"""
from __future__ import annotations

import os
from typing import Any

from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from vidgn.data.datamodule import VideoDataModule
from vidgn.training.callbacks import BadVideoLogger, PreciseBN, PreemptionCheckpoint, RunCheckpoint
from vidgn.training.loggers import AppendingCSVLogger, RunDirTensorBoardLogger, use_run_dir
from vidgn.training.module import VideoClassifier
from vidgn.training.runs import check_bn_clips, check_run_dir, resolve_checkpoint

# Defaults of `trainer.logger` and `trainer.callbacks`, so that --print_config and config.yaml show
# them. A list given in a config replaces them; `--trainer.callbacks+=...` appends. The loggers'
# save_dir None is the run directory (trainer.default_root_dir), filled in when the Trainer is built.
DEFAULT_LOGGERS = [
    {"class_path": "vidgn.training.loggers.RunDirTensorBoardLogger"},
    {"class_path": "vidgn.training.loggers.AppendingCSVLogger"},
]
DEFAULT_CALLBACKS = [
    {"class_path": "lightning.pytorch.callbacks.RichProgressBar"},  # left out with enable_progress_bar false
    {"class_path": "lightning.pytorch.callbacks.LearningRateMonitor", "init_args": {"logging_interval": "step"}},
]


EXIT_INCOMPLETE = 3  # `vidgn test` left out more than data.max_bad_fraction of the videos


class VidgnCLI(LightningCLI):
    exit_status = 0

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The classifier's head size follows the dataset's classes.txt.
        parser.link_arguments("data.num_classes", "model.network.init_args.num_classes", apply_on="instantiate")
        parser.set_defaults({"trainer.logger": DEFAULT_LOGGERS, "trainer.callbacks": DEFAULT_CALLBACKS})
        # The callbacks every run needs, each under its own section (`checkpoint.*`, `precise_bn.*`,
        # ...): unlike `trainer.callbacks`, a config cannot drop them by listing callbacks of its own.
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/top1",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-epoch{epoch:03d}-top1_{val/top1:.2f}",
                "checkpoint.auto_insert_metric_name": False,
                # last.ckpt is always this run's newest state (never a last-v1.ckpt beside a stale one)
                "checkpoint.enable_version_counter": False,
            }
        )
        parser.add_lightning_class_args(PreciseBN, "precise_bn")
        parser.add_lightning_class_args(BadVideoLogger, "bad_videos")
        parser.add_lightning_class_args(PreemptionCheckpoint, "preemption")
        parser.add_argument("--start_over", type=bool, default=False,
                            help="fit into a run directory that holds an earlier run: move that run's files "
                                 "into RUN_DIR/replaced-<time>/ and start afresh (default: refuse; resume "
                                 "with --ckpt_path last)")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.trainer.get("sync_batchnorm"):
            # Lightning's conversion swaps every BN-like layer (sub-batch BN, frozen BN included)
            # for one global SyncBatchNorm, silently changing the experiment.
            raise ValueError(
                "trainer.sync_batchnorm=true would replace every norm layer with a global SyncBatchNorm "
                "(dropping bn_clips, frozen_bn and sync_bn_group_size). Leave it false and set "
                "model.network.init_args.norm: sync_bn instead (optionally with sync_bn_group_size)."
            )
        check_bn_clips(config)
        if self.subcommand == "fit":
            check_run_dir(config)
        elif self.subcommand in ("validate", "test", "predict"):
            config.ckpt_path = str(resolve_checkpoint(config, self.subcommand))
        # fit writes config.yaml; validate/test/predict in the same run directory keep theirs apart.
        name = "config.yaml" if self.subcommand == "fit" else f"config_{self.subcommand}.yaml"
        self.save_config_kwargs.update(config_filename=name, overwrite=True)

    def before_fit(self) -> None:
        # The checks that need the built model and data, now: the Trainer writes config.yaml,
        # hparams.yaml and TensorBoard events before it reaches them (datamodule.setup, the first
        # forward), and those leftovers would stand in the corrected rerun's way.
        check_frames = getattr(getattr(self.model, "network", None), "check_num_frames", None)
        if callable(check_frames):
            check_frames(self.datamodule.clip.num_frames)
        self.datamodule.trainer = self.trainer  # what fit does first; setup needs the world size
        self.datamodule.setup("fit")  # lists parsed, videos found, one full training batch

    def _after_evaluation(self) -> None:
        # A partial evaluation (too many videos left out) still writes its report, but must not
        # look like a full result to a job script either.
        if getattr(self.model, "incomplete_evaluation", False):
            self.exit_status = EXIT_INCOMPLETE

    after_test = after_validate = after_predict = _after_evaluation

    def instantiate_trainer(self, **kwargs: Any):
        trainer_config = self._get(self.config_init, "trainer", default={})
        logger = trainer_config.get("logger")
        if logger in (None, True):  # Lightning's default logger: ours
            kwargs["logger"] = logger = [RunDirTensorBoardLogger(), AppendingCSVLogger()]
        use_run_dir(logger, trainer_config.get("default_root_dir") or os.getcwd())
        if trainer_config.get("enable_progress_bar") is False:
            # Lightning refuses a progress bar callback with enable_progress_bar false.
            callbacks = trainer_config.get("callbacks") or []
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            kwargs["callbacks"] = [c for c in callbacks if not isinstance(c, ProgressBar)]
        return super().instantiate_trainer(**kwargs)


def run_lightning_cli(argv: list[str] | None = None) -> VidgnCLI:
    """Run a LightningCLI subcommand; `argv` defaults to sys.argv[1:]."""
    return VidgnCLI(
        VideoClassifier,
        VideoDataModule,
        args=argv,
        seed_everything_default=0,
        parser_kwargs={"prog": "vidgn"},
        save_config_kwargs={"overwrite": True},
    )
