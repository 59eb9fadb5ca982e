"""The bundled demo set: ours, small, reproducible, and a fair demo of transfer learning."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from conftest import ROOT
from tlcore.data import make_split, scan

SAMPLE = ROOT / "sample_data"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_data_meets_the_card() -> None:
    report = scan(SAMPLE)
    assert report.ok and report.skipped == [] and report.duplicates == []
    assert len(report.classes) >= 3 and min(report.counts.values()) >= 40
    total = sum(f.stat().st_size for f in SAMPLE.rglob("*") if f.is_file())
    assert total < 5 * 2**20


def test_generator_is_deterministic_and_made_the_committed_files(tmp_path: Path) -> None:
    make_shapes = _load(SAMPLE / "make_shapes.py")
    first = make_shapes.make(tmp_path / "a", per_class=3)
    second = make_shapes.make(tmp_path / "b", per_class=3)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    for path in first:  # the committed pictures are what the script draws (decoded, in case JPEG libraries differ)
        committed = SAMPLE / "shapes" / path.parent.name / path.name
        diff = np.abs(np.asarray(Image.open(path)).astype(int) - np.asarray(Image.open(committed)).astype(int))
        assert diff.mean() < 1.0


def test_colour_alone_does_not_solve_it() -> None:
    """Nearest class centroid on colour histograms stays near chance (the classes differ only by shape)."""
    manifest = make_split(scan(SAMPLE), seed=0)

    def histograms(split: str) -> tuple[np.ndarray, np.ndarray]:
        rows, labels = [], []
        for path, label in manifest.files(split):
            pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
            hist, _ = np.histogramdd(pixels, bins=(4, 4, 4), range=((0, 256),) * 3)
            rows.append(hist.ravel() / len(pixels))
            labels.append(label)
        return np.stack(rows), np.array(labels)

    train_x, train_y = histograms("train")
    test_x, test_y = histograms("test")
    centroids = np.stack([train_x[train_y == c].mean(0) for c in range(len(manifest.classes))])
    predicted = np.argmin(((test_x[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = float((predicted == test_y).mean())
    assert accuracy < 0.45, f"colour histograms reach {accuracy:.2f}: the demo would not need a model"


def test_pretrained_features_solve_it_well_above_chance() -> None:
    """The claim of bench/sample_data_fairness.py, pinned: frozen ImageNet features + a linear head."""
    fairness = _load(ROOT / "bench" / "sample_data_fairness.py")
    manifest = make_split(scan(SAMPLE), seed=0)
    train, test = manifest.files("train"), manifest.files("test")
    accuracy = fairness.linear_probe(
        fairness.lite0_features([p for p, _ in train]), torch.tensor([y for _, y in train]),
        fairness.lite0_features([p for p, _ in test]), torch.tensor([y for _, y in test]),
        len(manifest.classes),
    )
    assert accuracy >= 0.7, f"pretrained features reach only {accuracy:.2f} (chance {1 / len(manifest.classes):.2f})"
