"""Read every file of a data set once and report what is usable, what is not and why.

The report is what the user checks before training (class counts, skipped files,
duplicates and leakage) and what the split is made from, so it is plain data
that round-trips through JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import unicodedata
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tlcore.data.images import DEFAULT_MAX_FILE_MB, ImageReadError, decode_image, read_picture_file
from tlcore.data.layout import DatasetFile, discover

__all__ = [
    "DuplicateGroup",
    "ImageRecord",
    "ScanReport",
    "SkippedFile",
    "Suspect",
    "scan_dataset",
    "MIN_IMAGES_PER_CLASS",
    "IMBALANCE_RATIO",
    "MAX_FILE_BYTES",
]

MIN_IMAGES_PER_CLASS = 20  # below this a validation and a test split hold too few images to mean much
IMBALANCE_RATIO = 3.0  # largest / smallest class at which recall on the small class usually suffers
MAX_FILE_BYTES = DEFAULT_MAX_FILE_MB * 2**20  # the default; TRANSFERLAB_MAX_FILE_MB or max_bytes change it
SMALL_SIDE_PX = 32  # smaller pictures hold little a 224-px model can use
FORMAT_OUTLIER_SHARE = 0.02  # a format this rare beside a dominant one is worth a look


@dataclass(frozen=True)
class ImageRecord:
    """One readable picture: path, class, given split, content hash, size and format."""
    path: str
    label: str
    split: str | None
    sha256: str
    width: int
    height: int
    format: str
    mode: str
    bytes: int


@dataclass(frozen=True)
class SkippedFile:
    """A file the scan could not use, with a short reason code and a detail for people."""
    path: str
    reason: str  # short code: not_image, truncated, corrupt, empty, too_large, unsupported_format, ...
    detail: str


@dataclass(frozen=True)
class Suspect:
    """A readable image that is kept but probably should not be (placeholder, tiny picture)."""

    path: str
    reason: str


@dataclass(frozen=True)
class DuplicateGroup:
    """Pictures with identical content: their paths, classes and given splits."""
    sha256: str
    paths: list[str]
    labels: list[str]
    splits: list[str | None]


@dataclass
class ScanReport:
    """What a scan found: classes and counts, readable pictures, skipped files, duplicates, warnings and errors."""
    root: str
    layout: str
    classes: list[str]
    counts: dict[str, int]
    split_counts: dict[str, dict[str, int]] | None
    images: list[ImageRecord]
    skipped: list[SkippedFile]
    size_stats: dict[str, int]
    formats: dict[str, int]
    duplicates: list[DuplicateGroup]
    label_conflicts: list[DuplicateGroup]
    leakage: list[DuplicateGroup]
    suspects: list[Suspect]
    stray_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No error: the data set can be split and trained on."""
        return not self.errors

    @property
    def n_files(self) -> int:
        """Every file looked at: readable pictures and skipped files."""
        return len(self.images) + len(self.skipped)

    def to_dict(self) -> dict:
        """The whole report as plain data."""
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text.

        Args:
            indent: JSON indentation.
        """
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict) -> "ScanReport":
        """A report back from `to_dict`'s data (the app keeps reports between pages).

        Args:
            data: what `to_dict` gave.
        """
        data = dict(data)
        data["images"] = [ImageRecord(**r) for r in data["images"]]
        data["skipped"] = [SkippedFile(**r) for r in data["skipped"]]
        data["suspects"] = [Suspect(**r) for r in data["suspects"]]
        for key in ("duplicates", "label_conflicts", "leakage"):
            data[key] = [DuplicateGroup(**g) for g in data[key]]
        return cls(**data)

    def summary(self) -> str:
        """A plain-text report for the terminal, most important facts first."""
        lines = [
            f"data set: {self.root}",
            f"layout: {'already split (' + ', '.join(self.split_counts) + ')' if self.split_counts else 'one folder per class'}",
            f"{len(self.classes)} classes, {len(self.images)} usable images, {len(self.skipped)} skipped",
            "",
            "class counts:",
        ]
        width = max(len(c) for c in self.classes) if self.classes else 0
        for label in self.classes:
            per_split = ""
            if self.split_counts:
                per_split = "  (" + ", ".join(f"{s} {c.get(label, 0)}" for s, c in self.split_counts.items()) + ")"
            lines.append(f"  {label:<{width}}  {self.counts.get(label, 0):>6}{per_split}")
        if self.size_stats:
            s = self.size_stats
            lines += [
                "",
                f"image sizes: width {s['min_width']}-{s['max_width']} (median {s['median_width']}), "
                f"height {s['min_height']}-{s['max_height']} (median {s['median_height']})",
                "formats: " + ", ".join(f"{k} {v}" for k, v in sorted(self.formats.items(), key=lambda kv: -kv[1])),
            ]
        if self.skipped:
            lines += ["", f"skipped files ({len(self.skipped)}):"]
            lines += [f"  {s.path}: {s.detail}" for s in self.skipped]
        if self.suspects:
            lines += ["", f"kept, but worth a look ({len(self.suspects)}):"]
            lines += [f"  {s.path}: {s.reason}" for s in self.suspects]
        if self.duplicates:
            lines += ["", f"exact duplicates: {len(self.duplicates)} groups, "
                      f"{sum(len(g.paths) - 1 for g in self.duplicates)} extra copies"]
        for title, groups in (("same picture in two classes", self.label_conflicts),
                              ("same picture in two splits (leakage)", self.leakage)):
            if groups:
                lines += ["", f"{title} ({len(groups)}):"]
                lines += [f"  {' = '.join(g.paths)}" for g in groups]
        if self.stray_files:
            lines += ["", f"ignored, not inside a class folder: {', '.join(self.stray_files)}"]
        if self.warnings:
            lines += ["", "warnings:"] + [f"  - {w}" for w in self.warnings]
        if self.errors:
            lines += ["", "errors:"] + [f"  - {e}" for e in self.errors]
        return "\n".join(lines)


def _inspect(root: Path, item: DatasetFile, max_pixels: int | None, max_bytes: int | None) -> ImageRecord | SkippedFile:
    try:
        data = read_picture_file(root / item.path, max_bytes, inside=root)
        _, facts = decode_image(data, max_pixels=max_pixels, draft=1)
    except ImageReadError as exc:
        return SkippedFile(item.path, exc.reason, exc.problem)
    return ImageRecord(
        path=item.path,
        label=item.label,
        split=item.split,
        sha256=hashlib.sha256(data).hexdigest(),
        width=facts.width,
        height=facts.height,
        format=facts.format,
        mode=facts.mode,
        bytes=len(data),
    )


def scan_dataset(path: str | Path, *, max_pixels: int | None = None, workers: int | None = None,
                 max_bytes: int | None = None) -> ScanReport:
    """Scan a data set folder. Layout problems raise `DatasetError`; data problems land in `errors`.

    Args:
        path: the data set folder.
        max_pixels: larger pictures are reported as errors.
        workers: threads that read files (default: from the machine's cores).
        max_bytes: larger files are reported without being read.

    Returns:
        The report: readable pictures with their hashes, classes and counts, and the files that failed, each
        with its reason.
    """
    layout = discover(path)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow releases the GIL while decoding
        results = list(pool.map(lambda f: _inspect(layout.root, f, max_pixels, max_bytes), layout.files))
    images = [r for r in results if isinstance(r, ImageRecord)]
    skipped = [r for r in results if isinstance(r, SkippedFile)]
    counts = {c: 0 for c in layout.classes}
    for record in images:
        counts[record.label] += 1
    split_counts = None
    if layout.kind == "presplit":
        present = [s for s in ("train", "val", "test") if any(f.split == s for f in layout.files)]
        split_counts = {s: {c: 0 for c in layout.classes} for s in present}
        for record in images:
            split_counts[record.split][record.label] += 1
    duplicates, conflicts, leakage = _duplicates(images)
    report = ScanReport(
        root=str(layout.root),
        layout=layout.kind,
        classes=layout.classes,
        counts=counts,
        split_counts=split_counts,
        images=images,
        skipped=skipped,
        size_stats=_size_stats(images),
        formats=dict(Counter(r.format for r in images)),
        duplicates=duplicates,
        label_conflicts=conflicts,
        leakage=leakage,
        suspects=_suspects(images),
        stray_files=layout.stray + [f"{d}/" for d in layout.ignored_dirs],
    )
    report.errors = _errors(report, layout.files)
    report.warnings = _warnings(report)
    return report


def _duplicates(images: list[ImageRecord]) -> tuple[list[DuplicateGroup], list[DuplicateGroup], list[DuplicateGroup]]:
    by_hash: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in images:
        by_hash[record.sha256].append(record)
    groups = [
        DuplicateGroup(sha256=h, paths=[r.path for r in rs], labels=[r.label for r in rs], splits=[r.split for r in rs])
        for h, rs in sorted(by_hash.items(), key=lambda kv: kv[1][0].path)
        if len(rs) > 1
    ]
    conflicts = [g for g in groups if len(set(g.labels)) > 1]
    leakage = [g for g in groups if len(set(g.splits)) > 1]
    return groups, conflicts, leakage


def _size_stats(images: list[ImageRecord]) -> dict[str, int]:
    if not images:
        return {}
    widths = [r.width for r in images]
    heights = [r.height for r in images]
    return {
        "min_width": min(widths), "median_width": int(statistics.median(widths)), "max_width": max(widths),
        "min_height": min(heights), "median_height": int(statistics.median(heights)), "max_height": max(heights),
    }


def _suspects(images: list[ImageRecord]) -> list[Suspect]:
    suspects = []
    formats = Counter(r.format for r in images)
    dominant, dominant_n = formats.most_common(1)[0] if formats else ("", 0)
    for record in images:
        n = formats[record.format]
        if record.format != dominant and n / len(images) <= FORMAT_OUTLIER_SHARE:
            suspects.append(Suspect(
                record.path,
                f"one of only {n} {record.format} file(s) among {dominant_n} {dominant} files: "
                "check it is a real example and not a placeholder",
            ))
        elif min(record.width, record.height) < SMALL_SIDE_PX:
            suspects.append(Suspect(record.path, f"tiny picture ({record.width}x{record.height}): little detail to learn from"))
    return suspects


def _errors(report: ScanReport, candidates: list[DatasetFile]) -> list[str]:
    if not candidates:
        return [f"no files found in the class folders of {report.root}: add images to them"]
    if not report.images:
        reasons = Counter(s.reason for s in report.skipped)
        why = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in reasons.most_common())
        return [f"no usable images: all {len(report.skipped)} files were skipped ({why}); see the skipped list"]
    errors = _name_errors(list(report.counts))
    for label, n in report.counts.items():
        if n == 0:
            skipped_here = sum(1 for s in report.skipped if _label_of(s.path, report.layout) == label)
            what = f"its {skipped_here} file(s) were all skipped" if skipped_here else "it is empty"
            errors.append(f"class '{label}' has no usable images ({what}): add images to it or remove the folder")
    return errors


def _name_errors(labels: list[str]) -> list[str]:
    """Class names a person could not tell apart or read in a table: one name in two Unicode spellings (a Mac's
    decomposed "é" beside a composed one), or a name holding a line break or another control character."""
    errors, seen = [], {}
    for label in labels:
        if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in label):
            errors.append(f"class folder {label!r} has a line break or another control character in its name: "
                          "rename the folder")
        same = seen.setdefault(unicodedata.normalize("NFC", label), label)
        if same != label:
            errors.append(f"class folders {same!r} and {label!r} look the same but are spelled with different "
                          "Unicode characters: merge them into one folder")
    return errors


def _label_of(path: str, layout: str) -> str:
    parts = path.split("/")
    return parts[1] if layout == "presplit" and len(parts) > 1 else parts[0]


def _warnings(report: ScanReport) -> list[str]:
    warnings = []
    usable = {c: n for c, n in report.counts.items() if n > 0}
    for label, n in usable.items():
        if n < MIN_IMAGES_PER_CLASS:
            warnings.append(
                f"class '{label}' has only {n} images: validation and test results on it will be noisy; "
                f"aim for at least {MIN_IMAGES_PER_CLASS}"
            )
    if len(usable) >= 2:
        largest = max(usable, key=usable.get)
        smallest = min(usable, key=usable.get)
        ratio = usable[largest] / usable[smallest]
        if ratio >= IMBALANCE_RATIO:
            warnings.append(
                f"classes are imbalanced: '{largest}' has {usable[largest]} images, '{smallest}' only "
                f"{usable[smallest]} ({ratio:.1f}x): expect lower recall on '{smallest}'"
            )
    if report.split_counts:
        for split, counts in report.split_counts.items():
            missing = [c for c, n in counts.items() if n == 0]
            if missing:
                warnings.append(f"split '{split}' has no images of {', '.join(repr(c) for c in missing)}")
    if report.label_conflicts:
        warnings.append(
            f"{len(report.label_conflicts)} picture(s) appear in two classes: one of the labels is wrong; "
            "remove the wrong copy"
        )
    if report.leakage:
        warnings.append(
            f"{len(report.leakage)} picture(s) appear in two splits: test results would be too optimistic; "
            "remove the copy from val/test"
        )
    if report.skipped:
        warnings.append(f"{len(report.skipped)} file(s) skipped; see the list for why")
    return warnings
