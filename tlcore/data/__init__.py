"""Data sets: find classes, check every file, split reproducibly.

`scan(path)` accepts a folder or a zip; `make_split(report)` writes down the split
that every later run reuses.
"""

from __future__ import annotations

from pathlib import Path

from tlcore.data.archive import ZipLimits, extract_zip
from tlcore.data.images import ImageReadError, decode_image, load_rgb, to_rgb
from tlcore.data.layout import discover, is_hidden
from tlcore.data.scan import ScanReport, scan_dataset
from tlcore.data.source import resolve_source
from tlcore.data.split import SplitManifest, default_manifest_path, make_split

__all__ = [
    "ImageReadError",
    "ScanReport",
    "SplitManifest",
    "ZipLimits",
    "decode_image",
    "default_manifest_path",
    "discover",
    "extract_zip",
    "is_hidden",
    "load_rgb",
    "make_split",
    "resolve_source",
    "scan",
    "scan_dataset",
    "to_rgb",
]


def scan(path: str | Path, *, max_file_mb: float | None = None) -> ScanReport:
    """Scan a folder or a zip of one: every file checked, a report of what can be used and what not.

    Args:
        path: a folder with one sub-folder per class (or train/val/test folders), or a .zip of one.
        max_file_mb: files larger than this are skipped as `too_large` without being read
            (default 64, or `TRANSFERLAB_MAX_FILE_MB`).

    Raises `DatasetError` when the path or its layout cannot be used; problems with single files
    land in the report instead (`skipped`, `errors`, `warnings`).
    """
    return scan_dataset(resolve_source(path), max_bytes=int(max_file_mb * 2**20) if max_file_mb else None)
