"""Detectron (Caffe2) ResNet blobs <-> torchvision ResNet keys, for GN ResNets such as R-50-GN.pkl.

The file is a Python 2 pickle of {"blobs": {name: numpy array}, ...} (older files: the blob dict
itself); Detectron reads it with pickle.load(encoding="latin1") (detectron/utils/io.py,
detectron/utils/net.py initialize_gpu_from_weights_file). Names follow detectron/modeling/ResNet.py
(basic_gn_stem, bottleneck_gn_transformation, basic_gn_shortcut) and ConvGN in
detectron/modeling/detector.py (conv blob prefix + "_w", GN scale/bias prefix + "_gn_s"/"_gn_b"):

    conv1_w, conv1_gn_{s,b}                   -> conv1.weight, bn1.{weight,bias}
    res{S}_{J}_branch2{a,b,c}_w               -> layer{S-1}.{J}.conv{1,2,3}.weight
    res{S}_{J}_branch2{a,b,c}_gn_{s,b}        -> layer{S-1}.{J}.bn{1,2,3}.{weight,bias}
    res{S}_{J}_branch1_w, _branch1_gn_{s,b}   -> layer{S-1}.{J}.downsample.{0,1}.*
    pred_{w,b} (fc1000_{w,b} in some files)   -> fc.{weight,bias}
    *_momentum                                 SGD momentum, skipped

The GN models were trained with stride on the 3x3 conv (configs/04_2018_gn_baselines:
STRIDE_1X1: False), torchvision's layout. Detectron's BN ResNets (MSRA R-50.pkl) are refused: they
are AffineChannel ("_bn_s"/"_bn_b", no statistics) with the stride on the 1x1 conv (STRIDE_1X1
True for MSRA models), a different network from the one vidgn inflates into.

The file is read with a restricted unpickler that rebuilds only numpy arrays, dicts and strings:
no code in the file runs.
"""
from __future__ import annotations

import codecs
import io
import pickle
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from vidgn.models.convert.errors import ConvertError
from vidgn.models.convert.file_kinds import (
    PICKLE, SAFETENSORS, TORCH_LEGACY, TORCH_ZIP, check_input, file_kind, not_a_checkpoint,
)

_ABC = {"a": "1", "b": "2", "c": "3"}
_BLOCK = re.compile(r"^res(\d)_(\d+)_branch(1|2[abc])_(w|gn_s|gn_b)$")
_FC = re.compile(r"^(pred|fc1000)_([wb])$")
_PARAM = {"w": "weight", "gn_s": "weight", "gn_b": "bias"}
# AffineChannel blobs of Detectron's BN ResNets: res_conv1_bn_s, res2_0_branch2a_bn_b, ...
_AFFINE = re.compile(r"_bn_[sb]$")

# What a py2 or py3 pickle of a dict of numpy arrays refers to. numpy.core was renamed numpy._core
# in numpy 2; both spellings occur in files, so both resolve to the running numpy's functions.
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_SCALAR = np.float32(0).__reduce__()[0]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set, ("__builtin__", "set"): set,
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(text, "latin1"): a pure function.
    ("_codecs", "encode"): codecs.encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are expected") from None


def read_detectron_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """The blob dict of a Detectron weights file (name -> numpy array)."""
    path = Path(path)
    hint = ("expected a Detectron weights pickle ({'blobs': {name: array}}), e.g. "
            "ImageNetPretrained/47261647/R-50-GN.pkl from the Detectron model zoo")
    check_input(path)
    raw = path.read_bytes()
    kind = file_kind(raw[:512], len(raw))
    if kind in (TORCH_ZIP, TORCH_LEGACY, SAFETENSORS):
        raise ConvertError(f"{path}: a {'safetensors' if kind == SAFETENSORS else 'torch.save'} file, not a Detectron "
                           "pickle; convert it with --from timm or --from torchvision (whichever it came from)")
    try:
        data = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure is "not this format"
        if kind != PICKLE:  # not even a pickle (Python 2's text protocols are tried above all the same)
            raise ConvertError(not_a_checkpoint(path, raw[:512], len(raw))) from None
        raise ConvertError(f"{path}: not readable as a Detectron pickle ({e}); {hint}") from None
    if isinstance(data, dict) and isinstance(data.get("blobs"), dict):
        data = data["blobs"]                # newer files; "cfg" (a YAML string) may sit beside it
    if not isinstance(data, dict) or not data:
        raise ConvertError(f"{path}: holds {type(data).__name__}, not a dict of blobs; {hint}")
    arrays = {str(k): v for k, v in data.items() if isinstance(v, np.ndarray)}
    others = sorted(str(k) for k, v in data.items() if not isinstance(v, np.ndarray))
    if not arrays:
        raise ConvertError(f"{path}: no numpy arrays among its entries ({', '.join(others[:5])}); {hint}")
    if others:
        raise ConvertError(f"{path}: entries that are not arrays: {', '.join(others[:5])}; {hint}")
    return arrays


def _torchvision_name(blob: str) -> str | None:
    if blob == "conv1_w":
        return "conv1.weight"
    if blob in ("conv1_gn_s", "conv1_gn_b"):
        return "bn1." + _PARAM[blob[-4:]]
    m = _BLOCK.match(blob)
    if m:
        stage, block, branch, param = int(m[1]), m[2], m[3], m[4]
        prefix = f"layer{stage - 1}.{block}."
        if branch == "1":
            return prefix + ("downsample.0.weight" if param == "w" else f"downsample.1.{_PARAM[param]}")
        n = _ABC[branch[1]]
        return prefix + (f"conv{n}.weight" if param == "w" else f"bn{n}.{_PARAM[param]}")
    m = _FC.match(blob)
    if m:
        return "fc." + ("weight" if m[2] == "w" else "bias")
    return None


def detectron_to_torchvision(blobs: dict[str, np.ndarray], *,
                             path: str | Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(torchvision-layout state dict, skipped blob names). Unknown blobs are an error."""
    affine = sorted(b for b in blobs if _AFFINE.search(b) and not b.endswith("_momentum"))
    if affine:
        raise ConvertError(
            f"{path}: Detectron BN ResNet (AffineChannel blobs {', '.join(affine[:3])}, ...): its BN is "
            "folded into a per-channel affine with no statistics and, in the MSRA models, the stride sits "
            "on the 1x1 conv, unlike the torchvision layout vidgn inflates; for BN use torchvision's "
            "resnet50 weights (vidgn convert-2d --from torchvision)")
    state: dict[str, torch.Tensor] = {}
    skipped, unknown = [], []
    for blob, arr in sorted(blobs.items()):
        if blob.endswith("_momentum"):
            skipped.append(blob)
            continue
        name = _torchvision_name(blob)
        if name is None:
            unknown.append(blob)
            continue
        state[name] = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True))
    if unknown:
        raise ConvertError(
            f"{path}: blobs that are not part of a GN ResNet classifier: {', '.join(unknown[:8])}"
            + (" ..." if len(unknown) > 8 else "")
            + "; convert-2d takes Detectron's ImageNet-pretrained GN ResNets (R-50-GN.pkl, R-101-GN.pkl), "
            "not detection models")
    return state, skipped


_TV_STEM = {"conv1.weight": "conv1_w", "bn1.weight": "conv1_gn_s", "bn1.bias": "conv1_gn_b",
            "fc.weight": "pred_w", "fc.bias": "pred_b"}
_TV_BLOCK = re.compile(r"^layer(\d)\.(\d+)\.(?:(conv|bn)(\d)|downsample\.([01]))\.(weight|bias)$")


def detectron_blob_name(key: str) -> str | None:
    if key in _TV_STEM:
        return _TV_STEM[key]
    m = _TV_BLOCK.match(key)
    if not m:
        return None
    prefix = f"res{int(m[1]) + 1}_{m[2]}_"
    if m[5] is not None:                                    # downsample.0 conv, .1 norm
        branch, is_conv = "branch1", m[5] == "0"
    else:
        branch, is_conv = "branch2" + "abc"[int(m[4]) - 1], m[3] == "conv"
    return prefix + branch + ("_w" if is_conv else ("_gn_s" if m[6] == "weight" else "_gn_b"))


def torchvision_to_detectron(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The inverse naming (GN ResNets only), as Detectron saves blobs. Used to write test files in
    Detectron's format; tensors are copied as they are (no input-convention change)."""
    blobs: dict[str, np.ndarray] = {}
    for key, value in state.items():
        name = detectron_blob_name(key)
        if name is None:
            raise ValueError(f"{key}: no Detectron blob name (Detectron GN files have no BN statistics)")
        blobs[name] = value.detach().cpu().numpy().astype(np.float32)
    return blobs
