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
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tlcore.data.layout import is_hidden
from tlcore.errors import DatasetError
from tlcore.core.paths import data_home

__all__ = ["ZipLimits", "extract_zip"]

_CHUNK = 1 << 20
_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


@dataclass(frozen=True)
class ZipLimits:
    """What a zip may hold before it is refused: file count, total size, compression ratio."""
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

    Args:
        zip_path: the archive.
        dest_root: where extracted data sets go (default: the data folder's datasets/).
        limits: the archive's limits (sizes, inflation ratio, entries).

    Returns:
        The extracted folder.

    Raises:
        DatasetError: an archive that is damaged, encrypted, unsafe (paths outside the folder) or over a limit.
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
            _extract_members(archive, staging, limits, zip_path.stat().st_size)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # another scan of the same zip finished first: its folder is the same
                raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise DatasetError(f"{zip_path.name} is a damaged zip ({' '.join(str(exc).split())[:160]})",
                           "create the zip again") from None
    except OSError as exc:
        raise DatasetError(f"cannot unpack {zip_path.name}: {exc.strerror or exc}",
                           "check the free disk space, or unpack it yourself and give the folder") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _bomb(what: str) -> DatasetError:
    return DatasetError(f"zip bomb: {what}", "this is not a data set of photos; re-create the zip")


def _extract_members(archive: zipfile.ZipFile, staging: Path, limits: ZipLimits, archive_bytes: int) -> None:
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
    # Many entries each just under the per-entry ratio add up: bound the whole archive's ratio too.
    total_cap = max(limits.ratio_floor_bytes, limits.max_ratio * archive_bytes)
    if declared > total_cap:
        raise _bomb(f"{len(members)} entries declare {declared / 2**20:.0f} MiB from a {archive_bytes / 2**20:.1f} MiB "
                    f"zip ({declared / max(archive_bytes, 1):.0f}x)")
    written = 0
    for info in members:
        relative = _safe_member_path(info.filename)  # checked before anything is written
        if relative is None or info.is_dir() or _is_symlink(info):
            continue
        if any(is_hidden(part) for part in relative.parts):
            continue  # __MACOSX/ resource forks and dot files are never data
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise _bomb(f"entry '{info.filename}' inflates {info.file_size / max(info.compress_size, 1):.0f}x")
        if info.flag_bits & 0x1:
            raise DatasetError(f"zip entry '{_short(info.filename)}' is encrypted",
                               "create the zip without a password")
        if info.compress_type not in _READABLE_METHODS:
            raise DatasetError(f"zip entry '{_short(info.filename)}' uses compression method {info.compress_type}, "
                               "which cannot be read here", "create the zip again with standard (deflate) compression")
        if any(len(part.encode()) > 255 for part in relative.parts):
            raise DatasetError(f"zip entry '{_short(info.filename)}' has a name too long for the file system",
                               "shorten the file names and create the zip again")
        out_path = staging.joinpath(*relative.parts)
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            dst = out_path.open("wb")
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise DatasetError(f"zip entry '{_short(info.filename)}' clashes with another entry of the same name "
                               "(a file and a folder)",
                               "rename one of them and create the zip again") from None
        with archive.open(info) as src, dst:
            entry_bytes = 0
            while chunk := src.read(_CHUNK):
                entry_bytes += len(chunk)
                written += len(chunk)
                # Sizes in the header can lie; count what really comes out.
                if entry_bytes > info.file_size or written > min(limits.max_total_bytes, total_cap):
                    raise _bomb(f"entry '{_short(info.filename)}' inflates beyond its declared size")
                dst.write(chunk)


def _short(name: str) -> str:
    return name if len(name) <= 80 else name[:77] + "..."
