"""Does text augmentation help, and what does it cost? Few labelled texts, the bundled tickets' own test split.

Each run trains on K texts per class drawn from the tickets' training split (a seed draws them), keeps the
split's validation and test texts, and is scored on the 36 test texts. The same runs are made with
`text_augment` none, light and medium (word dropout, swap and deletion: `tlcore/text/augment.py`), for head
only (the frozen encoder's pooled embeddings; with augmentation they are computed again each epoch) and for full
fine-tuning, over several seeds. The table gives mean test accuracy (and its spread) and seconds per run.

Usage: `.venv/bin/python bench/text_augment.py [--per-class 4] [--seeds 3]` (CPU, a few minutes).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRANSFERLAB_HOME", tempfile.mkdtemp(prefix="tl-bench-text-augment-"))

from tlcore.config import RunConfig  # noqa: E402
from tlcore.modality import load_manifest  # noqa: E402
from tlcore.results.evaluate import evaluate_run  # noqa: E402
from tlcore.text.augment import TEXT_AUGMENT_PRESETS  # noqa: E402
from tlcore.training.train import train  # noqa: E402

DATA = ROOT / "sample_data" / "support_tickets.csv"
SETUPS = {"head only": ("feature_extraction", 3e-3, 12), "full fine-tuning": ("full", 1e-4, 6)}
AUGMENTS = ("none", "light", "medium")


def few_per_class(per_class: int, seed: int, folder: Path) -> Path:
    """The tickets' split with only `per_class` training texts per class (drawn by `seed`); returns its file."""
    manifest = load_manifest(RunConfig.from_dict({"data": {"source": str(DATA), "split_seed": 0}}).data)
    rng = random.Random(seed)
    kept = []
    for label in manifest.classes:
        train_items = [i for i in manifest.items if i.split == "train" and i.label == label]
        kept += rng.sample(train_items, per_class)
    items = kept + [i for i in manifest.items if i.split != "train"]
    return replace(manifest, items=items).save(folder / f"few_{per_class}_{seed}.json")


def run(strategy: str, lr: float, epochs: int, augment: str, manifest: Path, seed: int) -> tuple[float, float]:
    """One run: returns (test accuracy, seconds from the start of training to the end of the evaluation)."""
    config = RunConfig.from_dict({
        "data": {"source": str(DATA), "manifest": str(manifest)}, "freeze": {"strategy": strategy},
        "optimizer": {"lr": lr}, "epochs": epochs, "batch_size": 16, "device": "cpu", "seed": seed,
        "augment": {"preset": "none"}, "text_augment": asdict(TEXT_AUGMENT_PRESETS[augment]), "schedule": {"name": "constant"},
        "early_stopping": {"patience": 0}, "num_workers": 0})
    run_dir = Path(tempfile.mkdtemp(prefix="tl-bench-text-augment-run-"))
    started = time.perf_counter()
    train(config, run_dir)
    accuracy = evaluate_run(run_dir).accuracy
    return accuracy, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tl-bench-text-augment-split-"))
    splits = [few_per_class(args.per_class, seed, folder) for seed in range(args.seeds)]
    print(f"{args.per_class} training texts per class, {args.seeds} seed(s) (each its own draw of texts), 36 test texts")
    print("| setup | text_augment | test accuracy (mean ± sd) | seconds per run |")
    print("| --- | --- | --- | --- |")
    for name, (strategy, lr, epochs) in SETUPS.items():
        for augment in AUGMENTS:
            results = [run(strategy, lr, epochs, augment, split, seed) for seed, split in enumerate(splits)]
            accuracies = [a for a, _ in results]
            spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
            print(f"| {name}, {epochs} epochs, lr {lr:g} | {augment} | {statistics.mean(accuracies):.3f} ± "
                  f"{spread * 100:.1f} | {statistics.mean(s for _, s in results):.1f} |", flush=True)


if __name__ == "__main__":
    main()
