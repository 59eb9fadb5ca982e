"""How soon a cancel takes effect, asked at each moment of a run: while it starts (the worker importing torch,
the model being built, a text model's embeddings computed) and while it trains.

For each run kind and each moment, a fresh data folder, a run queued on the background worker as the app queues
it (`submit`), and `request_cancel` once the run has been "running" for the given number of seconds (0: at the
moment the worker claims it). Printed: how long the request took to return (the page's click), and how long until
the run's status said cancelled (the run stopped). The promise: the click within 2 s, the stop within 10 s.
With `--busy N`, N processes spin on the CPU beside it, as on a shared machine.

Usage: `.venv/bin/python bench/cancel_latency.py [--busy 1]`
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KINDS = {
    "pictures-full": {"data": {"source": str(ROOT / "sample_data" / "shapes")},
                                   "freeze": {"strategy": "full"}, "epochs": 50},
    "texts-head-only": {"data": {"source": str(ROOT / "sample_data" / "support_tickets.csv")},
                         "model": {"name": "all-MiniLM-L6-v2"}, "input_size": None,
                         "freeze": {"strategy": "feature_extraction"}, "epochs": 50},
    "texts-whole-encoder": {"data": {"source": str(ROOT / "sample_data" / "support_tickets.csv")},
                             "model": {"name": "all-MiniLM-L6-v2"}, "input_size": None,
                             "freeze": {"strategy": "full"}, "epochs": 50},
}
MOMENTS = (0.0, 1.0, 3.0, 8.0)  # seconds after the run became "running"


def _spin() -> None:
    while True:
        pass


def one(config: dict, after: float, home: Path) -> tuple[float, float, str]:
    """(seconds the request took, seconds until the run was cancelled, what it was doing then)."""
    os.environ["TRANSFERLAB_HOME"] = str(home)
    os.environ["TRANSFERLAB_WORKER_LINGER_S"] = "1"
    from tlcore.config import RunConfig
    from tlcore.runs import RunStore
    from tlcore.running.worker import submit

    store = RunStore()
    run = submit(RunConfig.from_dict(config), store)
    while store.get(run.id).status == "queued":
        time.sleep(0.02)
    time.sleep(after)
    events = store.events(run.id)
    doing = events[-1]["message"][:60] if events else "starting"
    asked = time.perf_counter()
    store.request_cancel(run.id)
    click = time.perf_counter() - asked
    while store.get(run.id).status == "running":
        time.sleep(0.02)
        if time.perf_counter() - asked > 120:
            return click, float("inf"), doing
    return click, time.perf_counter() - asked, doing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=0, help="processes spinning on the CPU beside the runs")
    parser.add_argument("--kinds", default=",".join(KINDS), help="which run kinds, comma-separated")
    args = parser.parse_args()
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for spinner in spinners:
        spinner.start()
    work = Path(tempfile.mkdtemp(prefix="tl-bench-cancel-"))
    print(f"{'run':28} {'cancel after s':>14} {'click s':>8} {'stopped after s':>16}  doing then")
    worst = 0.0
    try:
        for kind in args.kinds.split(","):
            for after in MOMENTS:
                home = work / f"{kind}-{after}"
                click, stopped, doing = one(KINDS[kind], after, home)
                worst = max(worst, stopped)
                print(f"{kind:28} {after:14.1f} {click:8.2f} {stopped:16.2f}  {doing}", flush=True)
    finally:
        for spinner in spinners:
            spinner.terminate()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nslowest stop: {worst:.1f} s (the promise: 10 s){' with ' + str(args.busy) + ' busy process(es)' if args.busy else ''}")


if __name__ == "__main__":
    main()
