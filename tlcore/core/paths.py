"""Where Transfer Lab writes: one data folder, never the user's data set."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_home", "user_path"]


def data_home() -> Path:
    """The project's own data folder (extracted zips, split manifests, runs).

    `TRANSFERLAB_HOME` moves it (tests point it at a temporary folder); the
    default lives in the user's home so a read-only data set is never touched.
    """
    root = Path(os.environ.get("TRANSFERLAB_HOME") or Path.home() / ".transferlab")
    root.mkdir(parents=True, exist_ok=True)
    return root


def user_path(text: str | Path) -> Path:
    """A path the user gave, with `~` expanded; `~name` of no known user stays as typed (then "no such folder").

    Args:
        text: the path as given.

    Returns:
        The path.
    """
    path = Path(text)
    try:
        return path.expanduser()
    except RuntimeError:  # Python cannot find that user's home folder
        return path
