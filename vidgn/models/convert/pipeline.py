"""convert_2d: one 2D checkpoint file in a given format -> torchvision-layout state dict for vidgn's
input, with a report; write_state: save it atomically. The command is vidgn/tools/convert_2d.py."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from vidgn.models.convert.convention import SOURCES, VIDGN_DEFAULT, FoldReport, InputConvention, fold_input_convention
from vidgn.models.convert.detectron import detectron_blob_name, detectron_to_torchvision, read_detectron_pickle
from vidgn.models.convert.errors import ConvertError
from vidgn.models.convert.layout import ResNetLayout, check_resnet_layout
from vidgn.models.convert.state_files import read_state_file
from vidgn.tools.files import cannot_create_in


@dataclass
class ConvertReport:
    layout: ResNetLayout
    source: InputConvention
    target: InputConvention
    fold: FoldReport
    tensors: int
    skipped: list[str] = field(default_factory=list)   # e.g. Detectron's *_momentum blobs
    notes: list[str] = field(default_factory=list)     # e.g. a checkpoint's EMA weights left out

    def summary(self) -> str:
        lines = [
            f"{self.layout.arch}, {self.layout.norm.upper()}"
            + (f", fc {self.layout.num_classes} classes" if self.layout.num_classes else ", no fc")
            + f": {self.tensors} tensors converted",
            f"source input: {self.source.describe()}",
            f"target input: {self.target.describe()}",
            self.fold.summary(),
        ]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} blobs: " + ", ".join(self.skipped[:4])
                         + (" ..." if len(self.skipped) > 4 else ""))
        lines.extend(self.notes)
        if self.layout.norm == "gn":
            lines.append("GroupNorm: 32 groups, eps 1e-5 assumed (not stored in the file); vidgn's norm='gn' "
                         "uses the same (groups=32, norm_eps=1e-5)")
        return "\n".join(lines)


def convert_2d(path: str | Path, *, source: str, target: InputConvention = VIDGN_DEFAULT,
               mean_from_source: bool = False) -> tuple[dict[str, torch.Tensor], ConvertReport]:
    """Read `path` in `source`'s format; return the torchvision-layout state dict for `target`'s input."""
    convention = SOURCES[source]
    skipped: list[str] = []
    notes: list[str] = []
    if source == "detectron":
        state, skipped = detectron_to_torchvision(read_detectron_pickle(path), path=path)
        layout = check_resnet_layout(state, path=path, display=lambda k: detectron_blob_name(k) or k)
    else:
        state = read_state_file(path, notes)
        layout = check_resnet_layout(state, path=path)
    if mean_from_source:
        mean, _ = convention.rgb_unit()
        target = replace(target, name=target.name + " (source mean)", mean=tuple(mean.tolist()))
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    for k, v in state.items():
        if v.is_floating_point():
            state[k] = v.float()            # vidgn trains in float32 (bf16 autocast on top)
    fold = fold_input_convention(state, source=convention, target=target)
    return state, ConvertReport(layout=layout, source=convention, target=target, fold=fold,
                                tensors=len(state), skipped=skipped, notes=notes)


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_output(out: Path, *, overwrite: bool) -> None:
    """Before the (slow) conversion: OUT is a file that can be written, its folder exists or can be
    made, and an existing OUT is replaced only with --overwrite."""
    if out.is_dir():
        raise ConvertError(f"{out}: is a folder; OUT is the file to write, e.g. {out / 'resnet50_imagenet.pth'}")
    if out.exists() and not overwrite:
        raise ConvertError(f"{out}: exists; pass --overwrite to replace it, or choose another OUT")
    folder = _nearest_existing(out.parent)
    if not folder.is_dir():
        raise ConvertError(f"{out}: cannot be written: {folder} is a file, not a folder; choose another OUT")
    why = cannot_create_in(folder)
    if why is not None:
        raise ConvertError(f"{out}: cannot be written: no file can be created in {folder} ({why}); "
                           "choose another OUT, or a folder you can write to")


def write_state(state: dict[str, torch.Tensor], out: Path, *, overwrite: bool) -> None:
    """torch.save to a temporary file beside `out`, then rename: `out` is never half-written."""
    if out.exists() and not overwrite:
        raise ConvertError(f"{out}: exists; pass --overwrite to replace it, or choose another OUT")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    except OSError as e:   # check_output passed, but the folder changed since, or mkdir is refused
        raise ConvertError(f"{out}: cannot be written ({e}); choose another OUT") from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)     # mkstemp creates 0600; give OUT the usual permissions
        os.replace(tmp, out)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, (OSError, RuntimeError)):  # e.g. a full disk (torch.save's writer raises RuntimeError)
            raise ConvertError(f"{out}: writing failed ({e}); OUT is as it was; free space or choose "
                               "another OUT") from None
        raise
