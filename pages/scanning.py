"""The data the experiment names, scanned once per source and kept for the session (derived, never saved)."""

from __future__ import annotations

import streamlit as st

from tlcore.data import ScanReport, scan
from tlcore.errors import TransferLabError
from tlcore.text.data import is_text_source, read_texts
from pages.state import _REPORT, choice

__all__ = ["data_report", "scan_any", "forget_report", "num_classes"]


def data_report() -> ScanReport | None:
    """The scan of the experiment's data set: from this session, or scanned again (after a reload or restart)."""
    source = choice("data.source")
    cached = st.session_state.get(_REPORT)
    if cached and cached[0] == source:
        return cached[1]
    if not source:
        return None
    try:
        with st.spinner("Reading every file..."):
            report = scan_any(source)
    except TransferLabError:
        return None
    st.session_state[_REPORT] = (source, report)
    return report


def scan_any(source: str):
    """The data set's report: a picture folder's scan, or a text file's (with the experiment's columns).

    Args:
        source: a folder, zip or text file.

    Returns:
        A `ScanReport` or a `TextReport`.

    Raises:
        TransferLabError: the source cannot be read.
    """
    if is_text_source(source):
        return read_texts(source, text_column=choice("data.text_column"), label_column=choice("data.label_column"))
    return scan(source)


def forget_report() -> None:
    """Drop the cached scan (the data set changed)."""
    st.session_state.pop(_REPORT, None)


def num_classes() -> int:
    report = data_report()
    return len(report.classes) if report is not None and len(report.classes) >= 2 else 2
