"""The run store: SQLite in WAL mode, one writer (the trainer) and any number of readers (pages, CLI).

A run is a row with its config, status and heartbeat; its epochs, events and
artifacts are rows beside it. Nothing is ever deleted by a failure: a crashed or
cancelled run keeps its metrics and its last checkpoint, and can be resumed.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from tlcore.config import RunConfig
from tlcore.errors import TransferLabError
from tlcore.paths import data_home

__all__ = ["Run", "RunStore", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "FINISHED"]

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
HEARTBEAT_STALE_S = 60.0

_SCHEMA = """
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
    epochs_done INTEGER NOT NULL DEFAULT 0
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

    @property
    def epochs(self) -> int:
        return int(self.config.get("epochs", 0))


def _pid_alive(pid: int | None) -> bool:
    """A process that exists and is not a zombie (killed, not yet reaped): psutil, so it holds on macOS too."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


class RunStore:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else data_home() / "runs.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
        finally:
            db.close()

    # -- writing ----------------------------------------------------------------------------------
    def create(self, config: RunConfig, *, sweep: str | None = None) -> Run:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        run_dir = data_home() / "runs" / run_id
        name = config.name or f"{config.model.name} / {config.freeze.get('strategy', 'custom')}"
        with self._connect() as db:
            db.execute("INSERT INTO runs (id, name, config, status, created, run_dir, sweep) VALUES (?,?,?,?,?,?,?)",
                       (run_id, name, config.to_json(), QUEUED, time.time(), str(run_dir), sweep))
        return self.get(run_id)

    def claim_next(self, pid: int) -> Run | None:
        """Atomically take the oldest queued run for this worker process."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT id FROM runs WHERE status = ? ORDER BY created, id LIMIT 1", (QUEUED,)).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            now = time.time()
            db.execute("UPDATE runs SET status=?, pid=?, started=COALESCE(started, ?), heartbeat=?, error=NULL, "
                       "finished=NULL WHERE id=?", (RUNNING, pid, now, now, row["id"]))
            db.execute("COMMIT")
        return self.get(row["id"])

    def start_in_process(self, run_id: str, pid: int) -> None:
        """Mark a run as running in this process (the CLI's foreground `train`)."""
        now = time.time()
        with self._connect() as db:
            db.execute("UPDATE runs SET status=?, pid=?, started=COALESCE(started, ?), heartbeat=? WHERE id=?",
                       (RUNNING, pid, now, now, run_id))

    def heartbeat(self, run_id: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET heartbeat=? WHERE id=?", (time.time(), run_id))

    def add_event(self, run_id: str, kind: str, message: str, data: dict | None = None) -> None:
        data = data or {}
        with self._connect() as db:
            db.execute("INSERT INTO events (run_id, ts, kind, message, data) VALUES (?,?,?,?,?)",
                       (run_id, time.time(), kind, message, json.dumps(data)))
            if kind == "epoch":
                db.execute("INSERT OR REPLACE INTO metrics (run_id, epoch, data) VALUES (?,?,?)",
                           (run_id, int(data["epoch"]), json.dumps(data)))
                db.execute("UPDATE runs SET epochs_done=?, heartbeat=? WHERE id=?",
                           (int(data["epoch"]) + 1, time.time(), run_id))

    def add_artifact(self, run_id: str, kind: str, path: str | Path) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO artifacts (run_id, kind, path) VALUES (?,?,?)", (run_id, kind, str(path)))

    def finish(self, run_id: str, status: str, error: str | None = None) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET status=?, error=?, finished=?, pid=NULL, cancel_requested=0, resume=0 "
                       "WHERE id=?", (status, error, time.time(), run_id))

    def request_cancel(self, run_id: str) -> Run:
        """A queued run is cancelled at once; a running one stops at its next step."""
        run = self.get(run_id)
        with self._connect() as db:
            if run.status == QUEUED:
                db.execute("UPDATE runs SET status=?, finished=?, error=? WHERE id=? AND status=?",
                           (CANCELLED, time.time(), "cancelled before it started", run_id, QUEUED))
            elif run.status == RUNNING:
                db.execute("UPDATE runs SET cancel_requested=1 WHERE id=?", (run_id,))
            else:
                raise TransferLabError(f"run {run_id} is already {run.status}", "only queued or running runs can be cancelled")
        return self.get(run_id)

    def requeue_for_resume(self, run_id: str) -> Run:
        run = self.get(run_id)
        if run.status not in (FAILED, CANCELLED):
            raise TransferLabError(f"run {run_id} is {run.status}", "only failed or cancelled runs can be resumed")
        with self._connect() as db:
            db.execute("UPDATE runs SET status=?, resume=1, error=NULL, cancel_requested=0, finished=NULL WHERE id=?",
                       (QUEUED, run_id))
        return self.get(run_id)

    def reap_dead(self, stale_after: float = HEARTBEAT_STALE_S) -> list[str]:
        """Runs marked running whose process is gone (killed, out of memory) become failed, with the reason."""
        reaped = []
        now = time.time()
        for run in self.list(status=RUNNING):
            dead = not _pid_alive(run.pid)
            stale = run.heartbeat is None or now - run.heartbeat > stale_after
            if dead or stale:
                why = "its process ended" if dead else f"no heartbeat for {now - (run.heartbeat or run.created):.0f} s"
                message = (f"the training process stopped without finishing ({why}: killed, crashed or out of memory) "
                           f"after {run.epochs_done} of {run.epochs} epochs; resume it to continue from its last checkpoint")
                with self._connect() as db:
                    changed = db.execute("UPDATE runs SET status=?, error=?, finished=?, pid=NULL WHERE id=? AND status=?",
                                         (FAILED, message, now, run.id, RUNNING)).rowcount
                if changed:
                    self.add_event(run.id, "error", message)
                    reaped.append(run.id)
        return reaped

    # -- the worker registry: one live training process per machine ---------------------------------
    def _forget_dead_workers(self, db: sqlite3.Connection) -> None:
        for row in db.execute("SELECT pid FROM workers").fetchall():
            if not _pid_alive(row["pid"]):
                db.execute("DELETE FROM workers WHERE pid=?", (row["pid"],))

    def register_worker(self, pid: int) -> bool:
        """True if this process is now the worker (or was recorded as the one starting); False if another live one is."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            self._forget_dead_workers(db)
            others = [r["pid"] for r in db.execute("SELECT pid FROM workers") if r["pid"] != pid]
            if others:
                db.execute("COMMIT")
                return False
            db.execute("INSERT OR IGNORE INTO workers (pid, started) VALUES (?, ?)", (pid, time.time()))
            db.execute("COMMIT")
        return True

    def start_worker_once(self, spawn: Callable[[], int]) -> int | None:
        """Call `spawn()` (which starts a worker process and returns its pid) unless a worker is alive or starting.

        The check and the record of the new pid happen under one write lock, so however many pages,
        tabs or commands ask at the same moment, and however long the new process takes to import
        torch, exactly one worker is started. Returns the new pid, or None when one was already there.
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._forget_dead_workers(db)
                if db.execute("SELECT COUNT(*) FROM workers").fetchone()[0]:
                    return None
                pid = spawn()
                db.execute("INSERT INTO workers (pid, started) VALUES (?, ?)", (pid, time.time()))
                return pid
            finally:
                db.execute("COMMIT")

    def unregister_worker(self, pid: int) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM workers WHERE pid=?", (pid,))

    def live_worker(self) -> int | None:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            self._forget_dead_workers(db)
            row = db.execute("SELECT pid FROM workers").fetchone()
            db.execute("COMMIT")
        return row["pid"] if row else None

    # -- reading ----------------------------------------------------------------------------------
    def get(self, run_id: str) -> Run:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise TransferLabError(f"no run with id {run_id}", "see `python -m tlcore runs list`")
        return _to_run(row)

    def list(self, status: str | None = None, sweep: str | None = None) -> list[Run]:
        query, args = "SELECT * FROM runs", []
        conditions = []
        if status:
            conditions.append("status=?")
            args.append(status)
        if sweep:
            conditions.append("sweep=?")
            args.append(sweep)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        with self._connect() as db:
            return [_to_run(r) for r in db.execute(query + " ORDER BY created DESC, id DESC", args)]

    def metrics(self, run_id: str) -> list[dict]:
        with self._connect() as db:
            return [json.loads(r["data"]) for r in
                    db.execute("SELECT data FROM metrics WHERE run_id=? ORDER BY epoch", (run_id,))]

    def events(self, run_id: str, after: int = 0, kinds: tuple[str, ...] | None = None) -> list[dict]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM events WHERE run_id=? AND id>? ORDER BY id", (run_id, after)).fetchall()
        return [{"id": r["id"], "ts": r["ts"], "kind": r["kind"], "message": r["message"], "data": json.loads(r["data"])}
                for r in rows if kinds is None or r["kind"] in kinds]

    def artifacts(self, run_id: str) -> dict[str, str]:
        with self._connect() as db:
            return {r["kind"]: r["path"] for r in db.execute("SELECT kind, path FROM artifacts WHERE run_id=?", (run_id,))}

    def cancel_requested(self, run_id: str) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row and row["cancel_requested"])


def _to_run(row: sqlite3.Row) -> Run:
    data = dict(row)
    data["config"] = json.loads(data["config"])
    data["cancel_requested"] = bool(data["cancel_requested"])
    data["resume"] = bool(data["resume"])
    return Run(**data)
