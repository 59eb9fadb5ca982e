"""Step time of one run on 2 torchrun processes (gloo, CPU) against 1 process, at the same global batch.

    python bench/ddp_overhead.py [--epochs 2] [--batch 32] [--data ../shared/datasets/hymenoptera]

Full fine-tuning of EfficientNet-Lite0 on the ants/bees photos. One process uses all cores' threads;
torchrun gives each of its processes one thread (its default OMP_NUM_THREADS=1 for several processes),
so on this 2-core machine both sides use both cores and the difference is the cost of splitting the
batch and summing the gradients (3.4 M parameters per step) between processes. The last epoch's
seconds are compared (the first includes start-up).
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"error: {args.data} not found (the shared photo sets sit beside the project checkout)")
    os.environ["TRANSFERLAB_HOME"] = tempfile.mkdtemp(prefix="tl-bench-ddp-")
    from tlcore.config import RunConfig
    from tlcore.running.worker import run_to_end

    rows = []
    for nproc in (1, 2):
        config = RunConfig.from_dict({"data": {"source": str(args.data)}, "epochs": args.epochs,
                                      "batch_size": args.batch, "freeze": {"strategy": "full"},
                                      "optimizer": {"lr": 1e-3}, "early_stopping": {"patience": 0},
                                      "distributed": {"nproc_per_node": nproc}})
        run_dir = Path(os.environ["TRANSFERLAB_HOME"]) / f"nproc{nproc}"
        start = time.perf_counter()
        status, error, evaluation = run_to_end(config, run_dir, lambda e: None, lambda: False)
        if status != "succeeded":
            sys.exit(f"error: {nproc} process(es): {error}")
        history = json.loads((run_dir / "history.json").read_text())
        train = sum(1 for item in json.loads((run_dir / "split.json").read_text())["items"] if item["split"] == "train")
        steps = -(-train // args.batch)
        rows.append((nproc, history[-1]["epoch_seconds"], history[-1]["epoch_seconds"] / steps,
                     time.perf_counter() - start, evaluation.accuracy))
    print(f"hymenoptera, EfficientNet-Lite0, full fine-tuning, global batch {args.batch}, CPU ({os.cpu_count()} cores)")
    print(f"{'processes':>9} {'last epoch s':>12} {'s per step':>10} {'whole run s':>11} {'test acc':>8}")
    for nproc, epoch_s, step_s, total, acc in rows:
        print(f"{nproc:>9} {epoch_s:>12.1f} {step_s:>10.2f} {total:>11.1f} {acc:>8.3f}")
    print(f"2 processes against 1: step time x{rows[1][2] / rows[0][2]:.2f}")


if __name__ == "__main__":
    main()
