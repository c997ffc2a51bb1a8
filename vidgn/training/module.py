"""VideoClassifier: the LightningModule that trains and evaluates any plain `nn.Module` video network.

The network is configured separately (`model.network` in the YAML, e.g. `vidgn.models.I3DResNet`), so
this module holds only what training needs: the loss, the optimizer recipe, the LR schedule and the
metrics. Defaults follow the Non-local I3D recipe that the GN paper's Kinetics runs use
(arXiv 1711.07971): SGD, momentum 0.9 (Nesterov in the official code), weight decay 1e-4 with none on
norm/bias parameters, LR 0.01 per 64 clips, divided by 10 at 37.5% and 75% of training.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from vidgn.evaluation.aggregate import ViewOutputs, compute_metrics
from vidgn.evaluation.report import write_predictions, write_summary
from vidgn.training.distributed import set_sync_bn_process_group
from vidgn.training.optim import param_groups
from vidgn.training.schedule import Schedule, lr_factor, scaled_lr


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss is NaN or infinite."""


class NoValidationScores(RuntimeError):
    """No video of the validation list could be scored: there is nothing to select checkpoints by."""


class CheckpointMismatch(ValueError):
    """A checkpoint from a network that differs from the configured one (e.g. another norm)."""


def _norm_family(norm: str) -> str:
    # BN variants share one state dict layout (weights + running statistics), GN/LN/IN another.
    return "bn" if norm in ("bn", "sync_bn", "frozen_bn") else "gn"


def _norm_of_state_dict(state: dict[str, Any]) -> str | None:
    """'bn' when the checkpoint has BN running statistics, 'gn' when it has norm weights without."""
    keys = list(state)
    if any(k.endswith("running_mean") for k in keys):
        return "bn"
    if any(".norm" in k and k.endswith(".weight") for k in keys):
        return "gn"
    return None


class VideoClassifier(L.LightningModule):
    def __init__(
        self,
        network: nn.Module,
        lr: float = 0.01,
        lr_reference_batch: int = 64,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 1e-4,
        norm_bias_decay: bool = False,
        schedule: Schedule = "step",
        lr_milestones: list[float] = [0.375, 0.75],  # noqa: B006 - jsonargparse needs a plain default
        lr_gamma: float = 0.1,
        warmup_fraction: float = 0.0,
        warmup_start_factor: float = 0.1,
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        compile: bool = False,
        eval_output_dir: Optional[str] = None,
    ):
        """
        Args:
            network: the video network, `(B, 3, T, H, W) -> (B, num_classes)` logits.
            lr: learning rate for `lr_reference_batch` clips per iteration; scaled linearly by the
                real total batch = clips_per_gpu x devices x nodes x accumulate_grad_batches.
            lr_reference_batch: the batch `lr` is given for (64 = 8 GPUs x 8 clips in the paper).
            momentum: SGD momentum.
            nesterov: Nesterov momentum (the official Non-local code uses it).
            weight_decay: L2 weight decay.
            norm_bias_decay: also decay norm weights and biases (off in the Non-local code).
            schedule: 'step' (x`lr_gamma` at `lr_milestones`), 'cosine' or 'constant'; stepped per iteration.
            lr_milestones: step schedule milestones as fractions of all training iterations
                (150k and 300k of 400k in the Non-local schedule).
            lr_gamma: step schedule decay factor.
            warmup_fraction: fraction of training iterations with linear warm-up.
            warmup_start_factor: LR factor at the first warm-up step.
            label_smoothing: cross-entropy label smoothing.
            channels_last: run the network and its inputs in the channels_last_3d memory format (the
                collated batch's own layout: no copy from the loader to the first conv).
            compile: wrap the network with torch.compile.
            eval_output_dir: where `test`/`predict` write predictions and the JSON summary
                (default: the trainer's log directory, i.e. the run directory).
        """
        super().__init__()
        problems = [f"model.{name} must be > 0, got {value}" for name, value in
                    (("lr", lr), ("lr_reference_batch", lr_reference_batch)) if not value > 0]
        problems += [f"model.{name} must be >= 0, got {value}" for name, value in
                     (("weight_decay", weight_decay), ("momentum", momentum)) if not value >= 0]
        if problems:
            raise ValueError("unusable optimizer settings:\n  " + "\n  ".join(problems))
        self.save_hyperparameters(ignore=["network"])
        self.network = network
        self.train_top1 = MulticlassAccuracy(num_classes=self._num_classes(), top_k=1)
        self.val_top1 = MulticlassAccuracy(num_classes=self._num_classes(), top_k=1)
        self.val_top5 = MulticlassAccuracy(num_classes=self._num_classes(), top_k=min(5, self._num_classes()))
        self._views: list[ViewOutputs] = []
        self._val_scored = 0  # validation clips scored this epoch
        self.loaded_checkpoint: dict[str, Any] | None = None  # what `vidgn test` scores
        self.incomplete_evaluation = False  # more than data.max_bad_fraction left out

    def _num_classes(self) -> int:
        num = getattr(self.network, "num_classes", None)
        if num is None:  # any classifier network: the width of its last linear layer
            linears = [m for m in self.network.modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise ValueError("the network must expose `num_classes` or end in an nn.Linear classifier")
            num = linears[-1].out_features
        return int(num)

    # ---- model -------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.hparams.channels_last:
            self.network.to(memory_format=torch.channels_last_3d)
        if self.hparams.compile:
            # In place (nn.Module.compile): parameter names, hence checkpoints, stay those of the
            # plain network, so a compiled run's checkpoint loads without compile and vice versa.
            self.network.compile()

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (B, 3, T, H, W) -> (B, C)
        return self.network(self.to_network_layout(video))

    def to_network_layout(self, video: torch.Tensor) -> torch.Tensor:
        """The batch in the memory layout the network runs in: channels_last_3d with `channels_last`,
        the standard layout otherwise. The collated batch, and so the normalised one, is already
        channels_last_3d, so with `channels_last` this is free; without, it is the one copy that
        `normalize` used to make."""
        fmt = torch.channels_last_3d if self.hparams.channels_last else torch.contiguous_format
        return video.contiguous(memory_format=fmt)  # (B, 3, T, H, W)

    # ---- training ----------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch["video"])
        loss = F.cross_entropy(logits, batch["label"], label_smoothing=self.hparams.label_smoothing)
        if not torch.isfinite(loss):
            failed = getattr(self.trainer.datamodule, "last_batch_replaced", 0)
            data_first = (f"{failed} videos failed to decode while this batch of {len(batch['label'])} clips was put "
                          "together (each replaced by another): check the data first (vidgn check-videos on "
                          "data.train_list). " if 2 * failed >= len(batch["label"]) else "")
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at global step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}). Stopping. {data_first}Lower model.lr, add "
                "warm-up (model.warmup_fraction), or check the input videos (vidgn check-videos); resume from the "
                "last good checkpoint with --ckpt_path."
            )
        self.train_top1(logits.detach(), batch["label"])
        batch_size = len(batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log("train/top1", self.train_top1, on_step=True, on_epoch=True, batch_size=batch_size)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if len(batch["label"]) == 0:  # every video of this batch failed to decode
            return
        logits = self(batch["video"])
        batch_size = len(batch["label"])
        self._val_scored += batch_size
        self.val_top1(logits, batch["label"])
        self.val_top5(logits, batch["label"])
        self.log("val/loss", F.cross_entropy(logits, batch["label"]), sync_dist=True, batch_size=batch_size)
        self.log("val/top1", self.val_top1, prog_bar=True, batch_size=batch_size)
        self.log("val/top5", self.val_top5, batch_size=batch_size)

    def on_validation_epoch_start(self) -> None:
        self._val_scored = 0

    def on_validation_epoch_end(self) -> None:
        # Videos that failed to decode were left out of the val metrics: say how many (their paths
        # and reasons are in the log, once each).
        datamodule = self.trainer.datamodule
        scored = self._val_scored
        if self.trainer.world_size > 1:
            scored = int(self.trainer.strategy.reduce(torch.tensor(float(scored), device=self.device), reduce_op="sum"))
        if scored == 0 and datamodule is not None and hasattr(datamodule, "lists"):
            raise NoValidationScores(
                f"no video of the validation list {datamodule.lists['val']} could be decoded in this validation "
                f"epoch, so there is no val/top1 to select checkpoints by. Check it with `vidgn check-videos "
                f"{datamodule.lists['val']} --data-root {datamodule.data_root}`.")
        if datamodule is not None and hasattr(datamodule, "bad_count"):
            self.log("val/num_left_out", float(datamodule.bad_count("val")), reduce_fx="sum", sync_dist=True)
            if self.trainer.state.fn == "validate":  # `vidgn validate` is an evaluation: partial results say so
                left, total = datamodule.bad_count("val") * self.trainer.world_size, len(datamodule.entries("val"))
                if left > datamodule.max_bad_fraction * total:
                    self.incomplete_evaluation = True
                    print(f"\n*** PARTIAL RESULT: about {left} of {total} videos of {datamodule.lists['val']} were "
                          f"left out (more than data.max_bad_fraction={datamodule.max_bad_fraction}). ***\n",
                          file=sys.stderr, flush=True)

    # ---- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vidgn_network"] = {"class": type(self.network).__qualname__,
                                       "norm": getattr(self.network, "norm_name", None)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = (checkpoint.get("vidgn_network") or {}).get("norm")
        ours = getattr(self.network, "norm_name", None)
        if saved and ours:
            saved_norm, mismatch = saved, saved != ours
        else:  # checkpoints from before the norm was recorded: BN and GN differ in their keys
            saved_norm = _norm_of_state_dict(checkpoint.get("state_dict", {}))
            mismatch = bool(saved_norm and ours and _norm_family(saved_norm) != _norm_family(ours))
        if mismatch:
            raise CheckpointMismatch(
                f"the checkpoint was trained with norm={saved_norm}, but this config builds norm={ours}: "
                "evaluate it with the configs of its run (the run directory's config.yaml), or set "
                f"--model.network.init_args.norm {saved_norm}")
        self.loaded_checkpoint = {"epoch": checkpoint.get("epoch"), "global_step": checkpoint.get("global_step")}

    # ---- clip- and video-level evaluation ------------------------------------------------------
    def on_test_epoch_start(self) -> None:
        self._views = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._collect(batch)

    def on_test_epoch_end(self) -> None:
        self._report("test")

    def on_predict_epoch_start(self) -> None:
        self._views = []

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._collect(batch)

    def on_predict_epoch_end(self) -> None:
        self._report("predict")

    def _collect(self, batch: dict[str, Any]) -> torch.Tensor:
        if len(batch["label"]) == 0:
            return torch.zeros(0, self._num_classes())
        logits = self(batch["video"]).float()
        fields = ("label", "video_index", "clip_index", "crop_index")
        self._views.append(ViewOutputs(logits.cpu(), *(batch[f].cpu() for f in fields)))
        return logits

    def _report(self, split: str) -> None:
        """Gather every rank's views, aggregate into videos, log metrics, write the report (rank 0)."""
        num_classes = self._num_classes()
        views = ViewOutputs.cat(self._views, num_classes)
        datamodule = self.trainer.datamodule
        bad = list(datamodule.bad_videos(split)) if datamodule is not None else []
        if self.trainer.world_size > 1:
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, (views, bad))
            views = ViewOutputs.cat([g[0] for g in gathered], num_classes)
            bad = [b for g in gathered for b in g[1]]
        left_out = {int(b.video_index): {"path": b.path, "reason": b.reason} for b in bad}
        summary, videos = compute_metrics(views, num_classes, exclude=set(left_out))
        if split == "test":
            for name in ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_accuracy"):
                self.log(f"test/{name}", getattr(summary, name), rank_zero_only=True)
            self.log("test/num_videos", float(summary.num_videos), rank_zero_only=True)
            self.log("test/num_left_out", float(len(left_out)), rank_zero_only=True)
        if self.trainer.is_global_zero and datamodule is not None:
            out_dir = Path(self.hparams.eval_output_dir or self.trainer.log_dir or self.trainer.default_root_dir)
            entries = datamodule.entries(split)
            write_predictions(out_dir / f"{split}_predictions.csv", videos, [e.path for e in entries],
                              datamodule.classes)
            checkpoint = {"path": str(self.trainer.ckpt_path) if self.trainer.ckpt_path else None,
                          **(self.loaded_checkpoint or {})}
            limit = datamodule.max_bad_fraction
            complete = len(left_out) <= limit * len(entries)
            write_summary(
                out_dir / f"{split}_summary.json", summary, [left_out[k] for k in sorted(left_out)],
                split=split, num_videos_in_list=len(entries), checkpoint=checkpoint, complete=complete,
                max_bad_fraction=limit,
            )
            print(f"vidgn {split}: scored {checkpoint['path']} (epoch {checkpoint.get('epoch')}, global step "
                  f"{checkpoint.get('global_step')}); report in {out_dir}", flush=True)
            if not complete:
                self.incomplete_evaluation = True
                print(f"\n*** PARTIAL RESULT: {len(left_out)} of {len(entries)} videos of {datamodule.lists[split]} "
                      f"were left out (more than data.max_bad_fraction={limit}); {split}_summary.json lists them. "
                      "These numbers are not comparable with a full evaluation. ***\n", file=sys.stderr, flush=True)
        self._views = []

    # ---- optimisation ----------------------------------------------------------------------------
    def total_batch(self) -> int:
        """Clips per optimizer step over all processes: the batch the LR is scaled by."""
        datamodule = self.trainer.datamodule
        per_process = getattr(datamodule, "clips_per_gpu", None)
        if per_process is None:
            per_process = self.trainer.train_dataloader.batch_size
        return int(per_process) * self.trainer.world_size * self.trainer.accumulate_grad_batches

    def on_train_start(self) -> None:
        # Lightning 2.6 builds the training loader for `estimated_stepping_batches` (in
        # configure_optimizers) before it restores a checkpoint, and then never hands that loader
        # its saved position: a resumed run would restart the epoch from its first batch. Hand it
        # over here and start the epoch's iterator again from there (tests/test_training.py checks
        # that a resumed run sees the same clips as an uninterrupted one).
        fit_loop = self.trainer.fit_loop
        if getattr(fit_loop, "_combined_loader_states_to_load", None):
            fit_loop._load_combined_loader_states()
            iter(fit_loop._data_fetcher)

    def setup(self, stage: str) -> None:
        # DDP has started by now (the network was built before it): make the SyncBN groups, once.
        if not getattr(self, "_sync_bn_groups_made", False):
            set_sync_bn_process_group(self.network, getattr(self.network, "sync_bn_group_size", None))
            self._sync_bn_groups_made = True

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        lr = scaled_lr(hp.lr, self.total_batch(), hp.lr_reference_batch)
        groups = param_groups(self.network, weight_decay=hp.weight_decay, norm_bias_decay=hp.norm_bias_decay)
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=hp.momentum, nesterov=hp.nesterov)
        total = int(self.trainer.estimated_stepping_batches)
        warmup = round(hp.warmup_fraction * total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: lr_factor(step, total, hp.schedule, hp.lr_milestones, hp.lr_gamma, warmup,
                                   hp.warmup_start_factor),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
