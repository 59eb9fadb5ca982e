"""Seconds for the store-only commands (`runs list`, `runs show`, `runs cancel`, `--help`) against a plain loop
in the same run: a bare `python -c` reading the same SQLite file, and what importing torch + timm would add.

A store of 50 runs with 5 epochs each is made in a temporary data folder; each command is timed 5 times from a
new process (median). Usage: `.venv/bin/python bench/store_commands.py`
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tlcore.config import RunConfig  # noqa: E402
from tlcore.runs import RunStore  # noqa: E402

REPEATS = 5


def seconds(argv: list[str], env: dict) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="tl-bench-store-"))
    env = {**os.environ, "TRANSFERLAB_HOME": str(home)}
    store = RunStore(home / "runs.sqlite")
    config = RunConfig.from_dict({"data": {"source": "sample_data"}, "epochs": 5})
    ids = []
    for _ in range(50):
        run = store.create(config)
        for epoch in range(5):
            store.add_event(run.id, "epoch", "epoch", {"epoch": epoch, "val_acc": 0.5, "train_loss": 1.0,
                                                        "train_acc": 0.5, "val_loss": 1.0, "images_per_s": 1.0,
                                                        "epoch_seconds": 1.0})
        store.finish(run.id, "succeeded")
        ids.append(run.id)
    py = [sys.executable]
    plain = ("import sqlite3, json, sys; db = sqlite3.connect(sys.argv[1]); "
             "rows = db.execute('SELECT id, status, config FROM runs ORDER BY created DESC').fetchall(); "
             "[print(r[0], r[1], json.loads(r[2]).get('epochs')) for r in rows]")
    rows = [
        ("python -m tlcore runs list (50 runs)", seconds(py + ["-m", "tlcore", "runs", "list"], env)),
        ("python -m tlcore runs show ID", seconds(py + ["-m", "tlcore", "runs", "show", ids[0]], env)),
        ("python -m tlcore runs cancel ID (finished: refused)", seconds(py + ["-m", "tlcore", "runs", "cancel", ids[1]], env)),
        ("python -m tlcore --help", seconds(py + ["-m", "tlcore", "--help"], env)),
        ("plain loop: python -c sqlite3 read of the same store", seconds(py + ["-c", plain, str(home / "runs.sqlite")], env)),
        ("reference: python -c 'import torch, timm'", seconds(py + ["-c", "import torch, timm"], env)),
    ]
    print(f"| command | median seconds ({REPEATS} runs, new process each) |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
