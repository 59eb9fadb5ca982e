"""Find the classes (and a split, where the folder already has one) in a data set folder.

Two layouts are understood: `root/<class>/...` and `root/<train|val|test>/<class>/...`.
A folder that only wraps one of these (as zips made by hand often do) is entered.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tlcore.errors import DatasetError
from tlcore.core.paths import user_path

__all__ = ["CLASS_FOLDERS", "PRESPLIT", "SPLITS", "IMAGE_SUFFIXES", "DatasetFile", "DatasetLayout", "discover",
           "is_hidden", "walk_files"]

CLASS_FOLDERS = "class_folders"
PRESPLIT = "presplit"
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_JUNK_NAMES = frozenset({"__MACOSX", "__pycache__", "Thumbs.db", "desktop.ini", "$RECYCLE.BIN"})


def is_hidden(name: str) -> bool:
    """Dot files and OS clutter (`.DS_Store`, `__MACOSX`, `.ipynb_checkpoints`) are never data.

    Args:
        name: one file or folder name.

    Returns:
        True for names that are never data.
    """
    return name.startswith(".") or name in _JUNK_NAMES


@dataclass(frozen=True)
class DatasetFile:
    """One candidate image: its path relative to the root, its class, and its given split."""

    path: str
    label: str
    split: str | None = None


@dataclass
class DatasetLayout:
    """A data set's folders as found: class folders (or train/val/test ones), their files, stray files."""
    root: Path
    kind: str
    files: list[DatasetFile]
    classes: list[str]
    stray: list[str] = field(default_factory=list)  # files outside any class folder
    ignored_dirs: list[str] = field(default_factory=list)


def _visible_entries(folder: Path) -> tuple[list[Path], list[Path]]:
    dirs, files = [], []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if is_hidden(entry.name):
            continue
        if entry.is_symlink() and entry.is_dir():
            continue  # never follow a linked folder out of the data set
        (dirs if entry.is_dir() else files).append(entry)
    return dirs, files


def walk_files(folder: Path) -> list[Path]:
    """Every visible file under a folder, at any depth, in sorted order (hidden files and folders skipped)."""
    found = []
    for current, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        found.extend(Path(current) / f for f in sorted(filenames) if not is_hidden(f))
    return found


def _unwrap(root: Path) -> Path:
    """Enter folders that hold nothing but one more folder of folders (`data.zip/data/<class>/`)."""
    while True:
        dirs, files = _visible_entries(root)
        # A README or script beside the one folder does not make the root a class folder.
        has_images = any(f.suffix.lower() in IMAGE_SUFFIXES for f in files)
        if has_images or len(dirs) != 1 or dirs[0].name.lower() in _SPLIT_ALIASES:
            return root
        inner_dirs, _ = _visible_entries(dirs[0])
        if not inner_dirs:
            return root  # one class folder of images: let the class checks say so
        root = dirs[0]


def discover(path: str | Path) -> DatasetLayout:
    """List the candidate files and their classes; raises `DatasetError` for unusable layouts.

    Args:
        path: a folder with one sub-folder per class, or with train/val/test folders of class folders.

    Returns:
        The layout: candidate files with their classes (and given splits).

    Raises:
        DatasetError: a missing folder, no class folders, or a mixed layout.
    """
    root = user_path(path)
    if not root.exists():
        raise DatasetError(f"no such folder: {root}", "check the path, or choose the bundled sample_data")
    if not root.is_dir():
        raise DatasetError(f"{root} is a file, not a folder", "give a folder with one sub-folder per class, or a .zip of one")
    root = _unwrap(root.resolve())
    dirs, files = _visible_entries(root)
    split_dirs = {d: _SPLIT_ALIASES[d.name.lower()] for d in dirs if d.name.lower() in _SPLIT_ALIASES}
    if "train" in split_dirs.values() and len(set(split_dirs.values())) > 1:
        return _presplit_layout(root, split_dirs, [d for d in dirs if d not in split_dirs], files)
    stray = [f.name for f in files]
    layout_files = []
    for class_dir in dirs:
        layout_files.extend(
            DatasetFile(path=f.relative_to(root).as_posix(), label=class_dir.name) for f in walk_files(class_dir)
        )
    layout = DatasetLayout(root=root, kind=CLASS_FOLDERS, files=layout_files, classes=[d.name for d in dirs], stray=stray)
    _check_classes(layout)
    return layout


def _presplit_layout(root: Path, split_dirs: dict[Path, str], other_dirs: list[Path], files: list[Path]) -> DatasetLayout:
    seen_splits: dict[str, Path] = {}
    for folder, split in split_dirs.items():
        if split in seen_splits:
            raise DatasetError(
                f"two folders mean the same split '{split}': {seen_splits[split].name}/ and {folder.name}/",
                "merge them or rename one",
            )
        seen_splits[split] = folder
    layout_files: list[DatasetFile] = []
    classes: set[str] = set()
    stray = [f.name for f in files]
    for split in SPLITS:
        if split not in seen_splits:
            continue
        class_dirs, loose = _visible_entries(seen_splits[split])
        stray.extend(f.relative_to(root).as_posix() for f in loose)
        for class_dir in class_dirs:
            classes.add(class_dir.name)
            layout_files.extend(
                DatasetFile(path=f.relative_to(root).as_posix(), label=class_dir.name, split=split)
                for f in walk_files(class_dir)
            )
    layout = DatasetLayout(
        root=root,
        kind=PRESPLIT,
        files=layout_files,
        classes=sorted(classes),
        stray=stray,
        ignored_dirs=[d.name for d in other_dirs],
    )
    _check_classes(layout)
    return layout


def _check_classes(layout: DatasetLayout) -> None:
    where = f"in {layout.root}"
    for name in layout.classes:  # a class name goes into predictions, reports and the export as text
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            raise DatasetError(f"the class folder name '{shown}' {where} is not valid UTF-8 text",
                               "rename the folder (a name in plain letters)") from None
    if not layout.classes:
        raise DatasetError(
            f"no class folders {where}",
            "put the images in one sub-folder per class (for example cats/ and dogs/)",
        )
    if len(layout.classes) == 1:
        raise DatasetError(
            f"only one class ('{layout.classes[0]}') {where}",
            "a classifier needs at least two classes: add a second class folder",
        )
