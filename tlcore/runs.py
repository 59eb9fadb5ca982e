"""The run store: SQLite in WAL mode, one writer (the trainer) and any number of readers (pages, CLI).

A run is a row with its config, status and heartbeat; its epochs, events and
artifacts are rows beside it. Nothing is ever deleted by a failure: a crashed or
cancelled run keeps its metrics and its last checkpoint, and can be resumed.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from tlcore.run_files import BEST, CONFIG, EVALUATION, HISTORY, LAST, PREDICTIONS, TRAINING_MARK, weights_epoch
from tlcore.errors import TransferLabError
from tlcore.paths import data_home

if TYPE_CHECKING:  # the store never builds a config: importing it would load torch for `runs list`
    from tlcore.config import RunConfig

__all__ = ["Run", "RunStore", "StoreError", "check_run_id", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "FINISHED"]

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
HEARTBEAT_STALE_S = 60.0
_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # what `create` makes; nothing else is a run id

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
    runner: str | None = None  # None: the local worker; "ray" or "ray:ADDRESS": a Ray driver takes it

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




def _training_pid(run_dir: Path) -> int | None:
    try:
        pid = int((run_dir / TRAINING_MARK).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def check_run_id(run_id: str) -> str:
    """Run ids reach file names and SQL parameters: anything but the shape `create` makes is refused early."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        shown = run_id if len(str(run_id)) <= 40 else str(run_id)[:37] + "..."
        raise TransferLabError(f"no run with id {shown}", "run ids look like 20261126-142233-a1b2c3; see "
                                                          "`python -m tlcore runs list`")
    return run_id


class StoreError(TransferLabError):
    """The run store cannot be read or written (permissions, a full disk, damage)."""

    def __init__(self, problem: str, hint: str = "", *, rebuilt: bool = False) -> None:
        super().__init__(problem, hint)
        self.rebuilt = rebuilt  # the damaged store was set aside and a new one built: trying again can work


def _once_more_after_a_rebuild(method):
    """Store operations found the store damaged mid-way are done again, once, on the rebuilt store."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except StoreError as exc:
            if not exc.rebuilt:
                raise
            return method(self, *args, **kwargs)
    return wrapper


class _Moved(Exception):
    """The store's file was deleted or replaced while an operation used it."""


_DAMAGED = ("file is not a database", "malformed", "not a database", "file is encrypted")


def _sqlite_problem(exc: sqlite3.Error, path: Path) -> StoreError:
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return StoreError(f"the run store {path} is read-only, and this needs to write to it",
                          "check the permissions of the folder, or set TRANSFERLAB_HOME to a writable folder")
    if "disk is full" in text or "disk I/O error" in text:
        return StoreError(f"the run store {path} could not be written ({text})",
                          "free some disk space (runs, exports and caches live beside it) and try again")
    if "locked" in text or "busy" in text:
        return StoreError(f"the run store {path} is busy ({text})", "another process holds it; try again in a moment")
    if any(mark in text for mark in _DAMAGED):
        return StoreError(f"the run store {path} is damaged ({text})",
                          "run the command again: a damaged store is set aside and rebuilt from the run folders")
    return StoreError(f"the run store {path} failed: {text}", "try again; if it persists, move the file aside")


def _each_operation_survives_a_rebuild(cls):
    for name, member in list(vars(cls).items()):
        if callable(member) and not name.startswith("_"):
            setattr(cls, name, _once_more_after_a_rebuild(member))
    return cls


@_each_operation_survives_a_rebuild
class RunStore:
    """The runs of one data folder. Opening it needs no write access; a store that is gone or damaged is set
    aside (never overwritten) and rebuilt from the run folders, which hold config, history and evaluation."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else data_home() / "runs.sqlite"
        self.runs_dir = self.path.parent / "runs"
        self.notes: list[str] = []  # what opening the store had to do, for the UI and CLI to say
        self.read_only = False
        self._open()

    def _open(self) -> None:
        folder = self.path.parent
        if self.path.exists() and not (os.access(self.path, os.W_OK) and os.access(folder, os.W_OK)):
            self.read_only = True
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data folder {folder}: {exc.strerror}",
                             "set TRANSFERLAB_HOME to a writable folder") from None
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        with self._connect(check=False) as db:  # a damaged file is set aside (and the store rebuilt) in here
            db.executescript(_SCHEMA)
            columns = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
            if "runner" not in columns:  # a store made before runs could go to Ray
                db.execute("ALTER TABLE runs ADD COLUMN runner TEXT")
        if fresh:
            self._rebuild()

    def _set_aside(self, why: str) -> Path:
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.path) + suffix)
            if part.exists():
                part.replace(Path(str(aside) + suffix))
        self.notes.append(f"the run store could not be opened ({why}); it was set aside as {aside.name} and a new one "
                          "was built from the run folders")
        return aside

    def _rebuild(self) -> None:
        """Runs found in their folders but not in the store come back: finished ones with their results."""
        found = sorted(p for p in self.runs_dir.glob(f"*/{CONFIG}")) if self.runs_dir.is_dir() else []
        restored = 0
        with self._connect(check=False) as db:
            known = {r["id"] for r in db.execute("SELECT id FROM runs")}
            for config_path in found:
                run_dir = config_path.parent
                if run_dir.name in known or not _RUN_ID.fullmatch(run_dir.name):
                    continue
                try:
                    config = json.loads(config_path.read_text())
                    history = json.loads((run_dir / HISTORY).read_text()) if (run_dir / HISTORY).is_file() else []
                except (OSError, ValueError):
                    continue
                if not isinstance(config, dict) or not isinstance(history, list):
                    continue
                done = (run_dir / EVALUATION).is_file()
                stamped = weights_epoch(run_dir / LAST)  # the last complete epoch, when there is no history yet
                epochs_done = len(history) or (0 if stamped is None else stamped + 1)
                trainer = _training_pid(run_dir)
                name = config.get("name") or f"{config.get('model', {}).get('name', '?')} / " \
                                             f"{config.get('freeze', {}).get('strategy', 'custom')}"
                status = SUCCEEDED if done else RUNNING if trainer else FAILED
                error = None if status != FAILED else ("found in its folder when the run store was rebuilt; its "
                                                       "checkpoint is kept: resume it to continue")
                created = run_dir.stat().st_mtime
                db.execute("INSERT INTO runs (id, name, config, status, error, created, started, finished, run_dir, "
                           "epochs_done, pid, heartbeat) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                           (run_dir.name, str(name), json.dumps(config), status, error, created, created,
                            None if status == RUNNING else created, str(run_dir), epochs_done, trainer,
                            time.time() if trainer else None))
                if trainer:  # still training: it is the worker, so no second one starts beside it
                    db.execute("INSERT OR IGNORE INTO workers (pid, started) VALUES (?, ?)", (trainer, time.time()))
                for row in history:
                    if isinstance(row, dict) and isinstance(row.get("epoch"), int):
                        db.execute("INSERT OR REPLACE INTO metrics (run_id, epoch, data) VALUES (?,?,?)",
                                   (run_dir.name, row["epoch"], json.dumps(row)))
                for kind, file in (("best", BEST), ("last", LAST), ("evaluation", EVALUATION),
                                   ("predictions", PREDICTIONS)):
                    if (run_dir / file).is_file():
                        db.execute("INSERT OR REPLACE INTO artifacts (run_id, kind, path) VALUES (?,?,?)",
                                   (run_dir.name, kind, str(run_dir / file)))
                restored += 1
        if restored:
            self.notes.append(f"{restored} run(s) were found in their folders and added to the run store")

    @contextmanager
    def _connect(self, check: bool = True):
        # Never open the database file with anything but SQLite: closing any other descriptor of it drops
        # this process's POSIX locks, and concurrent connections then corrupt it.
        if check and not self.read_only and not self.path.exists():
            self._open()  # deleted while in use (a worker outlives many commands): rebuilt from the run folders
        opened = self._identity()  # before connecting: a file deleted in between is then seen as replaced
        db = self._setup()
        try:
            yield db
            if check and not self.read_only and self._identity() != opened:
                raise _Moved()
        except (sqlite3.Error, _Moved) as exc:
            if not self.read_only and self._identity() != opened:
                # deleted or replaced while this was using it: what it wrote went to the old file, so the
                # operation is done again on the store rebuilt from the run folders
                db.close()
                self._open()
                raise StoreError("the run store was replaced while in use; it was rebuilt from the run folders",
                                 "run the command again", rebuilt=True) from None
            problem = _sqlite_problem(exc, self.path)
            if "damaged" in problem.problem and not self.read_only:
                aside = self._set_aside(str(exc))
                self._open()  # a new store from the run folders, which the operation is retried on once
                problem = StoreError(f"the run store was damaged ({exc}); it was set aside as {aside.name} and "
                                     "rebuilt from the run folders", "run the command again", rebuilt=True)
            raise problem from None
        finally:
            db.close()

    def _identity(self) -> tuple[int, int] | None:
        """The file the store's path names now (device, inode), or None when it is gone."""
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def _setup(self) -> sqlite3.Connection:
        for attempt in range(2):
            db = None
            try:
                if self.read_only:
                    db = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, timeout=30,
                                         isolation_level=None)
                else:
                    db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA busy_timeout=30000")
                if not self.read_only:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return db
            except sqlite3.Error as exc:
                if db is not None:
                    db.close()
                problem = _sqlite_problem(exc, self.path)
                if attempt or "damaged" not in problem.problem or self.read_only:
                    raise problem from None
                self._set_aside(str(exc))
                self._open()  # a new, empty store, filled from the run folders
        raise AssertionError("unreachable")

    # -- writing ----------------------------------------------------------------------------------
    def create(self, config: RunConfig, *, sweep: str | None = None, runner: str | None = None) -> Run:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        run_dir = data_home() / "runs" / run_id
        name = config.name or f"{config.model.name} / {config.freeze.get('strategy', 'custom')}"
        with self._connect() as db:
            db.execute("INSERT INTO runs (id, name, config, status, created, run_dir, sweep, runner) "
                       "VALUES (?,?,?,?,?,?,?,?)",
                       (run_id, name, config.to_json(), QUEUED, time.time(), str(run_dir), sweep, runner))
        return self.get(run_id)

    def claim(self, run_id: str, pid: int) -> bool:
        """Take this queued run for a process that drives it elsewhere (Ray); False if it is not queued."""
        now = time.time()
        with self._connect() as db:
            return bool(db.execute("UPDATE runs SET status=?, pid=?, started=COALESCE(started, ?), heartbeat=?, "
                                   "error=NULL, finished=NULL WHERE id=? AND status=?",
                                   (RUNNING, pid, now, now, run_id, QUEUED)).rowcount)

    def started_now(self, run_id: str) -> None:
        """A run claimed by a Ray driver waits in Ray's queue: its clock starts when a worker takes it."""
        with self._connect() as db:
            db.execute("UPDATE runs SET started=? WHERE id=? AND resume=0", (time.time(), run_id))

    def claim_next(self, pid: int) -> Run | None:
        """Atomically take the oldest queued run for this worker process (runs meant for Ray are left alone)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT id FROM runs WHERE status = ? AND runner IS NULL ORDER BY created, id LIMIT 1",
                             (QUEUED,)).fetchone()
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

    def requeue_for_resume(self, run_id: str, runner: str | None = None) -> Run:
        """Queue a failed or cancelled run again, for the local worker (`runner` None) or a Ray driver."""
        self.reap_dead()  # a run whose process was just killed is failed, not "running"
        run = self.get(run_id)
        if run.status not in (FAILED, CANCELLED):
            raise TransferLabError(f"run {run_id} is {run.status}", "only failed or cancelled runs can be resumed")
        with self._connect() as db:
            db.execute("UPDATE runs SET status=?, resume=1, error=NULL, cancel_requested=0, finished=NULL, runner=? "
                       "WHERE id=?", (QUEUED, runner, run_id))
        return self.get(run_id)

    def reap_dead(self, stale_after: float = HEARTBEAT_STALE_S) -> list[str]:
        """Runs marked running whose process is gone (killed, out of memory) become failed, with the reason."""
        reaped = []
        now = time.time()
        if self.read_only:  # can only be looked at; the next command with write access reaps
            return reaped
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
        if self.read_only:
            with self._connect() as db:
                pids = [r["pid"] for r in db.execute("SELECT pid FROM workers")]
            return next((p for p in pids if _pid_alive(p)), None)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            self._forget_dead_workers(db)
            row = db.execute("SELECT pid FROM workers").fetchone()
            db.execute("COMMIT")
        return row["pid"] if row else None

    # -- reading ----------------------------------------------------------------------------------
    def get(self, run_id: str) -> Run:
        check_run_id(run_id)
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
