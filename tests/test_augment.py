"""Augmentation: the spec is albumentations' own JSON, previews are reproducible, the model's preprocessing is exact."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tlcore_in_process
from tlcore.inputs.augment import (
    PRESETS, AugmentError, AugmentSpec, eval_pipeline, model_view, preset, preview, train_pipeline,
)
from tlcore.data import decode_image
from tlcore.models import Preprocessing

PREP = Preprocessing(input_size=(3, 32, 32), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), interpolation="bicubic",
                     crop_pct=0.875)


def picture(width: int = 60, height: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", list(PRESETS))
def test_spec_round_trips_through_json(name: str) -> None:
    spec = preset(name)
    again = AugmentSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    a = train_pipeline(spec, PREP, seed=3)(image=picture())["image"]
    b = train_pipeline(again, PREP, seed=3)(image=picture())["image"]
    assert torch.equal(a, b)


def test_preset_name_alone_expands() -> None:
    assert AugmentSpec.from_dict({"preset": "medium"}) == preset("medium")


def test_previews_are_deterministic_for_a_seed() -> None:
    spec = preset("heavy")
    first = preview(picture(), spec, PREP, n=6, seed=11)
    assert all(np.array_equal(a, b) for a, b in zip(first, preview(picture(), spec, PREP, n=6, seed=11)))
    assert len({a.tobytes() for a in first}) > 1  # six different pictures, not one repeated
    other = preview(picture(), spec, PREP, n=6, seed=12)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert all(a.shape == (32, 32, 3) and a.dtype == np.uint8 for a in first)


def test_output_has_the_models_size_dtype_and_normalisation() -> None:
    mean_colour = np.zeros((50, 70, 3), dtype=np.uint8) + np.array([round(m * 255) for m in PREP.mean], dtype=np.uint8)
    x = eval_pipeline(PREP)(image=mean_colour)["image"]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert x.abs().max() < 0.02  # the mean colour normalises to zero
    white = eval_pipeline(PREP)(image=np.full((40, 40, 3), 255, np.uint8))["image"]
    expected = torch.tensor([(1 - m) / s for m, s in zip(PREP.mean, PREP.std)])
    assert torch.allclose(white[:, 0, 0], expected, atol=1e-4)


def test_model_view_undoes_the_normalisation() -> None:
    image = picture(36, 36)  # resize to 36 (32 / 0.875), crop 32: a pure crop, no resampling
    seen = model_view(eval_pipeline(PREP)(image=image)["image"], PREP)
    assert np.abs(seen.astype(int) - image[2:34, 2:34].astype(int)).max() <= 1


def _encode(img: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


ODD_INPUTS = {
    "grayscale": lambda: _encode(Image.new("L", (50, 40), 90), "PNG"),
    "rgba": lambda: _encode(Image.new("RGBA", (50, 40), (10, 200, 30, 120)), "PNG"),
    "10x10": lambda: _encode(Image.fromarray(picture(10, 10)), "PNG"),
    "4000x3000": lambda: _encode(Image.fromarray(np.zeros((3000, 4000, 3), np.uint8)), "JPEG"),
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_runs_on_odd_inputs(name: str) -> None:
    pipeline = train_pipeline(preset(name), PREP, seed=0)
    for kind, make in ODD_INPUTS.items():
        image = np.asarray(decode_image(make(), draft=37)[0])
        out = pipeline(image=image)["image"]
        assert out.shape == (3, 32, 32) and torch.isfinite(out).all(), kind


@pytest.mark.parametrize(("spec", "message"), [
    ({"transforms": [{"__class_fullname__": "Teleport", "p": 0.5}]}, "unknown augmentation 'Teleport' (step 1)"),
    ({"transforms": [{"__class_fullname__": "HorizontalFlip", "p": 2}]}, "invalid parameters for HorizontalFlip"),
    ({"transforms": [{"p": 0.5}]}, "has no '__class_fullname__'"),
    ({"transforms": [{"__class_fullname__": "Crop", "x_max": 500, "y_max": 500, "p": 1.0}]}, "fails on a test image"),
    ({"preset": "underwater"}, "unknown augmentation preset 'underwater'"),
    ({"transforms": [], "colour": 1}, "unknown setting(s) in 'augment'"),
])
def test_invalid_specs_give_one_clear_error(spec: dict, message: str) -> None:
    with pytest.raises(AugmentError) as info:
        AugmentSpec.from_dict(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_preview_writes_a_grid(tmp_path: Path, tl_home: Path) -> None:
    image = tmp_path / "photo.jpg"
    Image.fromarray(picture(300, 200)).save(image)
    out = tmp_path / "grid.png"
    result = tlcore_in_process("augment", "preview", str(image), "--preset", "medium", "--n", "8", "--out", str(out), "--model-view")
    assert result.returncode == 0, result.stderr
    grid = Image.open(out)
    assert grid.size == (4 + 4 * (224 + 4), 4 + 3 * (224 + 4))  # 8 previews + the model's view, 4 per row
    bad = tlcore_in_process("augment", "preview", str(image), "--preset", "nope")
    assert bad.returncode == 1 and "unknown augmentation preset 'nope'" in bad.stderr and "Traceback" not in bad.stderr
