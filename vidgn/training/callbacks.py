"""Callbacks that every vidgn run gets: checkpoints, precise BN, bad-video accounting, preemption."""
from __future__ import annotations

import itertools
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

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
        # A fresh loader (re-iterating the running one would reset its workers mid-epoch) over this
        # rank's share of the training list, in an order drawn anew each epoch.
        loader = self._loader(trainer)
        batches = (self._to_device(trainer, pl_module, batch) for batch in itertools.islice(loader, self.num_batches))
        used = update_bn_stats(pl_module.network, batches, self.num_batches)
        if used and trainer.world_size > 1:
            average_bn_stats_across_ranks(pl_module.network)
        if used:
            log.info("precise BN: recomputed statistics over %d training batches%s", used,
                     f" per process, averaged over {trainer.world_size} processes" if trainer.world_size > 1 else "")

    @staticmethod
    def _loader(trainer: L.Trainer):
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "dataloader"):
            return trainer.train_dataloader
        sampler = torch.utils.data.DistributedSampler(
            datamodule.dataset("train"), num_replicas=trainer.world_size, rank=trainer.global_rank,
            shuffle=True, seed=datamodule.seed + 1)  # not the training order's seed
        sampler.set_epoch(trainer.current_epoch)
        return datamodule.dataloader("train", sampler=sampler)

    @staticmethod
    def _to_device(trainer: L.Trainer, pl_module: L.LightningModule, batch: dict) -> torch.Tensor:
        # The same hooks a training batch goes through: drop failed samples, move, normalise.
        datamodule = trainer.datamodule
        if datamodule is not None:
            batch = datamodule.on_before_batch_transfer(batch, 0)
        batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
        if datamodule is not None:
            batch = datamodule.on_after_batch_transfer(batch, 0)
        video = batch["video"]  # (B, 3, T, H, W)
        # In the layout the network runs in, as VideoClassifier.forward does.
        return pl_module.to_network_layout(video) if hasattr(pl_module, "to_network_layout") else video


@torch.no_grad()
def average_bn_stats_across_ranks(model: torch.nn.Module) -> None:
    """Population statistics of the union of every rank's batches: the mean of the means, and the
    mean of (variance + mean^2) minus the squared mean (each rank saw as many batches)."""
    world = torch.distributed.get_world_size()
    for m in model.modules():
        if is_batch_norm(m):
            mean, var = m.running_mean, m.running_var
            both = torch.stack([mean, var + mean * mean]).double()
            torch.distributed.all_reduce(both)
            both /= world
            mean.copy_(both[0])
            var.copy_((both[1] - both[0] * both[0]).clamp_min_(0))


class BadVideoLogger(L.Callback):
    """Logs how many training videos failed to decode (and were replaced) in each epoch."""

    def __init__(self, warn: bool = True):
        """
        Args:
            warn: also print a warning after each epoch in which videos failed (the count is always
                logged as data/bad_train_videos).
        """
        self.warn = warn

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "bad_count"):
            return
        count = datamodule.bad_count("train")
        pl_module.log("data/bad_train_videos", float(count), reduce_fx="sum", sync_dist=True)
        if count and self.warn:
            log.warning("epoch %d: %d training video(s) failed to decode and were replaced",
                        trainer.current_epoch, count)
        datamodule.reset_bad("train")


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that keeps `last.ckpt` the newest state, whatever the best-by-validation files do.

    Lightning's ModelCheckpoint (2.6) with a monitor writes last.ckpt only at steps where it also
    saves a top-k file, so last.ckpt could hold an epoch long past (and resuming from it silently
    re-trained epochs; testing it scored the best-on-validation model). Here last.ckpt is rewritten
    at the end of every training epoch (after validation and precise BN) and at the end of training;
    preemption and Ctrl-C write it too (PreemptionCheckpoint). The best checkpoints by
    `monitor` keep their own names (`best-...`); `vidgn test --ckpt_path best` finds them.
    """

    _last_written_step: int | None = None

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_written_step = trainer.global_step

    def _refresh_last(self, trainer: L.Trainer) -> None:
        if (not self.save_last or trainer.fast_dev_run or trainer.sanity_checking
                or trainer.state.fn != TrainerFn.FITTING or self._last_written_step == trainer.global_step):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._refresh_last(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._refresh_last(trainer)


class PreemptionCheckpoint(L.Callback):
    """On SIGTERM, SIGUSR1 (cluster preemption) or Ctrl-C, save `last.ckpt` before the run exits.

    Lightning turns SIGTERM into a clean stop at the end of the current batch; this callback treats
    SIGUSR1 (SLURM sends it ahead of the time limit) and the first Ctrl-C (SIGINT) the same way and
    writes the checkpoint that `--ckpt_path last` resumes from, mid-epoch included. A second Ctrl-C
    stops at once, saving nothing.
    """

    def __init__(self, sigusr1: bool = True, ctrl_c: bool = True) -> None:
        """
        Args:
            sigusr1: treat SIGUSR1 (SLURM's warning before the time limit) like SIGTERM.
            ctrl_c: the first Ctrl-C saves last.ckpt at the end of the step and stops (false: Ctrl-C
                stops at once, saving nothing).
        """
        self.sigusr1, self.ctrl_c = sigusr1, ctrl_c
        self._previous: dict[int, Any] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or threading.current_thread() is not threading.main_thread():
            return
        if self.sigusr1 and signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
            # Re-raise as SIGTERM so that Lightning's handler (and DDP broadcast of it) does the rest.
            self._install(signal.SIGUSR1, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
        if self.ctrl_c and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._install(signal.SIGINT, self._on_ctrl_c)

    def _install(self, signum: int, handler) -> None:
        self._previous[signum] = signal.signal(signum, handler)

    def _on_ctrl_c(self, *_) -> None:
        log.warning("Ctrl-C: saving checkpoints/last.ckpt at the end of this step, then stopping "
                    "(Ctrl-C again to stop now, without saving)")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.kill(os.getpid(), signal.SIGTERM)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():  # this process may go on (tests, notebooks)
            signal.signal(signum, handler)
        self._previous = {}

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()  # Lightning calls no teardown hook after an exception
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return  # a stopped test/validate/predict has no training state to save (and must not clobber it)
        path = Path(_checkpoint_dir(trainer)) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}.ckpt"
        trainer.save_checkpoint(path)
        log.warning("stopped at global step %d: saved %s; resume with --ckpt_path last", trainer.global_step, path)


def _checkpoint_dir(trainer: L.Trainer) -> str:
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return str(callback.dirpath)
    return os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints")
