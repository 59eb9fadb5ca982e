"""Pictures that are the same picture re-saved: a validation photo saved again as PNG, a test photo re-encoded as
JPEG, a training photo copied. Their bytes differ, so the content hash misses them; a difference hash of the
decoded pixels (dHash: the signs of neighbouring brightness differences on a 9x8 thumbnail) does not.

Two pictures whose 64-bit hashes differ in at most `MAX_DISTANCE` bits are candidates; they are taken for one
picture when their 32x32 grey thumbnails also differ by at most `MAX_THUMBNAIL_DIFFERENCE` grey levels on average
(the bundled shapes, drawn on similar backgrounds, have 378 pairs of different pictures within 6 bits, the closest
9.1 levels apart; re-saves of photos and shapes moved at most 3.0). Pictures with almost no brightness structure
(a flat colour) carry no hash: everything flat would look alike.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from tlcore.core.files import atomic_write

__all__ = ["MAX_DISTANCE", "MAX_THUMBNAIL_DIFFERENCE", "picture_fingerprint", "picture_thumbnail", "same_picture",
           "Fingerprints", "near_copies"]

MAX_DISTANCE = 6  # bits of 64: re-saves of the ants/bees photos moved at most 4; two different ones, at least 8
MAX_THUMBNAIL_DIFFERENCE = 5.0  # grey levels, mean over a 32x32 thumbnail: re-saves at most 3.0, other shapes 9.1+
PROGRESS_EVERY_S = 2.0  # the count of pictures decoded, said at most this often
FLAT_STD = 2.0  # a 9x8 thumbnail with less spread than this (grey levels) is flat: no fingerprint


def picture_fingerprint(path: str | Path) -> int | None:
    """The picture's difference hash.

    Args:
        path: a picture file.

    Returns:
        A 64-bit integer, or None for a picture that cannot be decoded or is flat.
    """
    grey = _grey(path, (9, 8))
    if grey is None or grey.std() < FLAT_STD:
        return None
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def picture_thumbnail(path: str | Path) -> np.ndarray | None:
    """The picture as a 32x32 grey thumbnail (float grey levels), or None when it cannot be decoded.

    Args:
        path: a picture file.

    Returns:
        The thumbnail, or None.
    """
    return _grey(path, (32, 32))


def _grey(path: str | Path, size: tuple[int, int]) -> np.ndarray | None:
    """The picture decoded in grey and shrunk to `size` (float grey levels); None when it cannot be decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                image.draft("L", (64, 64))  # a JPEG decodes at a fraction of its size: fast for big photos
                return np.asarray(image.convert("L").resize(size, Image.BILINEAR), dtype=np.float32)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None


def same_picture(a: str | Path, b: str | Path) -> bool:
    """Whether two pictures whose fingerprints are close are one picture saved twice: their thumbnails agree.

    Args:
        a, b: picture files.

    Returns:
        True when both decode and their thumbnails differ by at most MAX_THUMBNAIL_DIFFERENCE on average.
    """
    first, second = picture_thumbnail(a), picture_thumbnail(b)
    return first is not None and second is not None and float(np.abs(first - second).mean()) \
        <= MAX_THUMBNAIL_DIFFERENCE


class Fingerprints:
    """Fingerprints by content hash, kept in a JSON file so a data set's pictures are decoded once.

    Args:
        path: the file (None: kept in memory only).
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.known: dict[str, int | None] = {}
        if path is not None:
            try:
                loaded = json.loads(path.read_text())
                self.known = {str(k): (v if isinstance(v, int) and 0 <= v < 2**64 else None)
                              for k, v in loaded.items()} if isinstance(loaded, dict) else {}
            except (OSError, ValueError, RecursionError):
                self.known = {}

    def of(self, pictures: Iterable[tuple[str | Path, str]],
           on_progress: Callable[[int, int], None] | None = None) -> dict[str, int | None]:
        """The fingerprint of each (path, content hash), decoding only the pictures not seen before.

        Args:
            pictures: (path, sha256) pairs.
            on_progress: told (done, total) every 200 pictures decoded.

        Returns:
            sha256 -> fingerprint (None: flat or unreadable).
        """
        pictures = list(pictures)
        missing = [(p, sha) for p, sha in pictures if sha not in self.known]
        said = time.monotonic()
        for done, (path, sha) in enumerate(missing, 1):
            self.known[sha] = picture_fingerprint(path)
            if on_progress is not None and (time.monotonic() - said >= PROGRESS_EVERY_S or done == len(missing)):
                on_progress(done, len(missing))
                said = time.monotonic()
        if missing and self.path is not None:
            text = json.dumps(self.known)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path, lambda tmp: tmp.write_text(text))
            except OSError:  # a cache that cannot be written costs time, not correctness
                pass
        return {sha: self.known[sha] for _, sha in pictures}


def near_copies(mine: dict[str, int | None], theirs: dict[str, int | None],
                confirm: Callable[[str, str], bool] | None = None, max_distance: int = MAX_DISTANCE) -> set[str]:
    """Which of `mine` are one of `theirs` saved again (exact copies included).

    Args:
        mine: sha256 -> fingerprint of the pictures checked.
        theirs: sha256 -> fingerprint of the pictures they must not be.
        confirm: (my sha, their sha) -> whether a pair with close fingerprints is one picture (`same_picture` on
            their files); None takes close fingerprints alone.
        max_distance: the most bits two fingerprints of one picture differ in.

    Returns:
        The content hashes of `mine` that are copies of one of `theirs`.
    """
    known = [(sha, f) for sha, f in theirs.items() if f is not None]
    others = np.array([f for _, f in known], dtype=np.uint64)
    found = {sha for sha in mine if sha in theirs}
    if not len(others):
        return found
    for sha, fingerprint in mine.items():
        if fingerprint is None or sha in found:
            continue
        distance = np.unpackbits((others ^ np.uint64(fingerprint)).view(np.uint8).reshape(-1, 8), axis=1).sum(1)
        close = [known[i][0] for i in np.flatnonzero(distance <= max_distance)]
        if any(confirm is None or confirm(sha, other) for other in close):
            found.add(sha)
    return found
