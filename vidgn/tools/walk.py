"""Walking a folder of videos: symlinked folders are followed (datasets are often assembled from
links), each real folder once, so a link back up the tree (`sub/loop -> ..`) is not walked again and
again and two links to one folder do not list its videos twice."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator


def walk_files(root: str | Path) -> Iterator[tuple[str, str]]:
    """(path relative to `root`, '/'-separated; file name) of every file under `root`, folders in
    sorted order."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:  # reached again through a link
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        for name in filenames:
            yield os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"), name
