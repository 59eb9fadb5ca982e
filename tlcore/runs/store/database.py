"""The store's SQLite file: opening it (read-only where it cannot be written), the schema, and recovery.

A damaged file is set aside (never overwritten) and a new store is built from the run folders; a file deleted
or replaced while an operation used it is rebuilt the same way. Either way the operation fails with a
`StoreError` marked `rebuilt`, and `retried_after_a_rebuild` does it once more on the new store. Every
operation whose effects live only in the database may be retried (the rebuilt store holds nothing of the
failed attempt); one with an effect outside it (starting a process) is not.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from tlcore.errors import TransferLabError
from tlcore.runs.store.records import SCHEMA

__all__ = ["Database", "StoreError", "retried_after_a_rebuild"]


class StoreError(TransferLabError):
    """The run store cannot be read or written (permissions, a full disk, damage).

    Attributes:
        rebuilt: the damaged store was set aside and a new one built, so trying again can work.
    """

    def __init__(self, problem: str, hint: str = "", *, rebuilt: bool = False) -> None:
        super().__init__(problem, hint)
        self.rebuilt = rebuilt


def retried_after_a_rebuild(method):
    """Marks a store operation safe to do again, once, when the store was rebuilt under it.

    Args:
        method: an operation whose effects live only in the database.

    Returns:
        The operation, retried once after a `StoreError` marked `rebuilt`.
    """
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except StoreError as exc:
            if not exc.rebuilt:
                raise
            return method(self, *args, **kwargs)
    wrapper.retried_after_a_rebuild = True
    return wrapper


_SETUP_TRIES = 5  # connections set up while the store's files are deleted or rebuilt under them
REBUILT_SINCE_LAST_USED = ("the run store was deleted or replaced since this process last used it; it was rebuilt "
                           "from the run folders")


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


def _a_shell(path: Path) -> bool:
    """The file is an SQLite database without the runs table: no store, only what a connection creates when it
    opens a path whose store was just moved aside. (Damage, or no file at all, is not a shell: said elsewhere.)"""
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='runs'").fetchone() is None
    except sqlite3.Error:
        return False
    finally:
        db.close()


class _Building:
    """A store file being built, for `fill_from_run_folders`: plain connections, nothing else watched."""

    def __init__(self, path: Path, runs_dir: Path) -> None:
        self.path, self.runs_dir = path, runs_dir

    @contextmanager
    def connect(self, check: bool = True):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()


class Database:
    """One store file: connections to it, and its recovery.

    Args:
        path: the SQLite file.
        fill: called with this database to add the runs found in the run folders and not in the file: all of
            them when the file is new (or newly rebuilt), else (`adopting=True`) those whose creator died between
            making the folder and the row; returns how many it added.

    Attributes:
        path: the file; runs_dir: where run folders live (beside it); read_only: it can only be looked at;
        notes: what opening or recovering it had to do, for the UI and CLI to say.

    Raises:
        StoreError: the folder cannot be created, or the file cannot be opened.
    """

    def __init__(self, path: Path, fill: Callable[..., int] = lambda db, adopting=False: 0) -> None:
        self.path = Path(path)
        self.runs_dir = self.path.parent / "runs"
        self.notes: list[str] = []
        self.read_only = False
        self._fill = fill
        self._known: str | None = None  # the store this object last used (its own id): another means it was rebuilt
        self.open()

    def open(self) -> None:
        """Open (or create) the file with the current schema; a new file is filled from the run folders, an existing
        one gets the runs whose creator died before their row was written."""
        self._known = None  # what this opening does, it says itself
        folder = self.path.parent
        if self.path.exists() and not (os.access(self.path, os.W_OK) and os.access(folder, os.W_OK)):
            self.read_only = True
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data folder {folder}: {exc.strerror}",
                             "set TRANSFERLAB_HOME to a writable folder") from None
        # an empty file, or an SQLite file without the runs (another process's connection made it in the moment a
        # damaged store was set aside) is no store yet: built whole from the run folders
        built = not self.path.exists() or self.path.stat().st_size == 0 or _a_shell(self.path)
        if built:
            restored = self._build_whole()
            if restored:
                self.notes.append(f"{restored} run(s) were found in their folders and added to the run store")
        with self.connect(check=False) as db:  # a damaged file is set aside (and the store rebuilt) in here
            db.executescript(SCHEMA)
            columns = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
            if "runner" not in columns:  # a store made before runs could go to Ray
                db.execute("ALTER TABLE runs ADD COLUMN runner TEXT")
            # each store file its own id, once (a file's inode is no identity: a new file often reuses a deleted one's);
            # looked at first, so an opening takes the write lock only the first time
            if db.execute("SELECT 1 FROM store_identity LIMIT 1").fetchone() is None:
                db.execute("INSERT INTO store_identity (id) SELECT ? WHERE NOT EXISTS (SELECT 1 FROM store_identity)",
                           (uuid.uuid4().hex,))
        if not built:  # a run folder the store never heard of: its creator was killed between the folder and the row
            adopted = self._fill(self, adopting=True)
            if adopted:
                self.notes.append(f"{adopted} run(s) found in their folders but not in the run store were added "
                                  "(the command that queued them was stopped before it finished)")

    def _build_whole(self) -> int:
        """A new store, filled from the run folders in a file of its own and then put in place at once: another
        process never sees it half filled (a run it asks for missing), and of two processes building at the same
        moment the first to finish wins. Returns the runs this process added (0 when another one's store won)."""
        building = self.path.with_name(f".{self.path.name}.building-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        try:
            with _Building(building, self.runs_dir).connect() as db:
                db.executescript(SCHEMA)
            restored = self._fill(_Building(building, self.runs_dir))
            try:
                os.link(building, self.path)  # appears whole, and only where no store is yet
            except FileExistsError:
                if self.path.stat().st_size and not _a_shell(self.path):
                    return 0  # another process put its store in place first: that one is used
                os.replace(building, self.path)  # an empty file or shell (a creation that died, a stray connect)
            return restored
        finally:
            building.unlink(missing_ok=True)

    def set_aside(self, why: str) -> Path:
        """Move the file (and its WAL files) aside under a new name, and note it.

        Args:
            why: the damage, for the note.

        Returns:
            Where the file went.
        """
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.path) + suffix)
            if part.exists():
                part.replace(Path(str(aside) + suffix))
        self.notes.append(f"the run store could not be opened ({why}); it was set aside as {aside.name} and a new one "
                          "was built from the run folders")
        return aside

    @contextmanager
    def connect(self, check: bool = True):
        """A connection for one operation, closed after it.

        Args:
            check: rebuild first when the file is gone, and watch for it being replaced during the operation.

        Yields:
            The `sqlite3.Connection` (autocommit; rows by name).

        Raises:
            StoreError: one line for any SQLite problem; marked `rebuilt` when the store was rebuilt under it.
        """
        # Never open the database file with anything but SQLite: closing any other descriptor of it drops
        # this process's POSIX locks, and concurrent connections then corrupt it.
        for attempt in range(_SETUP_TRIES):
            if check and not self.read_only and not self.path.exists():
                # deleted while in use (a worker outlives many commands): rebuilt from the run folders, and said
                # even when another process's rebuild is the one put in place (this opening adds no note then)
                used, said = self._known is not None, len(self.notes)
                self.open()
                if used:
                    self.notes.insert(said, REBUILT_SINCE_LAST_USED)
            opened = self._identity()  # before connecting: a file deleted in between is then seen as replaced
            files = self._files_now()
            try:
                db = self._setup()
                break
            except StoreError:
                # SQLite says "disk I/O error" when the WAL files it is setting up are deleted under it (the store
                # deleted by hand while a worker used it): no disk's fault, and a new try finds the files settled
                if self.read_only or attempt == _SETUP_TRIES - 1 or files == self._files_now():
                    raise
                time.sleep(0.05 * (attempt + 1))
        if check and not self.read_only:
            self._notice_a_replaced_store(db)
        journal = self._journal_identity()  # held open by this connection from here: SQLite never deletes them
        try:
            yield db
            if check and not self.read_only and (self._identity() != opened or self._journal_lost(journal)):
                raise _Moved()
        except (sqlite3.Error, _Moved) as exc:
            if not self.read_only and self._journal_lost(journal) and self._identity() == opened:
                # its -wal/-shm deleted under a live connection (e.g. by hand, or half of a deletion another process
                # rebuilt in between): processes now write through different journals, so the file is not trusted
                db.close()
                aside = self.set_aside("its journal files were deleted while in use")
                self.open()
                raise StoreError(f"the run store's journal was deleted while in use; the store was set aside as "
                                 f"{aside.name} and rebuilt from the run folders", "run the command again",
                                 rebuilt=True) from None
            if not self.read_only and self._identity() != opened:
                # deleted or replaced while this was using it: what it wrote went to the old file
                db.close()
                self.open()
                self.notes.append("the run store was deleted or replaced while in use; it was rebuilt from the "
                                  "run folders")
                raise StoreError("the run store was replaced while in use; it was rebuilt from the run folders",
                                 "run the command again", rebuilt=True) from None
            if not self.read_only and isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc) \
                    and _a_shell(self.path):  # the shell a stray connection made: the store is built, then retried
                db.close()
                self.open()
                raise StoreError("the run store was being replaced while in use; it was rebuilt from the run folders",
                                 "run the command again", rebuilt=True) from None
            problem = _sqlite_problem(exc, self.path)
            if "damaged" in problem.problem and not self.read_only:
                aside = self.set_aside(str(exc))
                self.open()  # a new store from the run folders, which the operation is retried on once
                problem = StoreError(f"the run store was damaged ({exc}); it was set aside as {aside.name} and "
                                     "rebuilt from the run folders", "run the command again", rebuilt=True)
            raise problem from None
        finally:
            db.close()

    def _notice_a_replaced_store(self, db: sqlite3.Connection) -> None:
        """A store file other than the one this object last used (another process rebuilt it in between) is noted."""
        try:
            row = db.execute("SELECT id FROM store_identity LIMIT 1").fetchone()
        except sqlite3.Error:  # a store of an older version, or one being set up: nothing to compare yet
            return
        if row is None:
            return
        if self._known is not None and row["id"] != self._known:
            self.notes.append(REBUILT_SINCE_LAST_USED)
        self._known = row["id"]

    def _identity(self, suffix: str = "") -> tuple[int, int] | None:
        """The file the path (with `suffix`: one of its WAL files) names now (device, inode), or None when gone."""
        try:
            info = os.stat(f"{self.path}{suffix}")
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def _files_now(self) -> tuple[tuple[int, int] | None, ...]:
        """The store file and its WAL files as they are now: (device, inode) of each, None where one is absent."""
        return tuple(self._identity(suffix) for suffix in ("", "-wal", "-shm"))

    def _journal_identity(self) -> dict[str, tuple[int, int]]:
        """The store's WAL files that exist now, by suffix, with their (device, inode)."""
        if self.read_only:
            return {}
        found = {suffix: self._identity(suffix) for suffix in ("-wal", "-shm")}
        return {suffix: identity for suffix, identity in found.items() if identity is not None}

    def _journal_lost(self, journal: dict[str, tuple[int, int]]) -> bool:
        """Whether a WAL file this connection held was deleted or replaced since."""
        now = self._journal_identity()
        return any(now.get(suffix) != identity for suffix, identity in journal.items())

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
                self.set_aside(str(exc))
                self.open()  # a new, empty store, filled from the run folders
        raise AssertionError("unreachable")
