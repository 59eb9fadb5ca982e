"""The run store: SQLite in WAL mode, one writer (the trainer) and any number of readers (pages, CLI).

A run is a row with its config, status and heartbeat; its epochs, events and artifacts are rows beside it.
Nothing is ever deleted by a failure: a crashed or cancelled run keeps its metrics and its last checkpoint,
and can be resumed. `RunStore` is the store's one face; each job is its own class in tlcore.runs.store (the
database and its recovery, the rebuild from run folders, the lifecycle, the worker registry, the event log).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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


def _of(part: str, method: Callable):
    """The store's method that calls `method` on its part named `part` (same name, signature and docstring)."""
    name = method.__name__

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return getattr(getattr(self, part), name)(*args, **kwargs)
    return call


class RunStore:
    """The runs of one data folder. Opening it needs no write access; a store that is gone or damaged is set
    aside (never overwritten) and rebuilt from the run folders, which hold config, history and evaluation.

    The store is composed of its parts, each an object with one job over the same `Database`: `lifecycle` (a run's
    status from queued to finished), `log` (its events, metrics and files) and `workers` (the one worker per data
    folder). Its methods are theirs, named once each below. A store over another `Database` (one a test watches)
    is made with `RunStore.over`: the parts hold the database they were made with.

    Args:
        path: the SQLite file (default: runs.sqlite in the data folder); run folders live in runs/ beside it.

    Raises:
        StoreError: the data folder cannot be created or the store cannot be opened.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._compose(Database(Path(path) if path else data_home() / "runs.sqlite", fill_from_run_folders))

    @classmethod
    def over(cls, database: Database) -> "RunStore":
        """The store made of its parts over an open `Database` (one that a test watches, say).

        Args:
            database: the store file, opened.

        Returns:
            The store.
        """
        store = cls.__new__(cls)
        store._compose(database)
        return store

    def _compose(self, database: Database) -> None:
        self.database = database
        self.log = EventLog(database)
        self.lifecycle = RunLifecycle(database, self.log)
        self.workers = WorkerRegistry(database)

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

    # the store's face: each method is one of its parts'
    create = _of("lifecycle", RunLifecycle.create)
    claim = _of("lifecycle", RunLifecycle.claim)
    started_now = _of("lifecycle", RunLifecycle.started_now)
    claim_next = _of("lifecycle", RunLifecycle.claim_next)
    start_in_process = _of("lifecycle", RunLifecycle.start_in_process)
    heartbeat = _of("lifecycle", RunLifecycle.heartbeat)
    finish = _of("lifecycle", RunLifecycle.finish)
    request_cancel = _of("lifecycle", RunLifecycle.request_cancel)
    requeue_for_resume = _of("lifecycle", RunLifecycle.requeue_for_resume)
    reap_dead = _of("lifecycle", RunLifecycle.reap_dead)
    get = _of("lifecycle", RunLifecycle.get)
    list = _of("lifecycle", RunLifecycle.list)
    cancel_requested = _of("lifecycle", RunLifecycle.cancel_requested)
    add_event = _of("log", EventLog.add_event)
    add_artifact = _of("log", EventLog.add_artifact)
    metrics = _of("log", EventLog.metrics)
    events = _of("log", EventLog.events)
    artifacts = _of("log", EventLog.artifacts)
    register_worker = _of("workers", WorkerRegistry.register_worker)
    start_worker_once = _of("workers", WorkerRegistry.start_worker_once)
    unregister_worker = _of("workers", WorkerRegistry.unregister_worker)
    live_worker = _of("workers", WorkerRegistry.live_worker)
