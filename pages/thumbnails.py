"""Pictures on the pages: uploads saved, thumbnails (cached), sample grids, pairs, the target pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from tlcore.spec.adapt_spec import TargetSet, scan_labelled_target, scan_target
from tlcore.data import ScanReport, load_rgb
from tlcore.data.images import ImageReadError
from tlcore.core.paths import data_home

__all__ = ["save_upload", "labelled_target_pictures", "target_pictures", "show_picture", "picture_pairs", "sample_grid"]


def save_upload(upload_id: str, name: str, data: bytes) -> Path:
    """Keep an uploaded zip in the data folder, once per upload (every rerun hands the same bytes again)."""
    folder = data_home() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{upload_id}-{Path(name).name}"
    if not path.is_file():
        path.write_bytes(data)
    return path


@st.cache_data(show_spinner=False, max_entries=2000)


def _thumbnail(path: str, stamp: tuple[int, int], thumb: int):
    """A picture's thumbnail, decoded once per file version (`stamp`: size and mtime) and then reused: the
    grid is drawn on every visit of the Data page, and decoding full-size photos made the page slow."""
    img = load_rgb(Path(path))
    img.thumbnail((thumb, thumb))
    return np.asarray(img)


@st.cache_data(show_spinner="Reading the labelled target pictures...", ttl=60, max_entries=20)


def labelled_target_pictures(source: str, classes: tuple[str, ...]) -> list[tuple[Path, int, str]]:
    """The few labelled target pictures as a run will read them (class sub-folders named as the data's)."""
    return scan_labelled_target(source, list(classes))


@st.cache_data(show_spinner="Reading the target pictures...", max_entries=8, ttl=600)


def target_pictures(source: str) -> TargetSet:
    """The adaptation target as a run will read it (every readable picture, folder names ignored)."""
    return scan_target(source)


def _show_thumbnail(column, path: Path, thumb: int, caption: str | None = None, shown_name: str | None = None) -> None:
    """One thumbnail in a column, or why it cannot be shown (the file changed or went since the scan)."""
    try:
        stat = path.stat()
        column.image(_thumbnail(str(path), (stat.st_size, stat.st_mtime_ns), thumb), caption=caption)
    except (ImageReadError, OSError) as exc:
        column.caption(f"{shown_name or path.name}: {exc}")


def show_picture(container, path: Path, size: int = 320) -> None:
    """One picture, large enough to tell its class (the labelling on the Data page)."""
    _show_thumbnail(container, path, size)


def picture_pairs(container, paths: list[Path], per_row: int = 3, thumb: int = 112) -> None:
    """A small grid of thumbnails inside one column (source and target side by side on the Data page)."""
    columns = container.columns(per_row)
    for i, path in enumerate(paths):
        _show_thumbnail(columns[i % per_row], path, thumb)


def sample_grid(report: ScanReport, per_class: int = 6, thumb: int = 112) -> None:
    """A row of thumbnails per class, so the user sees the labels are what they think."""
    root = Path(report.root)
    for label in report.classes:
        records = [r for r in report.images if r.label == label][:per_class]
        if not records:
            continue
        st.markdown(f"**{label}** ({report.counts[label]})")
        columns = st.columns(per_class)
        for column, record in zip(columns, records):
            _show_thumbnail(column, root / record.path, thumb, caption=Path(record.path).name, shown_name=record.path)
