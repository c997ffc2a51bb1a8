"""Callbacks that every vidgn run gets: precise BN, bad-video accounting, preemption checkpoints."""
from __future__ import annotations

import itertools
import logging
import os
import signal
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from vidgn.models.norms import is_batch_norm
from vidgn.models.precise_bn import update_bn_stats

log = logging.getLogger("vidgn.training")


class PreciseBN(L.Callback):
    """Recompute BN population statistics over `num_batches` training batches before each validation.

    The running averages that BN keeps during training lag behind the weights; PySlowFast and the
    Non-local code recompute them with the final weights ("precise BN"). The recomputed statistics
    are what the checkpoint saved after that validation holds, so `vidgn test` uses them too.
    A no-op for networks without BN (GN, LN, IN, frozen BN).
    """

    def __init__(self, num_batches: int = 0):
        """
        Args:
            num_batches: training batches to average over (0 disables; PySlowFast uses 200).
        """
        self.num_batches = num_batches

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.num_batches <= 0 or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        if not any(is_batch_norm(m) for m in pl_module.network.modules()):
            return  # GN/LN/IN/frozen BN: nothing to recompute, so start no training workers
        # A fresh loader: re-iterating the running one would reset its (persistent) workers mid-epoch.
        loader = trainer.datamodule.train_dataloader() if trainer.datamodule else trainer.train_dataloader
        batches = (self._to_device(trainer, pl_module, batch) for batch in itertools.islice(loader, self.num_batches))
        used = update_bn_stats(pl_module.network, batches, self.num_batches)
        if used:
            log.info("precise BN: recomputed statistics over %d training batches", used)


    @staticmethod
    def _to_device(trainer: L.Trainer, pl_module: L.LightningModule, batch: dict) -> torch.Tensor:
        # The same hooks a training batch goes through: drop failed samples, move, normalise.
        datamodule = trainer.datamodule
        if datamodule is not None:
            batch = datamodule.on_before_batch_transfer(batch, 0)
        batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
        if datamodule is not None:
            batch = datamodule.on_after_batch_transfer(batch, 0)
        return batch["video"]  # (B, 3, T, H, W)


class BadVideoLogger(L.Callback):
    """Logs how many training videos failed to decode (and were replaced) in each epoch."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "bad_count"):
            return
        count = datamodule.bad_count("train")
        pl_module.log("data/bad_train_videos", float(count), reduce_fx="sum", sync_dist=True)
        if count:
            log.warning("epoch %d: %d training video(s) failed to decode and were replaced", trainer.current_epoch, count)
        datamodule.reset_bad("train")


class PreemptionCheckpoint(L.Callback):
    """On SIGTERM or SIGUSR1 (cluster preemption), save `last.ckpt` before the run exits.

    Lightning turns SIGTERM into a clean stop at the end of the current batch; this callback treats
    SIGUSR1 the same way (SLURM sends it ahead of the time limit) and writes the checkpoint that
    `--ckpt_path last` resumes from, mid-epoch included.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
            # Re-raise as SIGTERM so that Lightning's handler (and DDP broadcast of it) does the rest.
            signal.signal(signal.SIGUSR1, lambda *_: os.kill(os.getpid(), signal.SIGTERM))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        path = Path(_checkpoint_dir(trainer)) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}.ckpt"
        trainer.save_checkpoint(path)
        log.warning("preempted at global step %d: saved %s; resume with --ckpt_path last", trainer.global_step, path)


def _checkpoint_dir(trainer: L.Trainer) -> str:
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return str(callback.dirpath)
    return os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints")
