"""Files written as one unit: complete under their final name, or absent."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "clean_partial_writes"]

_TMP_MARK = ".tmp-"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}")


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` then rename tmp to `path`; the temporary file is removed if writing fails."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:  # on disk before it gets its final name
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def clean_partial_writes(folder: str | Path) -> list[Path]:
    """Remove temporary files a killed write left behind (they can be hundreds of MB); returns what went.

    Args:
        folder: the folder to clean (not its sub-folders).

    Returns:
        The files removed.
    """
    folder = Path(folder)
    removed = []
    for leftover in folder.glob(f".*{_TMP_MARK}*") if folder.is_dir() else ():
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed
