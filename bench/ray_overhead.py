"""The same comparison on the local worker and on a local Ray instance: wall time and results side by side.

    python bench/ray_overhead.py [--epochs 2] [--data ../shared/datasets/hymenoptera]

Five freeze strategies on the real ants/bees photos, EfficientNet-Lite0, CPU. The local worker trains
the runs one after the other; Ray gets one task per run with all of this machine's CPUs each
(`--ray-cpus-per-run`), so it too trains one at a time and the difference is Ray's own cost
(starting the instance and its workers, shipping tlcore, events through the queue). Each side runs
in its own data folder, so neither reads the other's feature cache.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "hymenoptera")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"error: {args.data} not found (the shared photo sets sit beside the project checkout)")
    from tlcore.experiments.compare import launch_sweep, sweep_rows
    from tlcore.config import RunConfig
    from tlcore.running.on_ray import RAY_RUNNER, drive
    from tlcore.runs import RunStore
    from tlcore.core.runtime import tune_allocator
    from tlcore.running.worker import run_worker

    tune_allocator()
    base = RunConfig.from_dict({"data": {"source": str(args.data)}, "epochs": args.epochs,
                                "optimizer": {"lr": 1e-3}, "early_stopping": {"patience": 0}})
    results = {}
    for side in ("local worker", "Ray (local instance)"):
        os.environ["TRANSFERLAB_HOME"] = tempfile.mkdtemp(prefix="tl-bench-ray-")
        store = RunStore()
        start = time.perf_counter()
        if side == "local worker":
            sweep = launch_sweep(base, store=store, start=False)
            run_worker(store)
        else:
            sweep = launch_sweep(base, store=store, start=False, runner=RAY_RUNNER)
            drive(store, [r.id for r in sorted(store.list(sweep=sweep), key=lambda r: r.created)],
                  cpus_per_run=os.cpu_count(), num_cpus=os.cpu_count())
        results[side] = (time.perf_counter() - start, {r.strategy: r for r in sweep_rows(store, sweep)})
    print(f"hymenoptera, EfficientNet-Lite0, 5 strategies x {args.epochs} epochs, CPU ({os.cpu_count()} cores)")
    print(f"{'strategy':<22} {'local acc':>9} {'Ray acc':>8} {'local s':>8} {'Ray s':>7}")
    (local_s, local), (ray_s, remote) = results["local worker"], results["Ray (local instance)"]
    for name, row in local.items():
        other = remote[name]
        print(f"{name:<22} {row.test_accuracy:>9.3f} {other.test_accuracy:>8.3f} {row.wall_seconds:>8.1f} "
              f"{other.wall_seconds:>7.1f}")
    print(f"{'whole comparison':<22} {'':>9} {'':>8} {local_s:>8.1f} {ray_s:>7.1f}   "
          f"(Ray overhead {ray_s - local_s:+.1f} s, {100 * (ray_s / local_s - 1):+.0f}%)")


if __name__ == "__main__":
    main()
