"""The five-strategy comparison on the real ants/bees photos, CPU, with the feature-extraction fast path measured.

    python bench/compare_hymenoptera.py [--epochs 4] [--seeds 3] [--data ../shared/datasets/hymenoptera]

Runs the comparison exactly as `python -m tlcore compare --seeds N` does (one worker, one run
after the other, the allocator tuned as in the worker), then a plain PyTorch head-only
loop in a fresh process for the per-epoch comparison. Prints the comparison table,
the total wall time, and seconds per epoch of feature extraction against the plain loop.
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "hymenoptera")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=3, help="repeats of every strategy (seeds 0..N-1)")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"error: {args.data} not found (the shared photo sets sit beside the project checkout)")
    os.environ["TRANSFERLAB_HOME"] = tempfile.mkdtemp(prefix="tl-bench-")
    from tlcore.experiments.compare import cell_summaries, launch_sweep, sweep_rows, verdict
    from tlcore.config import RunConfig
    from tlcore.runs import RunStore
    from tlcore.core.runtime import tune_allocator
    from tlcore.running.worker import run_worker

    tune_allocator()
    base = RunConfig.from_dict({"data": {"source": str(args.data)}, "epochs": args.epochs, "optimizer": {"lr": args.lr},
                                "early_stopping": {"patience": 0}, "augment": {"preset": "light"}})
    store = RunStore()
    start = time.perf_counter()
    sweep = launch_sweep(base, store=store, start=False, seeds=args.seeds)
    run_worker(store)
    total = time.perf_counter() - start
    rows = sweep_rows(store, sweep)
    print(f"hymenoptera, EfficientNet-Lite0 (offline weights), {args.epochs} epochs each, lr {args.lr}, "
          f"{args.seeds} seed(s), CPU")
    print(f"{'strategy':<22} {'seed':>4} {'test acc':>8} {'F1':>6} {'best ep':>7} {'seconds':>8} {'trainable':>12} "
          f"{'peak MB':>8}")
    for r in rows:
        print(f"{r.strategy:<22} {r.seed:>4} {r.test_accuracy:>8.3f} {r.macro_f1:>6.3f} {r.best_epoch:>7} "
              f"{r.wall_seconds:>8.1f} {r.trainable_params:>12,} {r.peak_memory_mb:>8.0f}")
    print(f"\n{'strategy':<22} {'mean acc':>8} {'std':>6} {'min':>6} {'max':>6} {'mean s':>7}")
    for c in cell_summaries(rows):
        accs = [r.test_accuracy for r in c.done]
        print(f"{c.label:<22} {c.mean:>8.3f} {c.std or 0:>6.3f} {min(accs):>6.3f} {max(accs):>6.3f} "
              f"{c.wall_seconds:>7.1f}")
    print(f"total wall time for the comparison: {total:.0f} s ({total / 60:.1f} min)")
    print(f"verdict: {verdict(rows)}")
    head = next(r for r in store.list(sweep=sweep) if r.name == "feature_extraction" and r.config["seed"] == 0)
    epochs = [m["epoch_seconds"] for m in store.metrics(head.id)]
    plain = subprocess.run([sys.executable, str(ROOT / "bench" / "hymenoptera_reference.py"), "--row", "plain",
                            "--epochs", str(args.epochs), "--head-lr", str(args.lr), "--data", str(args.data)],
                           capture_output=True, text=True, check=True)
    plain_result = json.loads(plain.stdout.strip().splitlines()[-1])
    plain_epoch = plain_result["seconds"] / args.epochs
    later = sum(epochs[1:]) / max(1, len(epochs) - 1)
    print(f"feature extraction, seconds per epoch: {', '.join(f'{e:.3f}' for e in epochs)} "
          f"(features computed once before epoch 1, in the run's setup: "
          f"{head.finished - head.started - sum(epochs):.1f} s incl. evaluation)")
    print(f"plain PyTorch head-only loop: {plain_epoch:.2f} s per epoch (val-folder acc {plain_result['val_folder']:.3f}); "
          f"after the first epoch the fast path is {plain_epoch / max(later, 1e-6):,.0f}x faster per epoch")


if __name__ == "__main__":
    main()
