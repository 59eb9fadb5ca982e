"""What a run says while it trains, and how it is stopped: the one vocabulary of the engine's output.

Training code sends `Event`s to a sink (the run store, a progress bar, a test, rank 0's events file);
`Cancelled` ends a run between steps. This module imports nothing of the project, so every layer can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Event", "Cancelled", "Sink", "ignore"]


@dataclass(frozen=True)
class Event:
    """One thing a run says.

    Attributes:
        kind: log, stage, progress, epoch, warning, checkpoint or done.
        message: one line for a person.
        data: numbers for a program (an epoch's metrics, a progress count), JSON-serialisable.
    """

    kind: str
    message: str
    data: dict = field(default_factory=dict)


class Cancelled(Exception):
    """Raised between steps when the run's `should_stop` says so; the last complete epoch stays on disk."""


Sink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """A sink that drops every event (the default where nobody listens).

    Args:
        event: the event, dropped.
    """
