"""Turn what the user points at (a folder or a .zip) into a folder to scan."""

from __future__ import annotations

from pathlib import Path

from tlcore.data.archive import extract_zip
from tlcore.errors import DatasetError
from tlcore.core.paths import user_path

__all__ = ["resolve_source"]


def resolve_source(path: str | Path) -> Path:
    """A folder is used where it is (never written to); a zip is unpacked into the data folder.

    Args:
        path: a folder or a .zip.

    Returns:
        The folder to read.

    Raises:
        DatasetError: the path does not exist, or the zip cannot be used.
    """
    source = user_path(path)
    if source.is_dir():
        return source
    if not source.exists():
        raise DatasetError(f"no such folder or zip: {source}", "check the path, or choose the bundled sample_data")
    if source.suffix.lower() == ".zip":
        return extract_zip(source)
    raise DatasetError(
        f"{source} is a file, not a folder or .zip",
        "give a folder with one sub-folder per class, or a .zip of one",
    )
