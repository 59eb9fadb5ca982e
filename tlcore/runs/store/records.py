"""What the store holds: the schema, a run as a record, the statuses, and the shape of a run id."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass

import psutil

from tlcore.errors import TransferLabError

__all__ = ["Run", "SCHEMA", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "FINISHED", "check_run_id",
           "is_run_id", "is_sweep_id", "new_run_id", "created_at", "pid_alive", "to_run"]

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # what `new_run_id` makes; nothing else is a run id
_SWEEP_ID = re.compile(r"[A-Za-z0-9._-]{1,100}")  # comparisons are named cmp-YYYYmmdd-HHMMSS-xxxx

SCHEMA = """
CREATE TABLE IF NOT EXISTS store_identity (id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    pid INTEGER,
    heartbeat REAL,
    run_dir TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    resume INTEGER NOT NULL DEFAULT 0,
    sweep TEXT,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    runner TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id),
    epoch INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id),
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_run ON events(run_id, id);
CREATE TABLE IF NOT EXISTS workers (
    pid INTEGER PRIMARY KEY,
    started REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id),
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (run_id, kind)
);
"""


@dataclass(frozen=True)
class Run:
    """One run as the store holds it.

    Attributes:
        id: the run id (`20261126-142233-a1b2c3`); name: its label; config: its run config as plain data.
        status: queued, running, succeeded, failed or cancelled; error: why it failed or was cancelled.
        created, started, finished: times (seconds since the epoch); pid, heartbeat: the process training it and
        when it last said so. run_dir: its folder. cancel_requested, resume: flags for the worker.
        sweep: the comparison it belongs to; epochs_done: finished epochs.
        runner: None for the local worker; "ray" or "ray:ADDRESS" for a Ray driver.
    """

    id: str
    name: str
    config: dict
    status: str
    error: str | None
    created: float
    started: float | None
    finished: float | None
    pid: int | None
    heartbeat: float | None
    run_dir: str
    cancel_requested: bool
    resume: bool
    sweep: str | None
    epochs_done: int
    runner: str | None = None

    @property
    def epochs(self) -> int:
        """The epochs the run's config asks for."""
        return int(self.config.get("epochs", 0))


def to_run(row: sqlite3.Row) -> Run:
    """A `runs` row as a `Run`.

    Args:
        row: a row of the runs table.

    Returns:
        The run.
    """
    data = dict(row)
    data["config"] = json.loads(data["config"])
    data["cancel_requested"] = bool(data["cancel_requested"])
    data["resume"] = bool(data["resume"])
    return Run(**data)


def new_run_id() -> str:
    """A new run id: the local creation time and six random hex digits."""
    import uuid

    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def is_run_id(text: str) -> bool:
    """True when `text` has the shape of a run id."""
    return isinstance(text, str) and bool(_RUN_ID.fullmatch(text))


def created_at(run_id: str) -> float | None:
    """When a run was created, read from its id (local time, to the second).

    Args:
        run_id: a run id.

    Returns:
        Seconds since the epoch, or None when the id holds no valid time.
    """
    try:
        return time.mktime(time.strptime(run_id[:15], "%Y%m%d-%H%M%S"))
    except (ValueError, OverflowError):
        return None


def is_sweep_id(text: str) -> bool:
    """True when `text` could be a comparison's id (letters, digits, dot, dash, underscore)."""
    return isinstance(text, str) and bool(_SWEEP_ID.fullmatch(text))


def check_run_id(run_id: str) -> str:
    """Run ids reach file names and SQL parameters: anything but the shape `new_run_id` makes is refused early.

    Args:
        run_id: what the user or a page gave.

    Returns:
        The run id.

    Raises:
        TransferLabError: it is not a run id.
    """
    if not is_run_id(run_id):
        shown = run_id if len(str(run_id)) <= 40 else str(run_id)[:37] + "..."
        raise TransferLabError(f"no run with id {shown}", "run ids look like 20261126-142233-a1b2c3; see "
                                                          "`python -m tlcore runs list`")
    return run_id


def pid_alive(pid: int | None) -> bool:
    """A process that exists and is not a zombie (killed, not yet reaped): psutil, so it holds on macOS too.

    Args:
        pid: a process id (None or 0: no process).

    Returns:
        True when it is alive (or exists but cannot be inspected).
    """
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
