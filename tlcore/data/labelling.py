"""Labelling a few target pictures: each one the user names is copied into a folder of class sub-folders, the
layout `adapt.labelled` takes, with a log that keeps the order of labels and skips so the last one can be undone.

Plain files and the standard library only: the Data page and `python -m tlcore data label` share it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tlcore.errors import TransferLabError
from tlcore.core.files import FileRefused, atomic_write, read_regular_file

__all__ = ["LabelBook", "LabellingError", "GOAL_PER_CLASS", "LOG_NAME"]

GOAL_PER_CLASS = 5  # a few per class: enough for the few-labels choice (README, domain adaptation)
LOG_NAME = ".labels.json"  # hidden: the folder's scan and `adapt.labelled` read only the class sub-folders
MAX_PICTURE_BYTES = 64 * 2**20


class LabellingError(TransferLabError):
    """A picture or class that cannot be labelled (not a picture file, a class the data does not have)."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class LabelBook:
    """A folder of labelled target pictures being built one label at a time.

    Args:
        folder: where the class sub-folders go (made on the first label).
        classes: the data's classes; only these are labels.
    """

    folder: Path
    classes: list[str]

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)

    # -- the log: labels and skips in order ---------------------------------------------------------------
    def _log(self) -> list[dict]:
        try:
            entries = json.loads((self.folder / LOG_NAME).read_text())
        except (OSError, ValueError):
            return []
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One change at a time, across the threads and processes of the app (two quick keys are two reruns)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".labels.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write_log(self, entries: list[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.folder / LOG_NAME, lambda tmp: tmp.write_text(json.dumps(entries, indent=1)))

    # -- what is known -------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Labelled pictures per class (every class, 0 where none), as the folder holds them.

        Returns:
            class -> count.
        """
        found = Counter(e["label"] for e in self._log() if e.get("action") == "label"
                        and (self.folder / str(e.get("file", ""))).is_file())
        return {c: found.get(c, 0) for c in self.classes}

    def seen(self) -> set[str]:
        """Content hashes of the pictures already labelled or skipped (they are not offered again).

        Returns:
            The hashes.
        """
        return {str(e.get("sha256")) for e in self._log()}

    def goal_reached(self, per_class: int = GOAL_PER_CLASS) -> bool:
        """Every class has at least `per_class` labelled pictures.

        Args:
            per_class: the goal.

        Returns:
            True when it is reached.
        """
        return all(n >= per_class for n in self.counts().values())

    def next_pictures(self, candidates: list[Path], hashes: list[str], n: int = 1) -> list[Path]:
        """The next target pictures to label: neither labelled nor skipped yet, in the given (spread) order.

        Args:
            candidates: the target pictures; hashes: their content hashes, in the same order.
            n: how many.

        Returns:
            Up to `n` pictures.
        """
        seen = self.seen()
        return [p for p, h in zip(candidates, hashes) if h not in seen][:n]

    # -- changes -------------------------------------------------------------------------------------------
    def label(self, picture: str | Path, label: str) -> Path:
        """Copy a picture into the class's sub-folder and log it.

        Args:
            picture: a target picture file.
            label: one of the classes.

        Returns:
            The copy.

        Raises:
            LabellingError: an unknown class, or a file that cannot be read (a FIFO, a device, too large).
        """
        if label not in self.classes:
            raise LabellingError(f"'{str(label)[:40]}' is not a class of the data",
                                 f"use one of {', '.join(self.classes)[:200]}")
        picture = Path(picture)
        try:
            data = read_regular_file(picture, MAX_PICTURE_BYTES)
        except FileRefused as exc:
            raise LabellingError(exc.problem, exc.hint) from None
        digest = _digest(data)
        with self._locked():
            log = self._log()
            entries = [e for e in log if e.get("sha256") != digest]  # labelled again: the new label wins
            for old in log:
                if old.get("sha256") == digest and old.get("action") == "label":
                    (self.folder / str(old["file"])).unlink(missing_ok=True)
            target = self.folder / label / f"{digest[:10]}_{picture.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda tmp: tmp.write_bytes(data))
            entries.append({"action": "label", "label": label, "sha256": digest, "file": f"{label}/{target.name}",
                            "source": str(picture)})
            self._write_log(entries)
        return target

    def skip(self, picture: str | Path) -> None:
        """Leave a picture unlabelled (unclear, of no class) and do not offer it again.

        Args:
            picture: a target picture file.

        Raises:
            LabellingError: a file that cannot be read.
        """
        try:
            digest = _digest(read_regular_file(Path(picture), MAX_PICTURE_BYTES))
        except FileRefused as exc:
            raise LabellingError(exc.problem, exc.hint) from None
        with self._locked():
            self._write_log(self._log() + [{"action": "skip", "sha256": digest, "source": str(picture)}])

    def undo(self) -> dict | None:
        """Take back the last label or skip (its copy removed).

        Returns:
            The entry taken back, or None when there is nothing to undo.
        """
        if not self.folder.is_dir():
            return None
        with self._locked():
            entries = self._log()
            if not entries:
                return None
            last = entries.pop()
            if last.get("action") == "label":
                copy = self.folder / str(last.get("file", ""))
                if copy.is_file() and self.folder.resolve() in copy.resolve().parents:
                    copy.unlink()
            self._write_log(entries)
        return last

    def clear(self) -> None:
        """Remove every label (the folder and its log)."""
        if self.folder.is_dir():
            shutil.rmtree(self.folder)
