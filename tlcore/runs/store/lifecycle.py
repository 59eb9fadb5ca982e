"""A run's life in the store: created (queued), claimed (running), its heartbeat, cancelled, finished,
requeued to resume, and failed when its process died."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from tlcore.errors import TransferLabError
from tlcore.core.files import atomic_write
from tlcore.core.run_files import CONFIG, read_run_record, write_run_record
from tlcore.runs.store.database import Database, retried_after_a_rebuild
from tlcore.runs.store.event_log import EventLog
from tlcore.runs.store.records import (CANCELLED, FAILED, QUEUED, RUNNING, Run, check_run_id, is_sweep_id, new_run_id,
                                  pid_alive, to_run)

if TYPE_CHECKING:  # the store never builds a config: importing it would load torch for `runs list`
    from tlcore.config import RunConfig

__all__ = ["RunLifecycle", "HEARTBEAT_STALE_S"]

HEARTBEAT_STALE_S = 60.0


class RunLifecycle:
    """The runs' rows: status, times, process, flags.

    Args:
        database: the store's `Database`; log: its `EventLog` (a run failed for a dead process says why there).
    """

    def __init__(self, database: Database, log: EventLog) -> None:
        self.database = database
        self.log = log

    # -- writing ----------------------------------------------------------------------------------
    def create(self, config: RunConfig, *, sweep: str | None = None, runner: str | None = None) -> Run:
        """Queue a new run; its folder will be under the store's runs folder (where a rebuild looks).

        Args:
            config: the run; sweep: the comparison it belongs to; runner: None (local worker) or a Ray runner.

        Returns:
            The queued run.
        """
        run_id = new_run_id()
        name = config.name or f"{config.model.name} / {config.freeze.name}"
        run_dir, created = self.database.runs_dir / run_id, time.time()
        # the folder first, with the config and a queued record: a store rebuilt from the folders gets it back
        write_run_record(run_dir, state=QUEUED, sweep=sweep, runner=runner, created=created, name=name,
                         creator=os.getpid())  # while its creator lives, another process's opening does not add it
        atomic_write(run_dir / CONFIG, lambda tmp: tmp.write_text(config.to_json()))
        self._insert(run_id, name, config.to_json(), created, str(run_dir), sweep, runner)
        return self.get(run_id)

    @retried_after_a_rebuild
    def _insert(self, run_id: str, name: str, config: str, created: float, run_dir: str, sweep: str | None,
                runner: str | None) -> None:
        with self.database.connect() as db:  # the id is made once, so a retry cannot make a second run
            db.execute("INSERT OR IGNORE INTO runs (id, name, config, status, created, run_dir, sweep, runner) "
                       "VALUES (?,?,?,?,?,?,?,?)", (run_id, name, config, QUEUED, created, run_dir, sweep, runner))

    @retried_after_a_rebuild
    def claim(self, run_id: str, pid: int) -> bool:
        """Take this queued run for a process that drives it elsewhere (Ray).

        Args:
            run_id: the run; pid: the driving process.

        Returns:
            False if it is not queued.
        """
        now = time.time()
        with self.database.connect() as db:
            taken = bool(db.execute("UPDATE runs SET status=?, pid=?, started=COALESCE(started, ?), heartbeat=?, "
                                    "error=NULL, finished=NULL WHERE id=? AND status=?",
                                    (RUNNING, pid, now, now, run_id, QUEUED)).rowcount)
        if taken:  # its folder says it started (a Ray run never passes through the local worker's execute)
            self._record(run_id, state=RUNNING, error=None)
        return taken

    def _record(self, run_id: str, **fields: object) -> None:
        """The run's record in its folder follows the store; a folder that cannot be written is not the run's end."""
        try:
            write_run_record(self.get(run_id).run_dir, **fields)
        except (OSError, TransferLabError):
            pass

    @retried_after_a_rebuild
    def started_now(self, run_id: str) -> None:
        """A run claimed by a Ray driver waits in Ray's queue: its clock starts when a worker takes it.

        Args:
            run_id: the run.
        """
        with self.database.connect() as db:
            db.execute("UPDATE runs SET started=? WHERE id=? AND resume=0", (time.time(), run_id))

    @retried_after_a_rebuild
    def claim_next(self, pid: int) -> Run | None:
        """Atomically take the oldest queued run for this worker process (runs meant for Ray are left alone).

        Args:
            pid: the worker process.

        Returns:
            The run, now running, or None when none is queued.
        """
        with self.database.connect() as db:
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

    @retried_after_a_rebuild
    def start_in_process(self, run_id: str, pid: int) -> None:
        """Mark a run as running in this process (the CLI's foreground `train`).

        Args:
            run_id: the run; pid: this process.
        """
        now = time.time()
        with self.database.connect() as db:
            db.execute("UPDATE runs SET status=?, pid=?, started=COALESCE(started, ?), heartbeat=? WHERE id=?",
                       (RUNNING, pid, now, now, run_id))

    @retried_after_a_rebuild
    def heartbeat(self, run_id: str) -> None:
        """Say the run's process is alive.

        Args:
            run_id: the run.
        """
        with self.database.connect() as db:
            db.execute("UPDATE runs SET heartbeat=? WHERE id=?", (time.time(), run_id))

    @retried_after_a_rebuild
    def finish(self, run_id: str, status: str, error: str | None = None, *, pid: int | None = None,
               only_if: str | None = None) -> bool:
        """Record how the run ended.

        Args:
            run_id: the run; status: succeeded, failed or cancelled; error: why (failed or cancelled).
            pid: the process that trained it: its end is recorded unless another process holds the run now (it
                was taken for dead, resumed and claimed again while this one went on).
            only_if: the status the run must still have (e.g. queued, for runs failed before they started).

        Returns:
            True when recorded; False when the run had moved on (another process holds it, or its status changed).
        """
        query, values = "WHERE id=?", [run_id]
        if pid is not None:  # a run reaped (pid NULL) and resumed (queued) is the user's again, not this process's
            query, values = query + " AND (pid=? OR (pid IS NULL AND status<>?))", values + [pid, QUEUED]
        if only_if is not None:
            query, values = query + " AND status=?", values + [only_if]
        with self.database.connect() as db:
            changed = db.execute("UPDATE runs SET status=?, error=?, finished=?, pid=NULL, cancel_requested=0, "
                                 f"resume=0 {query}", (status, error, time.time(), *values)).rowcount
        if changed:
            self._record(run_id, state=status, error=error)  # a rebuilt store says why, not a generic line
        return bool(changed)

    @retried_after_a_rebuild
    def request_cancel(self, run_id: str) -> Run:
        """A queued run is cancelled at once; a running one stops at its next step.

        Args:
            run_id: the run.

        Returns:
            The run after the request.

        Raises:
            TransferLabError: it has already ended.
        """
        run = self.get(run_id)
        with self.database.connect() as db:
            if run.status == QUEUED:
                db.execute("UPDATE runs SET status=?, finished=?, error=? WHERE id=? AND status=?",
                           (CANCELLED, time.time(), "cancelled before it started", run_id, QUEUED))
                if read_run_record(run.run_dir).get("state") == QUEUED:
                    write_run_record(run.run_dir, state=CANCELLED)
            elif run.status == RUNNING:  # keyed by the status read: a run that ended meanwhile is not flagged
                db.execute("UPDATE runs SET cancel_requested=1 WHERE id=? AND status=?", (run_id, RUNNING))
            else:
                raise TransferLabError(f"run {run_id} is already {run.status}", "only queued or running runs can be cancelled")
        return self.get(run_id)

    @retried_after_a_rebuild
    def requeue_for_resume(self, run_id: str, runner: str | None = None) -> Run:
        """Queue a failed or cancelled run again.

        Args:
            run_id: the run; runner: None for the local worker, or a Ray runner.

        Returns:
            The queued run.

        Raises:
            TransferLabError: it is not failed or cancelled.
        """
        self.reap_dead()  # a run whose process was just killed is failed, not "running"
        run = self.get(run_id)
        if run.status not in (FAILED, CANCELLED):
            raise TransferLabError(f"run {run_id} is {run.status}", "only failed or cancelled runs can be resumed")
        with self.database.connect() as db:  # keyed by (run, the status read): a retry or a second resume at the
            # same moment finds it queued already and changes nothing
            requeued = db.execute("UPDATE runs SET status=?, resume=1, error=NULL, cancel_requested=0, finished=NULL, "
                                  "runner=? WHERE id=? AND status=?", (QUEUED, runner, run_id, run.status)).rowcount
        if not requeued:
            now = self.get(run_id).status
            raise TransferLabError(f"run {run_id} is {now} (it changed while being resumed)",
                                   "only failed or cancelled runs can be resumed")
        self._record(run_id, state=QUEUED, runner=runner, error=None)
        return self.get(run_id)

    @retried_after_a_rebuild
    def reap_dead(self, stale_after: float = HEARTBEAT_STALE_S) -> list[str]:
        """Runs marked running whose process is gone (killed, out of memory) become failed, with the reason.

        Args:
            stale_after: seconds without a heartbeat after which a run counts as dead.

        Returns:
            The ids of the runs failed now.
        """
        reaped = []
        now = time.time()
        if self.database.read_only:  # can only be looked at; the next command with write access reaps
            return reaped
        for run in self.list(status=RUNNING):
            dead = not pid_alive(run.pid)
            stale = run.heartbeat is None or now - run.heartbeat > stale_after
            if dead or stale:
                why = "its process ended" if dead else f"no heartbeat for {now - (run.heartbeat or run.created):.0f} s"
                message = (f"the training process stopped without finishing ({why}: killed, crashed or out of memory) "
                           f"after {run.epochs_done} of {run.epochs} epochs; resume it to continue from its last checkpoint")
                with self.database.connect() as db:
                    changed = db.execute("UPDATE runs SET status=?, error=?, finished=?, pid=NULL WHERE id=? AND status=?",
                                         (FAILED, message, now, run.id, RUNNING)).rowcount
                if changed:
                    self.log.add_event(run.id, "error", message)
                    reaped.append(run.id)
        return reaped

    # -- reading ----------------------------------------------------------------------------------
    @retried_after_a_rebuild
    def get(self, run_id: str) -> Run:
        """One run.

        Args:
            run_id: the run.

        Returns:
            The run.

        Raises:
            TransferLabError: no such run (or not a run id).
        """
        check_run_id(run_id)
        with self.database.connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise TransferLabError(f"no run with id {run_id}", "see `python -m tlcore runs list`")
        return to_run(row)

    @retried_after_a_rebuild
    def list(self, status: str | None = None, sweep: str | None = None) -> list[Run]:
        """Runs, newest first.

        Args:
            status: only runs with this status; sweep: only runs of this comparison.

        Returns:
            The runs.
        """
        if sweep is not None and not is_sweep_id(sweep):
            return []  # no comparison has such an id (and SQLite cannot take every string: lone surrogates)
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
        with self.database.connect() as db:
            return [to_run(r) for r in db.execute(query + " ORDER BY created DESC, id DESC", args)]

    @retried_after_a_rebuild
    def cancel_requested(self, run_id: str) -> bool:
        """True when someone asked the running run to stop.

        Args:
            run_id: the run.
        """
        with self.database.connect() as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row and row["cancel_requested"])
