"""The run store: SQLite in WAL mode, one writer (the trainer) and any number of readers (pages, CLI).

A run is a row with its config, status and heartbeat; its epochs, events and artifacts are rows beside it.
Nothing is ever deleted by a failure: a crashed or cancelled run keeps its metrics and its last checkpoint,
and can be resumed. `RunStore` is the store's one face; each job is its own class in tlcore.runs.store (the
database and its recovery, the rebuild from run folders, the lifecycle, the worker registry, the event log).
"""

from __future__ import annotations

from pathlib import Path

from tlcore.core.paths import data_home
from tlcore.runs.store.database import Database, StoreError
from tlcore.runs.store.event_log import EventLog
from tlcore.runs.store.lifecycle import HEARTBEAT_STALE_S, RunLifecycle
from tlcore.runs.store.rebuild import fill_from_run_folders
from tlcore.runs.store.records import (CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, SUCCEEDED, Run, check_run_id,
                                  pid_alive)
from tlcore.runs.store.workers import WorkerRegistry

__all__ = ["Run", "RunStore", "StoreError", "check_run_id", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED",
           "FINISHED", "HEARTBEAT_STALE_S", "pid_alive"]


class RunStore(RunLifecycle, EventLog, WorkerRegistry):
    """The runs of one data folder. Opening it needs no write access; a store that is gone or damaged is set
    aside (never overwritten) and rebuilt from the run folders, which hold config, history and evaluation.

    Args:
        path: the SQLite file (default: runs.sqlite in the data folder); run folders live in runs/ beside it.

    Raises:
        StoreError: the data folder cannot be created or the store cannot be opened.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.database = Database(Path(path) if path else data_home() / "runs.sqlite", fill_from_run_folders)

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self.database.path

    @property
    def runs_dir(self) -> Path:
        """Where the run folders are."""
        return self.database.runs_dir

    @property
    def notes(self) -> list[str]:
        """What opening (or recovering) the store had to do, for the UI and CLI to say."""
        return self.database.notes

    @property
    def read_only(self) -> bool:
        """The store can only be looked at (no write access)."""
        return self.database.read_only
