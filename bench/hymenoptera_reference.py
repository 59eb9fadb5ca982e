"""Accuracy reference on the real ants/bees photos: the project's runs beside a plain PyTorch loop, same run.

    python bench/hymenoptera_reference.py [--epochs 4] [--data ../shared/datasets/hymenoptera]

EfficientNet-Lite0 with the offline ImageNet weights, CPU. The folder has train/ and
val/; the project keeps train, sets half of val aside as its held-out test set and
picks the best epoch on the other half. The plain loop, as in the PyTorch tutorial,
trains on train/ and reports accuracy on all of val/ after the last epoch. Both
columns are printed for both, so the numbers compare.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tlcore.augment import eval_pipeline, preset, train_pipeline  # noqa: E402
from tlcore.config import RunConfig  # noqa: E402
from tlcore.evaluate import evaluate_run  # noqa: E402
from tlcore.models import ModelSpec, build_model  # noqa: E402
from tlcore.train import train  # noqa: E402


def project_run(data: Path, freeze: dict, epochs: int, lr: float, workdir: Path) -> dict:
    config = RunConfig.from_dict({
        "data": {"source": str(data), "split_seed": 0}, "freeze": freeze, "epochs": epochs, "batch_size": 32,
        "optimizer": {"lr": lr}, "early_stopping": {"patience": 0}, "augment": {"preset": "light"},
    })
    run_dir = workdir / freeze["strategy"]
    start = time.perf_counter()
    result = train(config, run_dir)
    seconds = time.perf_counter() - start
    test = evaluate_run(run_dir, "test")
    val = evaluate_run(run_dir, "val")
    whole_val = (test.accuracy * test.n + val.accuracy * val.n) / (test.n + val.n)
    return {"test": test.accuracy, "val_folder": whole_val, "seconds": seconds,
            "first_val": result.history[0]["val_acc"], "ips": np.mean([h["images_per_s"] for h in result.history])}


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "hymenoptera")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--head-lr", type=float, default=3e-3)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"error: {args.data} not found (the shared photo sets sit beside the project checkout)")
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            ("project: head only", project_run(args.data, {"strategy": "feature_extraction"}, args.epochs,
                                               args.head_lr, Path(tmp))),
            ("project: head 1 epoch, then all (lr spread 10)",
             project_run(args.data, {"strategy": "fine_tune", "head_epochs": 1, "lr_spread": 10}, args.epochs,
                         args.finetune_lr, Path(tmp))),
            ("plain PyTorch loop: head only", plain_loop(args.data, args.epochs, args.head_lr)),
        ]
    print(f"hymenoptera, EfficientNet-Lite0 (offline ImageNet weights), {args.epochs} epochs, CPU "
          f"({torch.get_num_threads()} threads)")
    print(f"{'run':<48} {'test acc':>8} {'val-folder acc':>14} {'seconds':>8} {'img/s':>6}")
    for name, r in rows:
        test = f"{r['test']:.3f}" if "test" in r else "-"
        ips = f"{r['ips']:.0f}" if "ips" in r else "-"
        print(f"{name:<48} {test:>8} {r['val_folder']:>14.3f} {r['seconds']:>8.0f} {ips:>6}")


if __name__ == "__main__":
    main()
