"""The decoded-image cache: every picture decoded once, at the size training needs, kept as raw uint8 pixels.

On a GPU the model outruns JPEG decoding by 4-5x, so a run must not decode each picture
every epoch. Each picture is decoded and resized once (shorter side to the model's resize
size, exactly as the evaluation pipeline does) and its centre square is stored as uint8 in
one memory-mapped file per data set and preprocessing. Rows are keyed by the picture's
content hash (as the feature cache is): a changed picture gets a new row, an unchanged
one is never decoded again, and another preprocessing uses another file.

The square is placed so that the evaluation centre crop of the input size taken from it
is pixel for pixel the crop taken from the whole resized picture; training's random
crops and affine changes are taken within the square.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import numpy as np

from tlcore.inputs.augment import _INTERPOLATION, resize_target
from tlcore.data.images import ImageReadError, load_rgb
from tlcore.errors import TransferLabError
from tlcore.core.files import atomic_write
from tlcore.core.paths import data_home

__all__ = ["DecodedCache", "DecodedArray", "CacheTooLarge", "square_size", "decode_square", "cache_bytes",
           "DEFAULT_MAX_GB"]

DEFAULT_MAX_GB = 20.0
VERSION = 1


class CacheTooLarge(TransferLabError):
    """The cache would pass the size limit or the free disk: the run reads the JPEGs instead."""


def square_size(preprocessing) -> int:
    """Side of the stored square: the resize size before the centre crop (224 px input: 256).

    Args:
        preprocessing: the model's preprocessing.

    Returns:
        The side in pixels.
    """
    return resize_target(preprocessing.input_size, preprocessing.crop_pct)


def cache_bytes(pictures: int, preprocessing) -> int:
    """The decoded-image cache's size for this many pictures.

    Args:
        pictures: how many; preprocessing: the model's (it sets the stored square's side).

    Returns:
        Bytes.
    """
    side = square_size(preprocessing)
    return pictures * side * side * 3


def _offset(length: int, side: int, crop: int) -> int:
    """Where the square starts on one axis, so the crop inside it lands where the crop of the whole does."""
    start = (length - crop) // 2 - (side - crop) // 2
    return min(max(0, start), length - side)


def decode_square(path: str | Path, preprocessing) -> np.ndarray:
    """One picture as the cache stores it: decoded, resized as the pipelines resize, its centre square.

    Args:
        path: the picture file.
        preprocessing: the model's preprocessing.

    Returns:
        A uint8 square of `square_size` pixels a side, HxWx3.

    Raises:
        ImageReadError: the picture cannot be read.
    """
    side = square_size(preprocessing)
    image = np.asarray(load_rgb(path, draft=side))
    interpolation = _INTERPOLATION.get(preprocessing.interpolation)
    resized = A.SmallestMaxSize(max_size=side, interpolation=interpolation, p=1.0)(image=image)["image"]
    crop_h, crop_w = preprocessing.input_size[1], preprocessing.input_size[2]
    height, width = resized.shape[:2]
    if height < side or width < side:  # a rounding case of a very thin picture: pad as the crop would
        resized = A.PadIfNeeded(min_height=side, min_width=side, border_mode=0, p=1.0)(image=resized)["image"]
        height, width = resized.shape[:2]
    top, left = _offset(height, side, min(crop_h, side)), _offset(width, side, min(crop_w, side))
    return np.ascontiguousarray(resized[top:top + side, left:left + side])


class DecodedArray:
    """Read-only rows of a cache file, opened lazily in each process (loader workers open their own map)."""

    def __init__(self, path: Path, rows: int, side: int) -> None:
        self.path, self.rows, self.side = path, rows, side
        self._map: np.memmap | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_map": None}

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, index):
        if self._map is None:
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.rows, self.side, self.side, 3))
        return np.array(self._map[index])  # a copy: the map stays read-only and the loader gets its own memory


@dataclass
class Built:
    """What `DecodedCache.build` did: for the user's log."""

    decoded: int
    reused: int
    unreadable: list[str]
    bytes: int


class DecodedCache:
    """One cache file (`<key>.u8`) and its index (`<key>.json`: picture hash -> row) per data set and preprocessing."""

    def __init__(self, source: str, preprocessing, root: Path | None = None) -> None:
        self.side = square_size(preprocessing)
        self.preprocessing = preprocessing
        key = {"version": VERSION, "source": str(Path(source).resolve()), "side": self.side,
               "crop": list(preprocessing.input_size[1:]), "interpolation": preprocessing.interpolation}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        folder = root or data_home() / "decoded_cache"
        self.data_path = folder / f"{self.side}px-{digest}.u8"
        self.index_path = folder / f"{self.side}px-{digest}.json"
        self.key = key

    @property
    def row_bytes(self) -> int:
        """Bytes of one cached picture: a side x side RGB square."""
        return self.side * self.side * 3

    def index(self) -> dict[str, int]:
        """Hash -> row of every complete row; rows past the index (a build killed mid-write) are not trusted."""
        try:
            stored = json.loads(self.index_path.read_text())
        except (OSError, ValueError):
            return {}
        if stored.get("key") != self.key or not isinstance(stored.get("rows"), dict):
            return {}
        rows = stored["rows"]
        size = self.data_path.stat().st_size if self.data_path.exists() else 0
        return rows if size >= len(rows) * self.row_bytes else {}

    def missing(self, hashes: Sequence[str]) -> list[str]:
        """The pictures not cached yet, each once, in the order given.

        Args:
            hashes: content hashes of pictures.
        """
        have = self.index()
        return list(dict.fromkeys(h for h in hashes if h not in have))

    def check_room(self, new_pictures: int, max_gb: float) -> int:
        """The bytes the cache will hold after adding `new_pictures`; `CacheTooLarge` over the limit or the disk.

        Args:
            new_pictures: how many pictures would be added.
            max_gb: the cache's limit.
        """
        have = len(self.index())
        total = (have + new_pictures) * self.row_bytes
        if total > max_gb * 1e9:
            raise CacheTooLarge(f"the decoded-image cache would take {total / 1e9:.1f} GB, over its "
                                f"{max_gb:g} GB limit", "raise the limit (decoded_cache_max_gb in a run config, --max-gb "
                                "for `data cache`) or use a smaller input size; a run over the limit reads the JPEGs")
        folder = self.data_path.parent
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
        if new_pictures * self.row_bytes > 0.9 * free:
            raise CacheTooLarge(f"the decoded-image cache needs {new_pictures * self.row_bytes / 1e9:.1f} GB more but "
                                f"only {free / 1e9:.1f} GB of disk is free in {folder}",
                                "free some disk or set TRANSFERLAB_HOME to a larger disk; a run without room reads "
                                "the JPEGs")
        return total

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One builder at a time per cache file (torchrun ranks, runs on Ray on one node, a CLI beside a run)."""
        self.data_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.data_path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def build(self, pictures: Sequence[tuple[str, str]], max_gb: float = DEFAULT_MAX_GB,
              on_progress: Callable[[int, int], None] = lambda done, total: None, threads: int | None = None) -> Built:
        """Decode the (path, hash) pictures not yet cached and append them; returns what it did.

        Decoding runs on a thread pool (PIL and OpenCV release the GIL). The index is rewritten only after the
        new rows are on disk, so a kill mid-build loses at most the rows of this build, never earlier ones. A
        second builder of the same file waits, then finds the pictures there.

        Args:
            pictures: (path, content hash) of each picture wanted.
            max_gb: the cache's limit; `CacheTooLarge` before decoding anything when the new rows would pass it.
            on_progress: called with (pictures done, pictures to do).
            threads: decoding threads (None: the machine's cores, at most 16).
        """
        with self._locked():
            return self._build(pictures, max_gb, on_progress, threads)

    def _build(self, pictures, max_gb, on_progress, threads) -> Built:
        index = self.index()
        todo: list[tuple[str, str]] = []
        seen: set[str] = set()
        for path, digest in pictures:
            if digest not in index and digest not in seen:
                seen.add(digest)
                todo.append((path, digest))
        if not todo:
            return Built(0, len(pictures), [], len(index) * self.row_bytes)
        total = self.check_room(len(todo), max_gb)
        if not index and self.data_path.exists():
            self.data_path.unlink()
        elif self.data_path.exists():  # drop bytes past the last indexed row
            os.truncate(self.data_path, len(index) * self.row_bytes)
        unreadable: list[str] = []
        workers = threads or min(16, os.cpu_count() or 1)

        def decode(item: tuple[str, str]) -> np.ndarray | None:
            try:
                return decode_square(item[0], self.preprocessing)
            except ImageReadError:
                return None

        with open(self.data_path, "ab") as out, ThreadPoolExecutor(workers) as pool:
            for done, ((path, digest), square) in enumerate(zip(todo, pool.map(decode, todo)), 1):
                if square is None:
                    unreadable.append(str(path))
                else:
                    out.write(square.tobytes())
                    index[digest] = len(index)
                if done % 64 == 0 or done == len(todo):
                    on_progress(done, len(todo))
            out.flush()
            os.fsync(out.fileno())
        atomic_write(self.index_path, lambda tmp: tmp.write_text(json.dumps({"key": self.key, "rows": index})))
        return Built(len(todo) - len(unreadable), len(pictures) - len(todo), unreadable, total)

    def array(self, hashes: Sequence[str]) -> tuple[DecodedArray, list[int]]:
        """The file as rows, and the row of each picture (in the order given); every picture must be cached.

        Args:
            hashes: content hashes of the pictures wanted.
        """
        index = self.index()
        missing = [h for h in hashes if h not in index]
        if missing:
            raise TransferLabError(f"{len(missing)} picture(s) are not in the decoded-image cache",
                                   "build it again with `python -m tlcore data cache`")
        return DecodedArray(self.data_path, len(index), self.side), [index[h] for h in hashes]
