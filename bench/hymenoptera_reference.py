"""Accuracy reference on the real ants/bees photos: the project's runs beside a plain PyTorch loop, same run.

    python bench/hymenoptera_reference.py [--epochs 4] [--data ../shared/datasets/hymenoptera]

EfficientNet-Lite0 with the offline ImageNet weights, CPU. The folder has train/ and
val/; the project keeps train, sets half of val aside as its held-out test set and
picks the best epoch on the other half. The plain loop, as in the PyTorch tutorial,
trains on train/ and reports accuracy on all of val/ after the last epoch. The
"val-folder" column is all of val/ for both, so the numbers compare. Seconds are
the whole run: data checks, model build, training, per-epoch validation, checkpoints.
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tlcore.inputs.augment import eval_pipeline, preset, train_pipeline  # noqa: E402
from tlcore.config import RunConfig  # noqa: E402
from tlcore.results.evaluate import evaluate_run  # noqa: E402
from tlcore.models import ModelSpec, build_model  # noqa: E402
from tlcore.training.train import train  # noqa: E402


def project_run(data: Path, freeze: dict, epochs: int, lr: float, workdir: Path, feature_cache: bool = True) -> dict:
    config = RunConfig.from_dict({
        "data": {"source": str(data), "split_seed": 0}, "freeze": freeze, "epochs": epochs, "batch_size": 32,
        "optimizer": {"lr": lr}, "early_stopping": {"patience": 0}, "augment": {"preset": "light"},
        "feature_cache": feature_cache,
    })
    run_dir = workdir / freeze["strategy"]
    start = time.perf_counter()
    result = train(config, run_dir)
    seconds = time.perf_counter() - start
    test = evaluate_run(run_dir, "test")
    val = evaluate_run(run_dir, "val")
    whole_val = (test.accuracy * test.n + val.accuracy * val.n) / (test.n + val.n)
    return {"test": test.accuracy, "val_folder": whole_val, "seconds": seconds, "best_epoch": result.best_epoch}


def plain_loop(data: Path, epochs: int, lr: float) -> dict:
    """The tutorial's loop: ImageFolder-style lists, the same model, weights, preprocessing and optimizer."""
    built = build_model(ModelSpec(), 2)
    model, prep = built.model, built.preprocessing
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("classifier.")
    classes = sorted(d.name for d in (data / "train").iterdir() if d.is_dir())

    def items(split: str) -> list[tuple[Path, int]]:
        return [(f, i) for i, c in enumerate(classes) for f in sorted((data / split / c).iterdir())]

    from PIL import Image

    def batches(pairs, pipeline, shuffle: bool, rng):
        order = rng.permutation(len(pairs)) if shuffle else np.arange(len(pairs))
        for s in range(0, len(order), 32):
            chunk = [pairs[i] for i in order[s:s + 32]]
            x = torch.stack([pipeline(image=np.asarray(Image.open(f).convert("RGB")))["image"] for f, _ in chunk])
            yield x, torch.tensor([y for _, y in chunk])

    train_items, val_items = items("train"), items("val")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    criterion = torch.nn.CrossEntropyLoss()
    augment, plain = train_pipeline(preset("light"), prep, seed=0), eval_pipeline(prep)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for m in model.modules():  # frozen BatchNorm keeps its statistics, as the project does
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
        for x, y in batches(train_items, augment, True, rng):
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.inference_mode():
        for x, y in batches(val_items, plain, False, rng):
            correct += int((model(x).argmax(1) == y).sum())
    return {"val_folder": correct / len(val_items), "seconds": seconds}


ROWS = {
    "head": ("project: head only (cached features)", lambda a, tmp: project_run(
        a.data, {"strategy": "feature_extraction"}, a.epochs, a.head_lr, tmp)),
    "head_slow": ("project: head only (no feature cache)", lambda a, tmp: project_run(
        a.data, {"strategy": "feature_extraction"}, a.epochs, a.head_lr, tmp, feature_cache=False)),
    "finetune": ("project: head 1 epoch, then all (lr spread 10)", lambda a, tmp: project_run(
        a.data, {"strategy": "fine_tune", "head_epochs": 1, "lr_spread": 10}, a.epochs, a.finetune_lr, tmp)),
    "plain": ("plain PyTorch loop: head only", lambda a, tmp: plain_loop(a.data, a.epochs, a.head_lr)),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "hymenoptera")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--head-lr", type=float, default=3e-3)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--rows", default="plain,head,head_slow,finetune")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # one row, in its own process
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"error: {args.data} not found (the shared photo sets sit beside the project checkout)")
    if args.row:
        if args.row != "plain":
            from tlcore.core.runtime import tune_allocator

            tune_allocator()  # as the project's worker process does
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(ROWS[args.row][1](args, Path(tmp))))
        return
    print(f"hymenoptera, EfficientNet-Lite0 (offline ImageNet weights), {args.epochs} epochs, CPU "
          f"({torch.get_num_threads()} threads); each row in a fresh process")
    print(f"{'run':<48} {'test acc':>8} {'val-folder acc':>14} {'seconds':>8}")
    for key in args.rows.split(","):
        out = subprocess.run([sys.executable, __file__, "--row", key, "--data", str(args.data), "--epochs",
                              str(args.epochs), "--head-lr", str(args.head_lr), "--finetune-lr", str(args.finetune_lr)],
                             capture_output=True, text=True, check=True, env={**os.environ,
                                                                             "TRANSFERLAB_HOME": tempfile.mkdtemp()})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        test = f"{r['test']:.3f}" if "test" in r else "-"
        print(f"{ROWS[key][0]:<48} {test:>8} {r['val_folder']:>14.3f} {r['seconds']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
