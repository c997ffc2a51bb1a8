"""Read a PyTorch state dict from .pth / .bin / .pth.tar (torch.save) or .safetensors (timm's
Hugging Face files), the format told by the file's first bytes (file_kinds.py), not its name.

torch files are loaded with weights_only=True (tensors and containers only, no pickled code), plus
argparse.Namespace for timm's training checkpoints (_SAFE_GLOBALS).

safetensors files are parsed here from the format's specification (huggingface/safetensors
README, "Format"): 8 bytes little-endian u64 N, N bytes of JSON {name: {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {...}}, then the little-endian tensor bytes, offsets
relative to the end of the header. A few lines, so that timm files load without the `safetensors`
package (not a vidgn dependency).
"""
from __future__ import annotations

import argparse
import json
import re
import struct
from pathlib import Path

import torch

from vidgn.models.convert.errors import ConvertError
from vidgn.models.convert.file_kinds import (
    EXPECTS, PICKLE, SAFETENSORS, TORCH_KINDS, TORCH_LEGACY, TORCH_TAR, check_input, file_kind, not_a_checkpoint,
    read_head,
)

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
# Wrappers the usual training scripts put around a state dict (timm's train.py: state_dict /
# state_dict_ema; Lightning and others: state_dict / model). state_dict comes first: the EMA
# weights are taken only from a file that has nothing else.
_WRAPPERS = ("state_dict", "model", "model_state", "state_dict_ema")
# What timm's train.py saves beside the weights (timm/utils/checkpoint_saver.py, CheckpointSaver._save):
# epoch, arch, version, metric (numbers, strings), optimizer and amp_scaler state dicts (tensors and
# plain containers, which weights_only allows) and args, the argparse.Namespace of its command line.
# Unpickling a Namespace only sets attributes (no code runs), and its values pass the same checks.
_SAFE_GLOBALS = [argparse.Namespace]
_TORCH_EXPECTS = f"--from timm expects {EXPECTS['timm']}; --from torchvision expects {EXPECTS['torchvision']}"


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    raw = path.read_bytes()
    if len(raw) >= 8 and 8 + struct.unpack("<Q", raw[:8])[0] > len(raw):
        raise ConvertError(f"{path}: a safetensors header longer than the file ({len(raw)} bytes): the file is "
                           "cut short (an interrupted download?) or not a safetensors file; download it again")
    try:
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: not a safetensors file (bad header: {e})") from None
    if not isinstance(header, dict):
        raise ConvertError(f"{path}: not a safetensors file (header is not a JSON object)")
    data = memoryview(raw)[8 + n:]
    out: dict[str, torch.Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _ST_DTYPES[info["dtype"]]
            begin, end = info["data_offsets"]
            shape = tuple(info["shape"])
        except (KeyError, TypeError, ValueError):
            raise ConvertError(f"{path}: safetensors entry {name!r} has an unknown dtype or layout: {info}") from None
        count = 1
        for d in shape:
            count *= d
        if end > len(data):
            raise ConvertError(f"{path}: safetensors entry {name!r} ends at byte {end} of the data, which has "
                               f"{len(data)}: the file is cut short (an interrupted download?); download it again")
        if end - begin != count * torch.empty((), dtype=dtype).element_size():
            raise ConvertError(f"{path}: safetensors entry {name!r}: {end - begin} bytes do not hold {shape} {dtype}")
        flat = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if count else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(shape)
    return out


def _load_failure(e: Exception) -> str:
    """torch.load's reason, without its advice to load with weights_only=False (which runs code
    from the file)."""
    text = str(e)
    m = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if m:
        return (f"it holds a pickled {m[1]}, which is not loaded because unpickling it could run code from the "
                "file; save the weights alone (torch.save(model.state_dict(), path)) and convert that")
    m = re.search(r"WeightsUnpickler error:\s*(\S.*)", text)
    line = m[1] if m else next((t.strip() for t in text.splitlines() if t.strip()), type(e).__name__)
    return line if "weights_only" not in line else type(e).__name__


def load_torch_file(path: Path, kind: str, head: bytes) -> object:
    """torch.load, tensors and plain containers only (plus _SAFE_GLOBALS)."""
    if kind == TORCH_LEGACY and head[1] > 2:
        # torch's safe unpickler does not take the FRAME opcode of protocols 4 and 5
        raise ConvertError(f"{path}: a torch.save file in the legacy (pre-1.6) format with pickle protocol "
                           f"{head[1]}, which torch.load cannot read safely; save its state dict again with "
                           "torch.save's defaults and convert that")
    if kind == TORCH_TAR:
        # torch reads this format only with weights_only=False, i.e. by running the file's pickles
        raise ConvertError(f"{path}: a tar archive: an archive to unpack first, or a torch.save file in the format of "
                           "PyTorch 0.1-0.3, which cannot be read without running code from it (save its state dict "
                           "again with a current PyTorch and convert that)")
    try:
        # an open file, not the path: torch 2.x reads a path ending in .safetensors as safetensors
        with open(path, "rb") as f, torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any load failure means "not a usable torch state dict"
        raise ConvertError(f"{path}: a {kind} file that torch.load cannot read as tensors and plain containers "
                           f"({_load_failure(e)}); {_TORCH_EXPECTS}") from None


def _unwrap(obj: object, path: Path, notes: list[str]) -> object:
    if not isinstance(obj, dict):
        return obj
    for key in _WRAPPERS:
        if isinstance(obj.get(key), dict):
            if key == "state_dict" and isinstance(obj.get("state_dict_ema"), dict):
                notes.append(f"{path.name}: a training checkpoint that also holds EMA weights (state_dict_ema); "
                             "converted its state_dict, not the EMA")
            return obj[key]
    return obj


def read_state_file(path: str | Path, notes: list[str] | None = None) -> dict[str, torch.Tensor]:
    """name -> tensor from a torch or safetensors file, wrappers and DDP's "module." removed;
    what the user should know about the choice (e.g. EMA weights left out) is appended to `notes`."""
    path = Path(path)
    check_input(path)
    head, size = read_head(path)
    kind = file_kind(head, size)
    # a safetensors name (any case) and header start, but failing file_kind's size check: read_safetensors
    # says the file is cut short
    if kind == SAFETENSORS or (kind is None and path.suffix.lower() == ".safetensors" and head[8:9] == b"{"):
        obj: object = read_safetensors(path)
    elif kind in TORCH_KINDS:
        obj = load_torch_file(path, kind, head)
    elif kind == PICKLE:
        raise ConvertError(f"{path}: a Python pickle, not a torch.save file (a Detectron .pkl? then use --from "
                           f"detectron); {_TORCH_EXPECTS}")
    else:
        raise ConvertError(not_a_checkpoint(path, head, size))
    obj = _unwrap(obj, path, notes if notes is not None else [])
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConvertError(f"{path}: expected a ResNet state dict (name -> tensor), got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}
