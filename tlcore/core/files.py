"""Files written as one unit: complete under their final name, or absent; and files the user gives, read only
when they are regular files of a bounded size inside the folder they were given in."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from tlcore.errors import TransferLabError

__all__ = ["atomic_write", "clean_partial_writes", "read_regular_file", "FileRefused"]


class FileRefused(TransferLabError):
    """A file the user gave that is not read: a link out of its folder, a FIFO or device, too large, unreadable.

    Attributes:
        why: the reason in a few words ("a link out of the data folder"), for per-file reports.
    """

    def __init__(self, why: str, problem: str, hint: str) -> None:
        super().__init__(problem, hint)
        self.why = why


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "socket" if stat.S_ISSOCK(mode) else "special file"


def read_regular_file(path: str | Path, max_bytes: int, inside: str | Path | None = None) -> bytes:
    """A user's file, read only when that is safe: never a FIFO (which would block for ever), a device (/dev/zero
    reads until memory runs out) or a link that leads out of the folder the user gave (/etc/passwd in a class
    folder); never more than `max_bytes`. The checks hold for what is actually opened (no blocking open, the open
    file checked again).

    Args:
        path: the file.
        max_bytes: a larger file is refused before it is read, and the read stops there.
        inside: the folder the user gave; the file, links followed, must be in it (None: anywhere).

    Returns:
        The bytes.

    Raises:
        FileRefused: with `why` and a one-line problem naming the file.
    """
    path = Path(path)
    try:
        if inside is not None:
            root = Path(inside).resolve()
            real = path.resolve()
            if real != root and root not in real.parents:
                raise FileRefused("a link out of the data folder", f"{path.name} is a link to {real}, outside "
                                  f"{root}", "copy the file into the folder: links out of it are not followed")
        info = os.stat(path)  # follows links: what would actually be read
        if not stat.S_ISREG(info.st_mode):
            kind = _kind(info.st_mode)
            raise FileRefused(f"not a regular file but a {kind}", f"{path.name} is a {kind}, not a file",
                              "give ordinary files")
        if info.st_size > max_bytes:
            raise FileRefused("too large", f"{path.name} is {info.st_size / 2**20:.1f} MiB, over the "
                              f"{max_bytes / 2**20:.1f} MiB limit", "use a smaller file, or raise the limit")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # never blocks, even if swapped for a FIFO
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise FileRefused("not a regular file", f"{path.name} is not a regular file", "give ordinary files")
            data = fh.read(min(max_bytes, info.st_size) + 1)  # no buffer of the limit's size for a small file
            while len(data) <= max_bytes and len(data) > info.st_size:  # it grew since: read on, to the limit
                more = fh.read(min(2**20, max_bytes + 1 - len(data)))
                if not more:
                    break
                data += more
    except OSError as exc:
        raise FileRefused(f"cannot be read ({exc.strerror or exc})", f"cannot read {path}: {exc.strerror or exc}",
                          "check the file and its permissions") from None
    if len(data) > max_bytes:
        raise FileRefused("too large", f"{path.name} grew over the {max_bytes / 2**20:.1f} MiB limit while read",
                          "use a smaller file")
    return data

_TMP_MARK = ".tmp-"


def _tmp_name(path: Path) -> Path:
    # one per process and thread: two threads of one server writing one file at once (two reruns of a page) must
    # not share a temporary file (they did, and one rename published the other's half-written bytes)
    return path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}-{threading.get_ident()}")


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
