"""Two file-system answers the command-line tools share: can a file be created in this folder, and
write a text file so that it is whole or untouched (never half-written, e.g. by a full disk or Ctrl-C)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cannot_create_in(folder: str | os.PathLike) -> str | None:
    """None if a file can be created in `folder`, else why not (the OS's words).

    Tried by creating a file and removing it: permission bits, read-only mounts and pseudo file
    systems (/proc) all answer truly that way, where os.access does not (for root, or for mounts).
    """
    try:
        fd, probe = tempfile.mkstemp(prefix=".vidgn-probe.", dir=folder)
    except OSError as e:
        return e.strerror or str(e)
    os.close(fd)
    os.unlink(probe)
    return None


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` via `.NAME.<pid>.part` beside it, renamed when complete.

    On any failure the temporary file is removed and `path` is as it was; the error is raised.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
