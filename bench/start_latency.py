"""Seconds from "Start training" to the first training step, as the app does it: submit, worker, first step.

    python bench/start_latency.py [--runs 2]

The first run pays for a new worker process (Python, torch and timm imports, the model build);
the next one finds the worker still waiting (it lingers after a run) and starts at once.
Each row: seconds from submit to the run claimed by the worker, to the training loop started
(the "stage" event, emitted just before step 1, after the fast path's features), to epoch 1 done. Compare with the plain cost of `import torch, timm`
in a fresh interpreter, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    os.environ["TRANSFERLAB_HOME"] = tempfile.mkdtemp(prefix="tl-bench-")
    from tlcore.config import RunConfig
    from tlcore.runs import RunStore
    from tlcore.running.worker import submit

    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, timm"], check=True)
    imports = time.perf_counter() - start
    store = RunStore()
    print(f"plain `import torch, timm` in a new interpreter: {imports:.1f} s")
    print(f"{'run':>3} {'worker':>14} {'claimed':>8} {'first step':>10} {'epoch 1 done':>12}")
    for i in range(args.runs):
        config = RunConfig.from_dict({"epochs": 1, "name": f"latency {i}"})  # the app's defaults, sample data
        waiting = store.live_worker() is not None
        t0 = time.time()
        run = submit(config, store)
        claimed = stage = epoch = None
        while epoch is None:
            time.sleep(0.05)
            current = store.get(run.id)
            if claimed is None and current.started:
                claimed = current.started - t0
            events = store.events(run.id)
            stage = stage or next((e["ts"] - t0 for e in events if e["kind"] == "stage"), None)
            epoch = next((e["ts"] - t0 for e in events if e["kind"] == "epoch"), None)
            if current.status in ("failed", "cancelled"):
                sys.exit(f"run failed: {current.error}")
        print(f"{i + 1:>3} {'was waiting' if waiting else 'new process':>14} {claimed:>7.1f}s {stage:>9.1f}s "
              f"{epoch:>11.1f}s", flush=True)
        while store.get(run.id).status == "running":
            time.sleep(0.1)


if __name__ == "__main__":
    main()
