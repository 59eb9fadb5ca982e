"""Time estimates against the real runs they predict, and what the Compare page's estimate of a 2x2x2 grid costs.

On the bundled sample data (240 shapes, EfficientNet-Lite0, this machine's CPU), for each freeze strategy: the
estimate (`tlcore.experiments.estimate.estimate_time`), then the real run (`tlcore.training.train.train`, in this process, no early
stop), and their ratio. Then a comparison of 2 strategies x 2 learning rates x 2 seeds estimated the way the page
does (`estimate_times`: once per distinct step cost) against the plain loop it replaced (one measurement per
setting). Each data folder is fresh, so the feature cache starts empty as it does for a new user.

With `--texts`: the same for the bundled support tickets (240 texts, all-MiniLM-L6-v2), head only (the fast
path: embeddings computed once) and the whole encoder at the texts' settings (lr 1e-4, warm-up 0.5).

Usage: `.venv/bin/python bench/estimate_accuracy.py [--epochs 3] [--texts]`
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tlcore.config import RunConfig  # noqa: E402
from tlcore.experiments.estimate import estimate_time, estimate_times  # noqa: E402
from tlcore.training.train import train  # noqa: E402

STRATEGIES = ("feature_extraction", "freeze_first_k", "gradual", "full")
TEXTS = ROOT / "sample_data" / "support_tickets.csv"
TEXT_SETTINGS = {"feature_extraction": {}, "full": {"optimizer": {"lr": 1e-4}, "schedule": {"name": "cosine",
                                                                                           "warmup_epochs": 0.5}}}


def config_for(strategy: str, epochs: int, **changes) -> RunConfig:
    patience = {"early_stopping": {"patience": 0}}  # the run goes all its epochs, as the estimate assumes
    return RunConfig.from_dict({"data": {"source": str(ROOT / "sample_data" / "shapes")}, "epochs": epochs,
                                "freeze": {"strategy": strategy}, **patience, **changes})


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--texts", action="store_true", help="the text runs only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tl-bench-estimate-"))
    os.environ["TRANSFERLAB_HOME"] = str(work / "home")
    if args.texts:
        from tlcore.modality import TEXTS as TEXT_KIND

        TEXT_KIND.warm_up()  # as the worker is after its first text run (the estimate leaves the first import out too)
        print(f"{'texts, strategy':20} {'estimated s':>12} {'real s':>8} {'real/estimated':>15} {'estimating took s':>18}")
        for strategy, changes in TEXT_SETTINGS.items():
            config = RunConfig.from_dict({"data": {"source": str(TEXTS)}, "model": {"name": "all-MiniLM-L6-v2"},
                                          "epochs": args.epochs, "freeze": {"strategy": strategy},
                                          "early_stopping": {"patience": 0}, "input_size": None, **changes})
            estimate, took = timed(lambda: estimate_time(config))
            _, real = timed(lambda: train(config, work / f"text-{strategy}"))
            print(f"{strategy:20} {estimate.total_s:12.1f} {real:8.1f} {real / estimate.total_s:15.2f} {took:18.1f}")
        return
    print(f"{'strategy':20} {'estimated s':>12} {'real s':>8} {'real/estimated':>15} {'estimating took s':>18}")
    for strategy in STRATEGIES:
        config = config_for(strategy, args.epochs)
        estimate, took = timed(lambda: estimate_time(config))
        _, real = timed(lambda: train(config, work / f"run-{strategy}"))
        print(f"{strategy:20} {estimate.total_s:12.1f} {real:8.1f} {real / estimate.total_s:15.2f} {took:18.1f}")

    os.environ["TRANSFERLAB_HOME"] = str(work / "home-grid")  # an empty feature cache again
    grid = [dataclasses.replace(config_for(s, args.epochs), seed=seed,
                                optimizer=dataclasses.replace(RunConfig().optimizer, lr=lr))
            for s in ("feature_extraction", "full") for lr in (1e-3, 3e-3) for seed in (0, 1)]
    per_setting = [c for c in grid if c.seed == 0]
    _, shared = timed(lambda: estimate_times(grid))
    os.environ["TRANSFERLAB_HOME"] = str(work / "home-loop")
    _, loop = timed(lambda: [estimate_time(c) for c in per_setting])
    print(f"\n2 strategies x 2 learning rates x 2 seeds ({len(grid)} runs, {args.epochs} epochs each):")
    print(f"  estimate_times, once per distinct step cost: {shared:6.1f} s")
    print(f"  plain loop, once per setting ({len(per_setting)}):        {loop:6.1f} s")


if __name__ == "__main__":
    main()
