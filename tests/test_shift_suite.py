"""The shift suite the label-free adaptation choice is measured on (bench/shift_suite.py): every change is
deterministic, changes the photo, keeps its size, and the target is split into an unlabelled half and a test half."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from shift_suite import CONFIRMATION_SHIFTS, SHIFTS, photo_shift  # noqa: E402


def _photo(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, 64 * 48 * 3).reshape(48, 64, 3) + rng.normal(0, 20, (48, 64, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("name", sorted({**SHIFTS, **CONFIRMATION_SHIFTS}))
def test_each_change_is_deterministic_changes_the_photo_and_keeps_its_size(name: str) -> None:
    change = {**SHIFTS, **CONFIRMATION_SHIFTS}[name]
    photo = _photo()
    changed = change(photo, "bee.jpg")
    again = change(_photo(), "bee.jpg")
    assert changed.size == photo.size and changed.mode == "RGB"
    assert np.array_equal(np.asarray(changed), np.asarray(again))
    assert np.abs(np.asarray(changed, dtype=float) - np.asarray(photo, dtype=float)).mean() > 5


def test_the_target_is_split_into_an_unlabelled_half_and_a_labelled_test(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for label in ("ants", "bees"):
        for split in ("train", "val"):
            (photos / split / label).mkdir(parents=True)
            for i in range(4):
                _photo(i).save(photos / split / label / f"{label}{i}.jpg")
    source, unlabelled, test = photo_shift("blur", SHIFTS["blur"], tmp_path / "out", photos)
    assert source == photos / "train"
    assert sorted(p.name for p in unlabelled.iterdir()) == ["ants_ants0.png", "ants_ants1.png", "bees_bees0.png",
                                                            "bees_bees1.png"]
    assert sorted(str(p.relative_to(test)) for p in test.rglob("*.png")) == [
        "ants/ants_ants2.png", "ants/ants_ants3.png", "bees/bees_bees2.png", "bees/bees_bees3.png"]
