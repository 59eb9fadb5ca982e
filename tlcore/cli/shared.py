"""Shared by the commands: the exit status of a user's problem, the run store they open and its notes."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "EXIT_USER_ERROR",
    "OPENED",
    "open_store",
    "say_store_notes",
    "existing_folder",
    "slow_phases",
    "PHASE_SHOWN_AFTER_S",
]

PHASE_SHOWN_AFTER_S = 1.0  # a phase still running after this long is said (a short command prints nothing more)


EXIT_USER_ERROR = 1

OPENED: list = []  # the stores this command opened, and how many of their notes were said


def open_store():
    """The run store, saying what opening it had to do (a damaged store set aside, runs found again); what it
    has to do later in the command (rebuilt under an operation) is said when the command ends."""
    from tlcore.runs import RunStore

    store = RunStore()
    OPENED.append([store, 0])
    say_store_notes()
    return store


def say_store_notes() -> None:
    """Print, once each, the notes of the stores this command opened (a store rebuilt, set aside)."""
    for entry in OPENED:
        store, said = entry
        for note in store.notes[said:]:
            print(f"note: {note}", file=sys.stderr)
        entry[1] = len(store.notes)


def existing_folder(target: str) -> Path | None:
    """`target` as a folder if it is one; None for anything else (a run id, or a name no file system takes)."""
    try:
        return Path(target) if Path(target).is_dir() else None
    except OSError:  # e.g. a name too long for the file system
        return None


@contextlib.contextmanager
def slow_phases(total: int) -> Iterator[Callable[[str], None]]:
    """`say(words)` at the start of each of `total` phases; a phase still running after PHASE_SHOWN_AFTER_S is
    said on stderr as "words (k of total)". A quick command prints nothing more, and an error stays one line.

    Args:
        total: the phases in all.

    Yields:
        `say(words)`, called as each phase starts.
    """
    timer: list[threading.Timer] = []
    count = [0]
    lock = threading.Lock()

    def show(line: str) -> None:
        with lock:
            print(line, file=sys.stderr, flush=True)

    def say(words: str) -> None:
        for old in timer:
            old.cancel()
        timer.clear()
        count[0] += 1
        line = f"{words} ({count[0]} of {total})"
        if PHASE_SHOWN_AFTER_S <= 0:
            show(line)
            return
        timer.append(threading.Timer(PHASE_SHOWN_AFTER_S, show, (line,)))
        timer[0].daemon = True
        timer[0].start()

    try:
        yield say
    finally:
        for old in timer:
            old.cancel()
