"""Is `sample_data/shapes` a fair demo? Pretrained features against colour alone, same split.

    python bench/sample_data_fairness.py [--data sample_data/shapes] [--seed 0]

Prints one table: a linear head on frozen EfficientNet-Lite0 ImageNet features
(the offline default model) and the same head on colour histograms, both trained
on the split's train part and scored on its held-out test part, with wall time.
A fair demo has the first far above chance and the second near it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tlcore.data import load_rgb, make_split, scan  # noqa: E402


def lite0_features(paths: list[Path]) -> torch.Tensor:
    """Pooled features of the frozen offline default model (real ImageNet weights), its own preprocessing."""
    from tlcore.inputs.augment import eval_pipeline
    from tlcore.models import ModelSpec, build_model

    built = build_model(ModelSpec(), 2)
    model, pipeline = built.model.eval(), eval_pipeline(built.preprocessing)
    batches = []
    with torch.inference_mode():
        for start in range(0, len(paths), 32):
            x = torch.stack([pipeline(image=np.asarray(load_rgb(p)))["image"] for p in paths[start:start + 32]])
            batches.append(model.forward_head(model.forward_features(x), pre_logits=True))
    return torch.cat(batches)


def colour_features(paths: list[Path]) -> torch.Tensor:
    """8x8x8 RGB histogram plus per-channel mean and std: everything colour alone can tell."""
    rows = []
    for p in paths:
        pixels = np.asarray(load_rgb(p)).reshape(-1, 3)
        hist, _ = np.histogramdd(pixels, bins=(8, 8, 8), range=((0, 256),) * 3)
        rows.append(np.concatenate([hist.ravel() / len(pixels), pixels.mean(0) / 255, pixels.std(0) / 255]))
    return torch.tensor(np.stack(rows), dtype=torch.float32)


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, n_classes: int) -> float:
    torch.manual_seed(0)
    mu, sigma = train_x.mean(0), train_x.std(0) + 1e-6
    head = torch.nn.Linear(train_x.shape[1], n_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head((train_x - mu) / sigma), train_y).backward()
        opt.step()
    with torch.no_grad():
        return float((head((test_x - mu) / sigma).argmax(1) == test_y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / "sample_data" / "shapes"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    manifest = make_split(scan(args.data), seed=args.seed)
    train, test = manifest.files("train"), manifest.files("test")
    train_y = torch.tensor([y for _, y in train])
    test_y = torch.tensor([y for _, y in test])
    n = len(manifest.classes)
    print(f"{args.data}: {n} classes, train {len(train)}, test {len(test)}, chance {1 / n:.2f}")
    print(f"{'features':<40} {'test acc':>8} {'seconds':>8}")
    for name, extract in (("EfficientNet-Lite0 ImageNet (frozen), linear head", lite0_features),
                          ("colour histogram + mean/std, linear head", colour_features)):
        start = time.perf_counter()
        acc = linear_probe(extract([p for p, _ in train]), train_y, extract([p for p, _ in test]), test_y, n)
        print(f"{name:<40} {acc:>8.3f} {time.perf_counter() - start:>8.1f}")


if __name__ == "__main__":
    main()
