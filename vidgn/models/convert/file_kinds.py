"""What a checkpoint file is, from its first bytes, so that each reader gets only its own format
and anything else is refused with what the file looks like (not with a loader's error about
another format: torch's, for instance, suggests weights_only=False, unsafe advice for a file that
is not a checkpoint at all).

    torch.save (default since 1.6)   a zip archive: b"PK\\x03\\x04"
    torch.save (legacy, pre-1.6)     a pickle (b"\\x80" + protocol) of torch's magic number first
    torch.save (0.1-0.3)             a tar archive: b"ustar" at offset 257
    safetensors                      8-byte little-endian header length N, then N bytes of JSON "{..."
    other pickles (Detectron .pkl)   b"\\x80" + protocol 2-5; Python 2's protocol 0/1 are not recognised
                                     here (the Detectron reader still tries them)
"""
from __future__ import annotations

import struct
from pathlib import Path

from torch.serialization import MAGIC_NUMBER

from vidgn.models.convert.errors import ConvertError

TORCH_ZIP, TORCH_LEGACY, TORCH_TAR = "torch zip", "torch legacy", "torch tar"
SAFETENSORS, PICKLE = "safetensors", "pickle"
TORCH_KINDS = (TORCH_ZIP, TORCH_LEGACY, TORCH_TAR)
_HEAD = 512                    # covers the tar magic at 257
# torch's legacy format starts with pickle.dump(MAGIC_NUMBER): LONG1 opcode, 10 bytes, little-endian.
_TORCH_MAGIC = b"\x8a\x0a" + MAGIC_NUMBER.to_bytes(10, "little")

# What each --from reads, for messages that send the user to the right one.
EXPECTS = {
    "detectron": "a Detectron weights pickle (R-50-GN.pkl)",
    "timm": "timm's model.safetensors or pytorch_model.bin, or a checkpoint written by timm's train.py (.pth.tar)",
    "torchvision": "a torch.save state dict (resnet50-0676ba61.pth)",
}

# Files given by mistake, recognised to say what they are: (offset, magic, description).
_OTHER = (
    (4, b"ftyp", "an MP4/MOV video"),
    (0, b"\x1f\x8b", "a gzip archive: decompress it first"),
    (257, b"ustar", "a tar archive: unpack it first"),
    (0, b"\x89PNG", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"\x93NUMPY", "a numpy .npy array"),
    (0, b"\x89HDF", "an HDF5 file (Keras/TensorFlow weights?)"),
    (0, b"version https://git-lfs", "a Git LFS pointer, not the file itself: fetch it (git lfs pull)"),
)


def check_input(path: Path) -> None:
    if path.is_dir():
        raise ConvertError(f"{path}: is a folder; IN is the checkpoint file in it (e.g. model.safetensors)")
    if not path.is_file():
        raise ConvertError(f"{path}: no such file")


def read_head(path: Path) -> tuple[bytes, int]:
    """(the first bytes, the file size)."""
    with open(path, "rb") as f:
        return f.read(_HEAD), path.stat().st_size


def file_kind(head: bytes, size: int) -> str | None:
    """One of the kinds above, or None: not a checkpoint format this package reads."""
    if head.startswith(b"PK\x03\x04"):
        return TORCH_ZIP
    if head[257:262] == b"ustar":
        return TORCH_TAR
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        # protocol 4+ may put a FRAME opcode (9 bytes) before the magic number
        return TORCH_LEGACY if _TORCH_MAGIC in head[:32] else PICKLE
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 8 + n <= size:
            return SAFETENSORS
    return None


def describe(head: bytes, size: int) -> str:
    """What a file of no known checkpoint kind looks like, for the error message."""
    if size == 0:
        return "it is empty"
    start = f"it starts with {head[:16]!r}"
    for offset, magic, what in _OTHER:
        if head[offset:offset + len(magic)] == magic:
            return f"{start}: {what}"
    text = head[:64].decode("utf-8", errors="replace")
    # U+FFFD: bytes that are not UTF-8 (the last character may be one cut at 64 bytes)
    if not all((c.isprintable() and c != "\ufffd") or c in "\r\n\t" for c in text[:-1]):
        return start
    if text.lstrip().lower().startswith(("<!doctype html", "<html")):
        return f"{start}: a web page (a failed or login-gated download?)"
    return f"{start}: text"


def not_a_checkpoint(path: Path, head: bytes, size: int) -> str:
    """The message for a file that no --from reads: what it looks like and what each --from expects."""
    expects = "; ".join(f"--from {name} expects {what}" for name, what in EXPECTS.items())
    return (f"{path}: not a PyTorch checkpoint, a Detectron pickle or a safetensors file "
            f"({describe(head, size)}); {expects}")
