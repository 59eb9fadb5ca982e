"""A store rebuilt from the run folders: each folder holds its config, history, checkpoints and evaluation, so
runs come back with their status, epochs, metrics and artifacts; a run still training comes back running."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tlcore.core.run_files import (BEST, CONFIG, EVALUATION, EVENTS_LOG, HISTORY, LAST, PREDICTIONS, TRAINING_MARK,
                              read_run_record, weights_epoch)
from tlcore.runs.store.records import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, created_at, is_run_id, pid_alive

__all__ = ["fill_from_run_folders"]


def _training_pid(run_dir: Path) -> int | None:
    try:
        pid = int((run_dir / TRAINING_MARK).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def fill_from_run_folders(database, adopting: bool = False) -> int:
    """Add the runs found in `database.runs_dir` but not in the store: finished ones with their results.

    Args:
        database: the `Database` to fill.
        adopting: the store is not new: only folders whose creator is gone are added (a run being queued this
            moment has its folder before its row; the command queueing it adds the row itself).

    Returns:
        How many runs were added.
    """
    runs_dir = database.runs_dir
    restored = 0
    with database.connect(check=False) as db:
        known = {r["id"] for r in db.execute("SELECT id FROM runs")}
        try:  # the names first: a store of thousands of runs opens without a look inside each known folder
            names = sorted(set(os.listdir(runs_dir)) - known)
        except OSError:
            names = []
        for name in names:
            run_dir = runs_dir / name
            config_path = run_dir / CONFIG
            if not is_run_id(name) or not config_path.is_file():
                continue
            creator = read_run_record(run_dir).get("creator")
            if adopting and isinstance(creator, int) and not isinstance(creator, bool) and pid_alive(creator):
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
            record = read_run_record(run_dir)  # its name, comparison, runner, and whether it ever started
            name = record.get("name") if isinstance(record.get("name"), str) else config.get("name") or \
                f"{config.get('model', {}).get('name', '?')} / {config.get('freeze', {}).get('strategy', 'custom')}"
            never_started = record.get("state") in (QUEUED, CANCELLED) and not epochs_done and not trainer
            ended = record.get("state") in (FAILED, CANCELLED) and not trainer  # as the store last said, with why
            status = SUCCEEDED if done else RUNNING if trainer else record["state"] if never_started or ended \
                else FAILED
            kept = record.get("error") if isinstance(record.get("error"), str) else None  # why it ended, as said
            error = None if status in (SUCCEEDED, RUNNING, QUEUED) else kept or (
                "cancelled before it started" if status == CANCELLED else
                "found in its folder when the run store was rebuilt; its checkpoint is kept: resume it to continue")
            changed = run_dir.stat().st_mtime
            created = record.get("created") if isinstance(record.get("created"), (int, float)) else None
            created = created or created_at(run_dir.name) or changed  # else the id's time, else the folder's
            sweep = record.get("sweep") if isinstance(record.get("sweep"), str) else None
            runner = record.get("runner") if isinstance(record.get("runner"), str) else None
            inserted = db.execute(  # OR IGNORE: its creator (or another process adopting it) may insert it first
                       "INSERT OR IGNORE INTO runs (id, name, config, status, error, created, started, finished, "
                       "run_dir, epochs_done, pid, heartbeat, sweep, runner) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (run_dir.name, str(name), json.dumps(config), status, error, created,
                        None if status == QUEUED else created,
                        None if status in (RUNNING, QUEUED) else changed, str(run_dir), epochs_done, trainer,
                        time.time() if trainer else None, sweep, runner)).rowcount
            if not inserted:
                continue
            _restore_events(db, run_dir)
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
    return restored


def _restore_events(db, run_dir: Path) -> None:
    """The run's events as its folder kept them (`events.jsonl`), so the rebuilt log is the one the run wrote."""
    try:
        lines = (run_dir / EVENTS_LOG).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return
    for line in lines:
        try:
            event = json.loads(line)
            row = (run_dir.name, float(event["ts"]), str(event["kind"]), str(event["message"]),
                   json.dumps(event.get("data") or {}))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash
        db.execute("INSERT INTO events (run_id, ts, kind, message, data) VALUES (?,?,?,?,?)", row)
