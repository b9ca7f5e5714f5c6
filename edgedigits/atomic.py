"""Files appear whole or not at all: write to a temporary name in the same folder, then rename."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call write(tmp) for a temporary path beside `path`, then rename it onto `path` (atomic on one
    file system). A crash or Ctrl-C leaves the old file, or none, never half of the new one. The
    temporary name keeps the suffix, for writers that insist on one (`.weights.h5`, `.keras`)."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
