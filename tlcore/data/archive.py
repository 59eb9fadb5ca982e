"""Unpack a user's zip into the project's data folder without trusting a byte of it.

Zips arrive from colleagues and uploads: entries may point outside the target
(`../`, absolute paths), declare small sizes and inflate to gigabytes, or be
symlinks. Each of these is refused or skipped; a half-written extraction is
never left where a later run would find it.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tlcore.data.layout import is_hidden
from tlcore.errors import DatasetError
from tlcore.paths import data_home

__all__ = ["ZipLimits", "extract_zip"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ZipLimits:
    max_files: int = 100_000
    max_total_bytes: int = 8 * 2**30
    max_ratio: float = 200.0  # photos barely compress; a 200x entry is a bomb, not a JPEG
    ratio_floor_bytes: int = 16 * 2**20  # small entries (text, tiny PNGs) may compress well


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The entry's relative path, or None for folders; raises for paths that leave the target."""
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if normalised.startswith("/") or (path.parts and ":" in path.parts[0]) or ".." in path.parts:
        raise DatasetError(
            f"unsafe zip: entry '{name}' points outside the extraction folder",
            "re-create the zip from the data set folder itself",
        )
    parts = [p for p in path.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def extract_zip(zip_path: str | Path, *, dest_root: Path | None = None, limits: ZipLimits = ZipLimits()) -> Path:
    """Extract into `<data home>/datasets/<name>-<hash>/` and return that folder.

    The same zip (by content) extracts once: a second upload reuses the folder.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise DatasetError(f"no such zip file: {zip_path}", "check the path")
    if not zipfile.is_zipfile(zip_path):
        raise DatasetError(f"{zip_path.name} is not a zip archive", "upload a .zip of the data set folder")
    dest_root = dest_root or data_home() / "datasets"
    dest_root.mkdir(parents=True, exist_ok=True)
    target = dest_root / f"{zip_path.stem}-{_file_digest(zip_path)[:12]}"
    if target.is_dir():
        return target
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_root))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            _extract_members(archive, staging, limits)
        staging.rename(target)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{zip_path.name} is a damaged zip: {exc}", "create the zip again") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract_members(archive: zipfile.ZipFile, staging: Path, limits: ZipLimits) -> None:
    members = archive.infolist()
    if len(members) > limits.max_files:
        raise DatasetError(
            f"zip holds {len(members):,} entries, over the limit of {limits.max_files:,}",
            "split the data set into smaller zips or use a folder",
        )
    declared = sum(m.file_size for m in members)
    if declared > limits.max_total_bytes:
        raise DatasetError(
            f"zip would unpack to {declared / 2**30:.1f} GiB, over the limit of {limits.max_total_bytes / 2**30:.1f} GiB",
            "use a smaller data set or point to a folder instead",
        )
    written = 0
    for info in members:
        relative = _safe_member_path(info.filename)  # checked before anything is written
        if relative is None or info.is_dir() or _is_symlink(info):
            continue
        if any(is_hidden(part) for part in relative.parts):
            continue  # __MACOSX/ resource forks and dot files are never data
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise DatasetError(
                f"zip bomb: entry '{info.filename}' inflates {info.file_size / max(info.compress_size, 1):.0f}x",
                "this is not a data set of photos; re-create the zip",
            )
        out_path = staging.joinpath(*relative.parts)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as src, out_path.open("wb") as dst:
            entry_bytes = 0
            while chunk := src.read(_CHUNK):
                entry_bytes += len(chunk)
                written += len(chunk)
                # Sizes in the header can lie; count what really comes out.
                if entry_bytes > info.file_size or written > limits.max_total_bytes:
                    raise DatasetError(
                        f"zip bomb: entry '{info.filename}' inflates beyond its declared size",
                        "this is not a data set of photos; re-create the zip",
                    )
                dst.write(chunk)
