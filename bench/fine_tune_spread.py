"""Which lr_spread should `fine_tune` default to? Measured on real photos and on the bundled shapes, CPU.

    python bench/fine_tune_spread.py [--spreads 1,10,100] [--seeds 0,1] [--epochs 4]

`fine_tune` trains the head alone for one epoch, then unfreezes every group; `lr_spread` is
the head's learning rate over the stem's (1 = one rate everywhere, 10 = the stem learns 10x
slower, fastai's slice(lr/100, lr) is 100). Each cell is one run through the engine exactly as
`python -m tlcore train` does it, on the same split; the table prints test accuracy per seed,
the mean, and the wall time.
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
    parser.add_argument("--spreads", default="1,10,100")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data", action="append", type=Path,
                        help="data sets (default: ../shared/datasets/hymenoptera and sample_data)")
    args = parser.parse_args()
    os.environ["TRANSFERLAB_HOME"] = tempfile.mkdtemp(prefix="tl-bench-")
    from tlcore.config import RunConfig
    from tlcore.results.evaluate import evaluate_run
    from tlcore.core.runtime import tune_allocator
    from tlcore.training.train import train

    tune_allocator()
    datasets = args.data or [p for p in (ROOT.parent / "shared" / "datasets" / "hymenoptera", ROOT / "sample_data")
                             if p.is_dir()]
    spreads = [float(s) for s in args.spreads.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"fine_tune (1 head-only epoch, then all groups), {args.epochs} epochs, head lr {args.lr}, "
          f"EfficientNet-Lite0 offline weights, light augmentation, CPU {os.cpu_count()} cores")
    print(f"{'data':<14} {'lr_spread':>9} " + " ".join(f"{'seed ' + str(s):>7}" for s in seeds)
          + f" {'mean':>6} {'s/run':>6}")
    for data in datasets:
        for spread in spreads:
            accuracies, seconds = [], []
            for seed in seeds:
                config = RunConfig.from_dict({
                    "data": {"source": str(data)}, "epochs": args.epochs, "seed": seed,
                    "optimizer": {"lr": args.lr}, "early_stopping": {"patience": 0},
                    "freeze": {"strategy": "fine_tune", "head_epochs": 1, "lr_spread": spread}})
                run_dir = Path(os.environ["TRANSFERLAB_HOME"]) / f"{data.name}-{spread}-{seed}"
                start = time.perf_counter()
                train(config, run_dir)
                seconds.append(time.perf_counter() - start)
                accuracies.append(evaluate_run(run_dir).accuracy)
            print(f"{data.name:<14} {spread:>9g} " + " ".join(f"{a:>7.3f}" for a in accuracies)
                  + f" {sum(accuracies) / len(accuracies):>6.3f} {sum(seconds) / len(seconds):>6.0f}", flush=True)


if __name__ == "__main__":
    main()
