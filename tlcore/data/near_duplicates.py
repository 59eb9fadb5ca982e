"""Pictures that are the same picture re-saved: a validation photo saved again as PNG, a test photo re-encoded as
JPEG, a training photo copied. Their bytes differ, so the content hash misses them; a difference hash of the
decoded pixels (dHash: the signs of neighbouring brightness differences on a 9x8 thumbnail) does not.

Two pictures whose 64-bit hashes differ in at most `MAX_DISTANCE` bits are taken for one picture. Pictures with
almost no brightness structure (a flat colour) carry no hash: everything flat would look alike.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from tlcore.core.files import atomic_write

__all__ = ["MAX_DISTANCE", "picture_fingerprint", "Fingerprints", "near_copies"]

MAX_DISTANCE = 6  # bits of 64: re-saves of the ants/bees photos moved at most 4; two different ones, at least 8
FLAT_STD = 2.0  # a 9x8 thumbnail with less spread than this (grey levels) is flat: no fingerprint


def picture_fingerprint(path: str | Path) -> int | None:
    """The picture's difference hash.

    Args:
        path: a picture file.

    Returns:
        A 64-bit integer, or None for a picture that cannot be decoded or is flat.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                image.draft("L", (64, 64))  # a JPEG decodes at a fraction of its size: fast for big photos
                grey = np.asarray(image.convert("L").resize((9, 8), Image.BILINEAR), dtype=np.float32)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None
    if grey.std() < FLAT_STD:
        return None
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


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
                self.known = {str(k): (v if isinstance(v, int) else None) for k, v in loaded.items()} \
                    if isinstance(loaded, dict) else {}
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
        for done, (path, sha) in enumerate(missing, 1):
            self.known[sha] = picture_fingerprint(path)
            if on_progress is not None and (done % 200 == 0 or done == len(missing)):
                on_progress(done, len(missing))
        if missing and self.path is not None:
            text = json.dumps(self.known)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path, lambda tmp: tmp.write_text(text))
            except OSError:  # a cache that cannot be written costs time, not correctness
                pass
        return {sha: self.known[sha] for _, sha in pictures}


def near_copies(mine: dict[str, int | None], theirs: dict[str, int | None],
                max_distance: int = MAX_DISTANCE) -> set[str]:
    """Which of `mine` look like one of `theirs` (the same picture, saved again), leaving exact copies aside.

    Args:
        mine: sha256 -> fingerprint of the pictures checked.
        theirs: sha256 -> fingerprint of the pictures they must not be.
        max_distance: the most bits two fingerprints of one picture differ in.

    Returns:
        The content hashes of `mine` that are near copies of one of `theirs` (exact copies included).
    """
    others = np.array([f for f in theirs.values() if f is not None], dtype=np.uint64)
    found = {sha for sha in mine if sha in theirs}
    if not len(others):
        return found
    for sha, fingerprint in mine.items():
        if fingerprint is None or sha in found:
            continue
        distance = np.unpackbits((others ^ np.uint64(fingerprint)).view(np.uint8).reshape(-1, 8), axis=1).sum(1)
        if distance.min() <= max_distance:
            found.add(sha)
    return found
