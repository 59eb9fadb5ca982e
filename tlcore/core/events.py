"""What a run says while it trains, and how it is stopped: the one vocabulary of the engine's output.

Training code sends `Event`s to a sink (the run store, a progress bar, a test, rank 0's events file);
`Cancelled` ends a run between steps. This module imports nothing of the project, so every layer can use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Event", "Progress", "Cancelled", "Sink", "ignore", "cancellable", "STARTING_CHECK_EVERY_S", "standing",
           "STANDING_SAID_AFTER_S"]


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


@dataclass(frozen=True)
class Progress:
    """A progress event's numbers, typed, so a page reads fields rather than a dict's keys: how far a phase has
    come ("features": the one pass of feature extraction, `done` of `total` items; "train": `step` of `steps`
    batches of `epoch`; others, as `evaluate` says them: `done` of `total`).

    Attributes:
        phase: what is being done; done, total: items so far and in all; epoch: 0-based; step, steps: batches.
        unit: what `done` and `total` count where it is not the data's items ("picture views": feature
            extraction passes each training picture once per augmented view); None: the items.
    """

    phase: str
    done: int = 0
    total: int = 0
    epoch: int | None = None
    step: int = 0
    steps: int = 0
    unit: str | None = None

    def to_data(self) -> dict:
        """As an event's `data` (JSON)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @property
    def share(self) -> float:
        """How far, from 0 to 1 (batches in a training epoch, items otherwise)."""
        done, total = (self.step, self.steps) if self.phase == "train" else (self.done, self.total)
        return min(1.0, max(0.0, done / total)) if total > 0 else 0.0

    @classmethod
    def from_data(cls, data: object) -> "Progress | None":
        """A progress event's data read back (from the store or a progress file); None when it is not one.

        Args:
            data: the event's `data`, as stored.

        Returns:
            The progress, or None for anything else (an event of an older version, a damaged line).
        """
        if not isinstance(data, dict) or not isinstance(data.get("phase"), str):
            return None

        def count(key: str) -> int:
            value = data.get(key, 0)
            return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
        epoch = data.get("epoch")
        unit = data.get("unit")
        return cls(data["phase"], count("done"), count("total"), epoch if isinstance(epoch, int) else None,
                   count("step"), count("steps"), unit if isinstance(unit, str) and unit.strip() else None)


STANDING_SAID_AFTER_S = 1.0  # with pages redrawn every second, no count stands 2 s without its seconds


def standing(since: float, now: float) -> str:
    """Words for how long a count has stood still, so no wait over 2 s shows a count that does not move (building
    a model, a loader's first batch, one slow step): ", 4 s on this so far", or "" for a count under
    STANDING_SAID_AFTER_S old (1 s: a page that redraws every second then shows the seconds by the second's end;
    from 2 s, a walk on a busy machine saw batch counts stand up to 4 s without them).

    Args:
        since: when the count was said (seconds since the epoch, as events are stamped); now: the time now.

    Returns:
        The words, to follow the count.
    """
    age = now - since
    return f", {age:.0f} s on this so far" if age >= STANDING_SAID_AFTER_S else ""


class Cancelled(Exception):
    """Raised between steps when the run's `should_stop` says so; the last complete epoch stays on disk."""


Sink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """A sink that drops every event (the default where nobody listens).

    Args:
        event: the event, dropped.
    """


STARTING_CHECK_EVERY_S = 0.5


def cancellable(sink: Sink, should_stop: Callable[[], bool], where: str = "while starting") -> Sink:
    """The sink, and at each event it hears (at most every STARTING_CHECK_EVERY_S) a look at the cancel flag: the
    waits before the first epoch (the split, the model, the decoded cache, the one pass of feature extraction)
    report progress, so a cancel takes effect there too, not only once the epochs begin.

    Args:
        sink: the run's sink; should_stop: True cancels; where: said in the reason ("cancelled while starting").

    Returns:
        A sink that raises `Cancelled` once `should_stop` is true.
    """
    last = [0.0]

    def checked(event: Event) -> None:
        sink(event)
        now = time.monotonic()
        if now - last[0] >= STARTING_CHECK_EVERY_S:
            last[0] = now
            if should_stop():
                raise Cancelled(f"cancelled {where}")
    return checked
