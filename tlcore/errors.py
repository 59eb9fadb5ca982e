"""One error type the UI and CLI can show as a single line, with what to do about it."""

from __future__ import annotations

__all__ = ["TransferLabError", "DatasetError"]


class TransferLabError(Exception):
    """A problem the user can fix; `str()` is one line: the problem, then a hint."""

    def __init__(self, problem: str, hint: str = "") -> None:
        self.problem = problem
        self.hint = hint
        super().__init__(f"{problem}: {hint}" if hint else problem)


class DatasetError(TransferLabError):
    """The data set cannot be used as given (path, layout, classes, archive)."""
