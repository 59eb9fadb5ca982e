"""A tiny, learnable data set and run configs on timm's smallest test model: whole runs in seconds on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tlcore.config import RunConfig


def make_colour_classes(root: Path, per_class: int = 16, size: int = 40) -> Path:
    """Three classes told apart by their dominant colour, with noise: easy to learn, not instant."""
    rng = np.random.default_rng(0)
    for index, label in enumerate(("red", "green", "blue")):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 150, (size, size, 3))
            pixels[..., index] += 100
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{label}_{i:02d}.png")
    return root


def tiny_config(source: Path, **overrides) -> RunConfig:
    data = {
        "data": {"source": str(source), "split_seed": 0, "val": 0.25, "test": 0.25},
        "model": {"name": "test_efficientnet", "weights": "random"},
        "augment": {"preset": "none"},
        "freeze": {"strategy": "full"},
        "optimizer": {"name": "adamw", "lr": 0.01, "weight_decay": 0.0, "label_smoothing": 0.0},
        "schedule": {"name": "constant"},
        "early_stopping": {"metric": "val_loss", "patience": 0},
        "epochs": 3, "batch_size": 8, "seed": 0, "device": "cpu", "num_workers": 0, "input_size": [3, 32, 32],
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return RunConfig.from_dict(data)
