"""Read a PyTorch state dict from .pth / .bin (torch.save) or .safetensors (timm's Hugging Face files).

torch files are loaded with weights_only=True (tensors and containers only, no pickled code).
safetensors files are parsed here from the format's specification (huggingface/safetensors
README, "Format"): 8 bytes little-endian u64 N, N bytes of JSON {name: {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {...}}, then the little-endian tensor bytes, offsets
relative to the end of the header. A few lines, so that timm files load without the `safetensors`
package (not a vidgn dependency).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

from vidgn.models.convert.errors import ConvertError

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
# Wrappers the usual training scripts put around a state dict (timm's train.py: state_dict /
# state_dict_ema; Lightning and others: state_dict / model).
_WRAPPERS = ("state_dict", "model", "model_state", "state_dict_ema")


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    raw = path.read_bytes()
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
        if end - begin != count * torch.empty((), dtype=dtype).element_size() or end > len(data):
            raise ConvertError(f"{path}: safetensors entry {name!r}: {end - begin} bytes do not hold {shape} {dtype}")
        flat = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if count else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(shape)
    return out


def read_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """name -> tensor from a torch or safetensors file, wrappers and DDP's "module." removed."""
    path = Path(path)
    if not path.is_file():
        raise ConvertError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        obj: object = read_safetensors(path)
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any load failure means "not a torch state dict"
            raise ConvertError(
                f"{path}: not loadable with torch.load(weights_only=True) ({str(e).splitlines()[0]}); expected "
                "a state dict saved by torch.save (.pth/.bin) or a .safetensors file") from None
    if isinstance(obj, dict):
        for key in _WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConvertError(f"{path}: expected a ResNet state dict (name -> tensor), got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}
