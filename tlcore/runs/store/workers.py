"""The worker registry: at most one live training process per data folder, however many pages, tabs or commands
ask for one at the same moment."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from tlcore.runs.store.database import Database, retried_after_a_rebuild
from tlcore.runs.store.records import pid_alive

__all__ = ["WorkerRegistry"]


def _forget_dead_workers(db: sqlite3.Connection) -> None:
    for row in db.execute("SELECT pid FROM workers").fetchall():
        if not pid_alive(row["pid"]):
            db.execute("DELETE FROM workers WHERE pid=?", (row["pid"],))


class WorkerRegistry:
    """Which process is the worker.

    Args:
        database: the store's `Database`.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    @retried_after_a_rebuild
    def register_worker(self, pid: int) -> bool:
        """Record this process as the worker.

        Args:
            pid: the process.

        Returns:
            True if it is now the worker (or was recorded as the one starting); False if another live one is.
        """
        with self.database.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            _forget_dead_workers(db)
            others = [r["pid"] for r in db.execute("SELECT pid FROM workers") if r["pid"] != pid]
            if others:
                db.execute("COMMIT")
                return False
            db.execute("INSERT OR IGNORE INTO workers (pid, started) VALUES (?, ?)", (pid, time.time()))
            db.execute("COMMIT")
        return True

    def start_worker_once(self, spawn: Callable[[], int]) -> int | None:
        """Call `spawn()` (which starts a worker process and returns its pid) unless a worker is alive or starting.

        The check and the record of the new pid happen under one write lock, so however many pages, tabs or
        commands ask at the same moment, and however long the new process takes to import torch, exactly one
        worker is started. Never retried after a rebuild: a second try could start a second process.

        Args:
            spawn: starts the process; returns its pid.

        Returns:
            The new pid, or None when one was already there.

        Raises:
            StoreError: the store failed (after a rebuild, run the command again).
        """
        with self.database.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                _forget_dead_workers(db)
                if db.execute("SELECT COUNT(*) FROM workers").fetchone()[0]:
                    return None
                pid = spawn()
                db.execute("INSERT INTO workers (pid, started) VALUES (?, ?)", (pid, time.time()))
                return pid
            finally:
                db.execute("COMMIT")

    @retried_after_a_rebuild
    def unregister_worker(self, pid: int) -> None:
        """Forget a worker that is ending.

        Args:
            pid: its process.
        """
        with self.database.connect() as db:
            db.execute("DELETE FROM workers WHERE pid=?", (pid,))

    @retried_after_a_rebuild
    def live_worker(self) -> int | None:
        """The live worker's pid, or None (dead ones are forgotten on the way, where the store is writable)."""
        if self.database.read_only:
            with self.database.connect() as db:
                pids = [r["pid"] for r in db.execute("SELECT pid FROM workers")]
            return next((p for p in pids if pid_alive(p)), None)
        with self.database.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            _forget_dead_workers(db)
            row = db.execute("SELECT pid FROM workers").fetchone()
            db.execute("COMMIT")
        return row["pid"] if row else None
