"""What every page shares: session-state keys, the default data set, and small display helpers.

Pages stay thin: they collect choices, call `tlcore`, and show results through these.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from tlcore.data import ScanReport, load_rgb
from tlcore.data.images import ImageReadError
from tlcore.paths import data_home

__all__ = ["PROJECT_ROOT", "SAMPLE_DATA", "MAX_UPLOAD_MB", "state", "show_sidebar", "save_upload", "sample_grid"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = PROJECT_ROOT / "sample_data"
MAX_UPLOAD_MB = 1024

# Session-state keys, initialised here and nowhere else; each page writes only its own prefix.
_DEFAULTS = {
    "data.source": str(SAMPLE_DATA),
    "data.report": None,
    "data.manifest_path": None,
}


def state() -> st.session_state.__class__:
    for key, value in _DEFAULTS.items():
        st.session_state.setdefault(key, value)
    return st.session_state


def show_sidebar() -> None:
    """The choices made so far, visible from every page."""
    s = state()
    with st.sidebar:
        st.caption("Your experiment so far")
        report: ScanReport | None = s["data.report"]
        if report is None:
            st.write("No data set scanned yet.")
            return
        st.write(f"**Data:** `{Path(report.root).name}`, {len(report.classes)} classes, {len(report.images)} images")
        if s["data.manifest_path"]:
            st.write(f"**Split:** `{Path(s['data.manifest_path']).name}`")


def save_upload(name: str, data: bytes) -> Path:
    """Keep an uploaded zip in the data folder (by name), so a refresh does not lose it."""
    folder = data_home() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(name).name
    if not (path.is_file() and path.stat().st_size == len(data)):  # every rerun hands the bytes again
        path.write_bytes(data)
    return path


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
            try:
                img = load_rgb(root / record.path)
            except ImageReadError as exc:  # the file changed since the scan
                column.caption(f"{record.path}: {exc}")
                continue
            img.thumbnail((thumb, thumb))
            column.image(img, caption=Path(record.path).name)
