"""A store rebuilt from the run folders: each folder holds its config, history, checkpoints and evaluation, so
runs come back with their status, epochs, metrics and artifacts; a run still training comes back running."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tlcore.run_files import BEST, CONFIG, EVALUATION, HISTORY, LAST, PREDICTIONS, TRAINING_MARK, weights_epoch
from tlcore.store.records import FAILED, RUNNING, SUCCEEDED, created_at, is_run_id, pid_alive

__all__ = ["fill_from_run_folders"]


def _training_pid(run_dir: Path) -> int | None:
    try:
        pid = int((run_dir / TRAINING_MARK).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def fill_from_run_folders(database) -> int:
    """Add the runs found in `database.runs_dir` but not in the store: finished ones with their results.

    Args:
        database: the `Database` to fill.

    Returns:
        How many runs were added.
    """
    runs_dir = database.runs_dir
    found = sorted(p for p in runs_dir.glob(f"*/{CONFIG}")) if runs_dir.is_dir() else []
    restored = 0
    with database.connect(check=False) as db:
        known = {r["id"] for r in db.execute("SELECT id FROM runs")}
        for config_path in found:
            run_dir = config_path.parent
            if run_dir.name in known or not is_run_id(run_dir.name):
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
            changed = run_dir.stat().st_mtime
            created = created_at(run_dir.name) or changed  # the id says when it was created; the folder, when touched
            db.execute("INSERT INTO runs (id, name, config, status, error, created, started, finished, run_dir, "
                       "epochs_done, pid, heartbeat) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                       (run_dir.name, str(name), json.dumps(config), status, error, created, created,
                        None if status == RUNNING else changed, str(run_dir), epochs_done, trainer,
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
    return restored
