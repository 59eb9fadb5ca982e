"""The worker registry: at most one live training process per data folder, however many pages, tabs or commands
ask for one at the same moment."""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import Callable

from tlcore.runs.store.database import Database, retried_after_a_rebuild
from tlcore.runs.store.records import pid_alive

__all__ = ["WorkerRegistry", "WORKER_SLOT_ENV", "STARTING_SLOT_S"]

WORKER_SLOT_ENV = "TRANSFERLAB_WORKER_SLOT"  # the slot a starter reserved for the worker it spawns
STARTING_SLOT_S = 120.0  # a slot whose worker never registered (its starter died) is free again after this


def _forget_dead_workers(db: sqlite3.Connection) -> None:
    """Workers whose process is gone, and reserved slots (negative pids) older than STARTING_SLOT_S."""
    now = time.time()
    for row in db.execute("SELECT pid, started FROM workers").fetchall():
        pid = row["pid"]
        if (now - float(row["started"] or 0) > STARTING_SLOT_S) if pid < 0 else not pid_alive(pid):
            db.execute("DELETE FROM workers WHERE pid=?", (pid,))


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
        slot = os.environ.get(WORKER_SLOT_ENV, "")
        with self.database.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            _forget_dead_workers(db)
            if slot.lstrip("-").isdigit() and int(slot) < 0:  # the slot its starter reserved is this process's
                db.execute("DELETE FROM workers WHERE pid=?", (int(slot),))
            others = [r["pid"] for r in db.execute("SELECT pid FROM workers") if r["pid"] != pid]
            if others:
                db.execute("COMMIT")
                return False
            db.execute("INSERT OR IGNORE INTO workers (pid, started) VALUES (?, ?)", (pid, time.time()))
            db.execute("COMMIT")
        return True

    def start_worker_once(self, spawn: Callable[[dict[str, str]], int]) -> int | None:
        """Call `spawn(env)` (which starts a worker process with `env` added to its environment and returns its
        pid) unless a worker is alive or starting.

        The check and a reserved slot (a negative pid) are written under one write lock, so however many pages,
        tabs or commands ask at the same moment, and however long the new process takes to import torch, exactly
        one worker is started; the process is spawned after the lock is released (a slow start never holds every
        other writer), and the slot becomes its pid, or the worker takes its slot itself when it registers first.
        Never retried after a rebuild: a second try could start a second process.

        Args:
            spawn: starts the process with the given environment variables added; returns its pid.

        Returns:
            The new pid, or None when one was already there.

        Raises:
            StoreError: the store failed (after a rebuild, run the command again).
        """
        slot = -1 - secrets.randbelow(2**31 - 2)
        with self.database.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                _forget_dead_workers(db)
                if db.execute("SELECT COUNT(*) FROM workers").fetchone()[0]:
                    return None
                db.execute("INSERT INTO workers (pid, started) VALUES (?, ?)", (slot, time.time()))
            finally:
                db.execute("COMMIT")
        try:
            pid = spawn({WORKER_SLOT_ENV: str(slot)})
        except BaseException:
            with self.database.connect() as db:
                db.execute("DELETE FROM workers WHERE pid=?", (slot,))
            raise
        with self.database.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE OR IGNORE workers SET pid=? WHERE pid=?", (pid, slot))  # unless it registered first
            db.execute("DELETE FROM workers WHERE pid=?", (slot,))
            db.execute("COMMIT")
        return pid

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
            return next((p for p in pids if p < 0 or pid_alive(p)), None)
        with self.database.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            _forget_dead_workers(db)
            row = db.execute("SELECT pid FROM workers").fetchone()
            db.execute("COMMIT")
        return row["pid"] if row else None
