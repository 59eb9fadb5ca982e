"""A stratified, seeded train/val/test split, written down once as a manifest.

Every run and every comparison reads the same manifest, so results differ only
by what the user changed. Identical pictures (same content hash) always land in
the same split, so a copy can never leak from training into the test set.
"""

from __future__ import annotations

import hashlib
import json
import re
import random
from collections import defaultdict
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from tlcore.data.layout import PRESPLIT, SPLITS
from tlcore.data.scan import ImageRecord, ScanReport
from tlcore.core.files import atomic_write
from tlcore.errors import DatasetError
from tlcore.core.paths import data_home

__all__ = ["SplitItem", "SplitManifest", "make_split", "default_manifest_path", "MANIFEST_VERSION"]

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class SplitItem:
    """One picture in a split manifest: its path (relative to the root), class, split and content hash."""
    path: str  # relative to the manifest's root
    label: str
    split: str
    sha256: str


READABLE_ITEMS = 20_000  # manifests up to this size are written indented, for a person to read


def _plain(item: SplitItem) -> dict:
    """An item as plain data (what `asdict` gives, without its deep copy: a million rows took seconds)."""
    return {"path": item.path, "label": item.label, "split": item.split, "sha256": item.sha256}


@dataclass
class SplitManifest:
    """A seeded, stratified train/val/test split of one data set, saved as JSON so every run can reuse it."""
    root: str
    layout: str
    seed: int
    ratios: dict[str, float]
    classes: list[str]
    items: list[SplitItem]
    notes: list[str] = field(default_factory=list)
    version: int = MANIFEST_VERSION

    @cached_property
    def id(self) -> str:
        """Content id: two manifests with the same id put the same pictures in the same splits (computed once per
        manifest: a text file of a million rows took 7 s each time it was asked)."""
        canonical = json.dumps({"classes": self.classes, "items": [_plain(i) for i in self.items]}, sort_keys=True,
                               separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def counts(self) -> dict[str, dict[str, int]]:
        """Pictures per split and class: {split: {class: count}}."""
        table = {s: {c: 0 for c in self.classes} for s in SPLITS}
        for item in self.items:
            table[item.split][item.label] += 1
        return table

    def files(self, split: str) -> list[tuple[Path, int]]:
        """(absolute path, class index) pairs of one split, in manifest order."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        index = {c: i for i, c in enumerate(self.classes)}
        root = Path(self.root)
        return [(root / item.path, index[item.label]) for item in self.items if item.split == split]

    def hashes(self, split: str) -> list[str]:
        """Content hashes of one split's pictures, in manifest order (the order of `files`): cache keys."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return [item.sha256 for item in self.items if item.split == split]

    def hashed_paths(self) -> list[tuple[str, str]]:
        """(absolute path, content hash) of every picture, all splits: what the decoded-image cache holds."""
        root = Path(self.root)
        return [(str(root / item.path), item.sha256) for item in self.items]

    def to_dict(self) -> dict:
        """The manifest as plain data, with its content id."""
        plain = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "items"}
        return {"id": self.id, **json.loads(json.dumps(plain)), "items": [_plain(i) for i in self.items]}

    def save(self, path: str | Path) -> Path:
        """Written whole (a temporary file renamed into place).

        Args:
            path: the JSON file; its folder is made.

        Returns:
            The path.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        indent = 1 if len(self.items) <= READABLE_ITEMS else None  # json's fast encoder only writes without indent
        return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(self.to_dict(), indent=indent)))

    @classmethod
    def load(cls, path: str | Path) -> "SplitManifest":
        """A saved manifest.

        Args:
            path: its JSON file.

        Returns:
            The manifest.

        Raises:
            DatasetError: the file is missing, damaged or of another version.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise DatasetError(f"no such split manifest: {path}", "make one with `python -m tlcore data split`") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"cannot read split manifest {path}: {exc}", "make it again") from None
        if data.get("version") != MANIFEST_VERSION:
            raise DatasetError(f"split manifest {path} has version {data.get('version')}, expected {MANIFEST_VERSION}",
                               "make it again with this version of Transfer Lab")
        stored_id = data.pop("id", None)
        manifest = cls(**{**data, "items": [SplitItem(**i) for i in data["items"]]})
        if stored_id is not None and stored_id != manifest.id:
            raise DatasetError(f"split manifest {path} was edited: its content no longer matches its id",
                               "make it again rather than editing it by hand")
        return manifest

    def source_files(self) -> list[str]:
        """The files the split reads, relative to `root`, each once: a picture or a .txt file is its own (even one
        named "photo#3"); a row of a table is read from the table ("tickets.csv#17" from tickets.csv)."""
        root, tables = Path(self.root), {}

        def source(path: str) -> str:
            table = file_of(path)
            if table == path:
                return path
            if table not in tables:  # one look per table, not per row
                tables[table] = (root / table).is_file() and not (root / path).is_file()
            return table if tables[table] else path
        return list(dict.fromkeys(source(i.path) for i in self.items))

    def missing_files(self) -> list[str]:
        """The files of `source_files` that are gone."""
        root = Path(self.root)
        return [path for path in self.source_files() if not (root / path).is_file()]


def file_of(location: str) -> str:
    """The file a split item is read from: "tickets.csv#17" (the row starting on line 17 of a table) is read
    from "tickets.csv"; a picture or a .txt file ("ants/a#2.jpg" too) is its own.

    Args:
        location: a manifest item's path.

    Returns:
        The file's path, relative to the manifest's root.
    """
    row = re.fullmatch(r"(.+)#\d+", location)
    return row.group(1) if row else location


def default_manifest_path(report: ScanReport, seed: int) -> Path:
    """Where the split of a scanned data set with this seed is kept in the data folder.

    Args:
        report: the data set's scan; seed: the split seed.

    Returns:
        The manifest's path.
    """
    where = getattr(report, "source", report.root)  # a text file: two tables in one folder are two data sets
    name = Path(where).name or "dataset"
    digest = hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return data_home() / "splits" / f"{name}-{digest}-seed{seed}.json"


def _allocate(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Counts per split summing to n, at least one in each held-out split with a share (when n allows)."""
    counts = {s: int(round(n * f)) for s, f in fractions.items() if s != "train"}
    for split, fraction in fractions.items():
        if split != "train" and fraction > 0 and counts[split] == 0 and n - sum(counts.values()) > 1:
            counts[split] = 1
    counts["train"] = n - sum(counts.values())
    return counts


def _rng(seed: int, label: str) -> random.Random:
    """The class's own deal. Seeded from the UTF-8 bytes of "seed/label", which is what Python does with the text
    itself, so splits never move; a folder name that is not UTF-8 (kept as surrogate escapes) seeds from its own
    bytes instead of failing."""
    return random.Random(f"{seed}/{label}".encode("utf-8", "surrogateescape"))


def _assign(groups: list[list[ImageRecord]], targets: dict[str, int], rng: random.Random) -> dict[str, list[ImageRecord]]:
    """Deal shuffled duplicate-groups into splits: held-out splits fill first, the rest trains."""
    groups = sorted(groups, key=lambda g: g[0].sha256)  # file order and names must not change the split
    rng.shuffle(groups)
    result: dict[str, list[ImageRecord]] = defaultdict(list)
    order = [s for s in ("test", "val") if targets.get(s, 0) > 0]
    dealt: dict[str, int] = defaultdict(int)
    for group in groups:  # targets count distinct pictures: a pile of copies is one picture, not twelve
        split = next((s for s in order if dealt[s] < targets[s]), "train")
        dealt[split] += 1
        result[split].extend(group)
    return result


def _groups_by_content(records: list[ImageRecord]) -> dict[str, list[list[ImageRecord]]]:
    """Duplicate groups keyed by the class they count towards (their first label alphabetically)."""
    by_hash: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        by_hash[record.sha256].append(record)
    by_label: dict[str, list[list[ImageRecord]]] = defaultdict(list)
    for group in by_hash.values():
        by_label[min(r.label for r in group)].append(group)
    return by_label


def make_split(
    report: ScanReport,
    *,
    seed: int = 0,
    val: float = 0.15,
    test: float = 0.15,
    test_from_val: float = 0.5,
) -> SplitManifest:
    """Split a scanned data set, stratified by class and seeded: the same seed gives the same split.

    Exact copies of a picture always land in the same split (they are dealt as one), and neither file
    order nor file names change the result. A folder that is already split keeps its split; when it
    has no test folder, `test_from_val` of each class's validation images become the held-out test
    set (training images are never moved), so evaluation never sees data that chose the best epoch.

    Args:
        report: what `scan` returned.
        seed: the split's seed.
        val, test: shares per class (their sum below 1).
        test_from_val: for folders split without test/: the share of val set aside as test.

    Returns a `SplitManifest` (save it with `.save(path)`). Raises `DatasetError` for impossible shares or
    classes too small to split.
    """
    if not report.ok:
        raise DatasetError(report.errors[0])
    for name, value in (("val", val), ("test", test), ("test_from_val", test_from_val)):
        if not 0.0 <= value < 1.0:
            raise DatasetError(f"{name} ratio {value} is out of range", "use a fraction between 0 and 1, such as 0.15")
    if val + test >= 1.0:
        raise DatasetError(f"val ({val}) + test ({test}) leave nothing to train on", "keep their sum below 1, such as 0.3")
    notes: list[str] = []
    items: list[SplitItem] = []
    if report.layout == PRESPLIT:
        ratios = {"test_from_val": test_from_val}
        given = {s: [r for r in report.images if r.split == s] for s in SPLITS}
        items += [SplitItem(r.path, r.label, r.split, r.sha256) for r in given["train"] + given["test"]]
        if given["test"] or test_from_val == 0:
            items += [SplitItem(r.path, r.label, "val", r.sha256) for r in given["val"]]
        else:
            for label, groups in sorted(_groups_by_content(given["val"]).items()):
                n = len(groups)  # distinct pictures
                n_test = max(1, round(n * test_from_val)) if n >= 2 else 0
                dealt = _assign(groups, {"test": n_test, "val": n - n_test}, _rng(seed, label))
                # Whatever the deal leaves over stays validation: nothing from the val folder trains.
                for split, bucket in (("test", dealt["test"]), ("val", dealt["val"] + dealt["train"])):
                    items += [SplitItem(r.path, r.label, split, r.sha256) for r in bucket]
            notes.append(f"the folder has no test split: {test_from_val:.0%} of each class's validation images "
                         "were set aside as the test set")
    else:
        ratios = {"train": round(1 - val - test, 6), "val": val, "test": test}
        for label, groups in sorted(_groups_by_content(report.images).items()):
            n = len(groups)  # distinct pictures
            if n < 3 and (val > 0 or test > 0):
                copies = sum(len(g) for g in groups)
                what = f"{copies} pictures but only {n} distinct one(s) (the rest are exact copies)" \
                    if copies > n else f"only {n} usable image(s)"
                raise DatasetError(
                    f"class '{label}' has {what}: too few for train, validation and test",
                    "add different pictures to it (20 or more is a sensible minimum)",
                )
            dealt = _assign(groups, _allocate(n, {"train": 1 - val - test, "val": val, "test": test}),
                            _rng(seed, label))
            for split in SPLITS:
                items += [SplitItem(r.path, r.label, split, r.sha256) for r in dealt[split]]
    if report.leakage:
        notes.append(f"{len(report.leakage)} picture(s) sit in two of the folder's splits; see the scan report")
    items.sort(key=lambda i: (SPLITS.index(i.split), i.label, i.path))
    return SplitManifest(
        root=report.root, layout=report.layout, seed=seed, ratios=ratios,
        classes=list(report.classes), items=items, notes=notes,
    )
