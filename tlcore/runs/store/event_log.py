"""What runs said and made: events, per-epoch metrics and artifact paths."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tlcore.runs.store.database import Database, retried_after_a_rebuild

__all__ = ["EventLog"]


class EventLog:
    """The events, metrics and artifacts of runs, in one store.

    Args:
        database: the store's `Database`.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def add_event(self, run_id: str, kind: str, message: str, data: dict | None = None, ts: float | None = None) -> None:
        """Record an event; an "epoch" event also records its metrics and the run's epoch count.

        Args:
            run_id: the run; kind, message, data: the event (data JSON-serialisable; "epoch" holds its number).
            ts: when it happened (default: now); the run folder's copy of the event carries the same, so a store
                rebuilt from the folder does not count it twice.
        """
        self._add_event(run_id, time.time() if ts is None else ts, kind, message, json.dumps(data or {}), data or {})

    @retried_after_a_rebuild
    def _add_event(self, run_id: str, ts: float, kind: str, message: str, text: str, data: dict) -> None:
        with self.database.connect() as db:  # once only, even when retried: the event is its own key
            db.execute("INSERT INTO events (run_id, ts, kind, message, data) SELECT ?,?,?,?,? WHERE NOT EXISTS "
                       "(SELECT 1 FROM events WHERE run_id=? AND ts=? AND kind=? AND message=?)",
                       (run_id, ts, kind, message, text, run_id, ts, kind, message))
            if kind == "epoch":
                db.execute("INSERT OR REPLACE INTO metrics (run_id, epoch, data) VALUES (?,?,?)",
                           (run_id, int(data["epoch"]), text))
                db.execute("UPDATE runs SET epochs_done=?, heartbeat=? WHERE id=?",
                           (int(data["epoch"]) + 1, ts, run_id))

    @retried_after_a_rebuild
    def add_artifact(self, run_id: str, kind: str, path: str | Path) -> None:
        """Record (or replace) the path of one of the run's files.

        Args:
            run_id: the run; kind: "best", "last", "evaluation", "predictions"...; path: the file.
        """
        with self.database.connect() as db:
            db.execute("INSERT OR REPLACE INTO artifacts (run_id, kind, path) VALUES (?,?,?)", (run_id, kind, str(path)))

    @retried_after_a_rebuild
    def metrics(self, run_id: str) -> list[dict]:
        """The run's epochs' metrics, in epoch order.

        Args:
            run_id: the run.

        Returns:
            One dict per recorded epoch.
        """
        with self.database.connect() as db:
            return [json.loads(r["data"]) for r in
                    db.execute("SELECT data FROM metrics WHERE run_id=? ORDER BY epoch", (run_id,))]

    @retried_after_a_rebuild
    def events(self, run_id: str, after: int = 0, kinds: tuple[str, ...] | None = None,
               last: int | None = None) -> list[dict]:
        """The run's events after a given event id.

        Args:
            run_id: the run; after: the last event id already seen (0: all); kinds: only these kinds (None: all).
            last: only the latest this many (None: all): a page that redraws every second reads its run's latest
                progress without decoding the hour of progress before it.

        Returns:
            Dicts with id, ts, kind, message and data, oldest first.
        """
        kinds = None if kinds is None else tuple(kinds)
        where = "run_id=? AND id>?" + ("" if kinds is None else f" AND kind IN ({','.join('?' * len(kinds))})")
        limit = "" if last is None else f" LIMIT {max(0, int(last))}"
        with self.database.connect() as db:
            rows = db.execute(f"SELECT * FROM events WHERE {where} ORDER BY id DESC{limit}",
                              (run_id, after, *(kinds or ()))).fetchall()
        return [{"id": r["id"], "ts": r["ts"], "kind": r["kind"], "message": r["message"], "data": json.loads(r["data"])}
                for r in reversed(rows)]

    @retried_after_a_rebuild
    def artifacts(self, run_id: str) -> dict[str, str]:
        """The run's recorded files.

        Args:
            run_id: the run.

        Returns:
            Paths by kind.
        """
        with self.database.connect() as db:
            return {r["kind"]: r["path"] for r in db.execute("SELECT kind, path FROM artifacts WHERE run_id=?", (run_id,))}
