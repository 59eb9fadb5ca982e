"""One error type the UI and CLI can show as a single line, with what to do about it."""

from __future__ import annotations

__all__ = ["TransferLabError", "DatasetError", "check_fields", "one_line"]


class TransferLabError(Exception):
    """A problem the user can fix; `str()` is one line: the problem, then a hint."""

    def __init__(self, problem: str, hint: str = "") -> None:
        self.problem = one_line(problem)
        self.hint = one_line(hint)
        super().__init__(f"{self.problem}: {self.hint}" if self.hint else self.problem)


def one_line(text: str) -> str:
    """Text shown in one line whatever it holds: line breaks, tabs, other control characters and unpaired
    surrogates (from a file name or a config key) written as escapes, e.g. "a\\nb".

    Args:
        text: a message, which may quote what the user gave.

    Returns:
        The text, printable on one line.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class DatasetError(TransferLabError):
    """The data set cannot be used as given (path, layout, classes, archive)."""


def check_fields(data: dict, allowed, what: str, error: type[TransferLabError] = TransferLabError) -> None:
    """Refuse settings nobody reads, naming them: a typo in a config must not be silently ignored.

    Args:
        data: the settings as given.
        allowed: the names that are read.
        what: the part of the config, for the message.
        error: the error type raised.

    Raises:
        TransferLabError: (or `error`) naming every unknown setting and the known ones.
    """
    if not isinstance(data, dict):
        raise error(f"{what} must be an object", "see the example config in the README")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise error(f"unknown setting(s) in {what}: {', '.join(unknown)}", f"allowed: {', '.join(sorted(allowed))}")
