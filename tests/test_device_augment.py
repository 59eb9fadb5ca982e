"""Augmentation on the device: what it draws matches its spec, a seed repeats it, and it never waits on the host."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
from torchvision.transforms import RandomResizedCrop
from torch.overrides import TorchFunctionMode

from tlcore.inputs.augment import AugmentSpec, preset
from tlcore.inputs.device_augment import DeviceAugment, DeviceEval, ResizedCrop, device_spec
from tlcore.inputs.input_path import choose_input
from tlcore.training.train import build_loop, evaluate_loss, prepare, train, train_step
from train_fixtures import make_colour_classes, tiny_config

PREP = SimpleNamespace(input_size=(3, 32, 32), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="bilinear",
                       crop_pct=0.875)


def _spec(*steps: dict) -> list:
    found, why = device_spec(AugmentSpec(transforms=tuple(steps)))
    assert found is not None, why
    return found


def _pictures(n: int, side: int = 36) -> torch.Tensor:
    """uint8 squares whose red channel is the column and green the row: where a pixel came from is readable."""
    cols = torch.arange(side).view(1, side, 1).expand(side, side, 1)
    rows = torch.arange(side).view(side, 1, 1).expand(side, side, 1)
    one = torch.cat([cols * 7, rows * 7, torch.full((side, side, 1), 128)], 2).to(torch.uint8)
    return one.expand(n, side, side, 3).contiguous()


def test_without_steps_it_is_the_evaluation_crop_exactly():
    x = _pictures(4)
    out = DeviceAugment([], PREP, "cpu")(x)
    assert torch.allclose(out, DeviceEval(PREP, "cpu")(x), atol=1e-6)  # bilinear sampling at the pixel centres
    assert torch.allclose(out[0, 0, 0, :3] * 255, torch.tensor([14.0, 21.0, 28.0]), atol=1e-4)  # columns 2, 3, 4


def test_flip_rate_matches_its_probability_and_a_flip_mirrors_the_picture():
    x = _pictures(4000)
    out = DeviceAugment(_spec({"__class_fullname__": "HorizontalFlip", "p": 0.3}), PREP, "cpu", seed=0)(x)
    plain = DeviceEval(PREP, "cpu")(x[:1])
    flipped = torch.isclose(out[:, 0], plain[:, 0].flip(-1), atol=1e-5).flatten(1).all(1)
    same = torch.isclose(out[:, 0], plain[:, 0], atol=1e-5).flatten(1).all(1)
    assert bool((flipped ^ same).all())  # each picture exactly mirrored or exactly not
    assert 0.27 < flipped.float().mean().item() < 0.33


def test_resized_crop_areas_and_aspects_stay_in_the_spec_and_cover_it():
    crop = ResizedCrop(p=1.0, scale=(0.25, 1.0), ratio=(0.75, 4 / 3), size=32)
    w, h, cx, cy = crop.sample(20000, torch.Generator().manual_seed(0), "cpu")
    area, aspect = w * h, w / h
    assert area.min() >= 0.25 - 1e-6 and area.max() <= 1.0 + 1e-6
    assert aspect.min() >= 0.75 - 1e-5 and aspect.max() <= 4 / 3 + 1e-5
    assert (cx.abs() <= 1 - w + 1e-6).all() and (cy.abs() <= 1 - h + 1e-6).all()  # inside the picture
    # the same distribution as torchvision's RandomResizedCrop draws (on a large picture, so pixels do not round)
    torch.manual_seed(0)
    reference = torch.tensor([h * w / 1000**2 for _, _, h, w in (
        RandomResizedCrop.get_params(torch.empty(1, 1000, 1000), [0.25, 1.0], [0.75, 4 / 3]) for _ in range(4000))])
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert abs(area.quantile(q) - reference.quantile(q)) < 0.02, q


def test_a_crop_shows_the_part_of_the_picture_it_drew():
    aug = DeviceAugment(_spec({"__class_fullname__": "RandomResizedCrop", "size": [32, 32], "scale": [0.3, 0.3],
                               "ratio": [1.0, 1.0], "p": 1.0}), PREP, "cpu", seed=3)
    out = aug(_pictures(8)) * 255 / 7  # back to source columns
    spans = out[:, 0, 16, -2] - out[:, 0, 16, 1]  # columns covered by 29 output pixels
    expected = 36 * 0.3**0.5 * 29 / 32
    assert torch.allclose(spans, torch.full_like(spans, expected), atol=0.6)


def test_the_same_seed_repeats_a_batch_exactly_and_another_seed_does_not():
    steps = device_spec(preset("light"))[0]
    x = torch.randint(0, 256, (16, 36, 36, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    aug = DeviceAugment(steps, PREP, "cpu", seed=5)
    first = aug(x)
    aug.reseed(5)
    assert torch.equal(aug(x), first)
    aug.reseed(6)
    assert not torch.equal(aug(x), first)


def test_colour_factors_do_what_they_say():
    x = _pictures(2)
    half = DeviceAugment(_spec({"__class_fullname__": "ColorJitter", "brightness": [0.5, 0.5], "contrast": [1, 1],
                                "saturation": [1, 1], "hue": [0, 0], "p": 1.0}), PREP, "cpu")(x)
    assert torch.allclose(half, DeviceEval(PREP, "cpu")(x) * 0.5, atol=1e-5)
    grey = DeviceAugment(_spec({"__class_fullname__": "ToGray", "p": 1.0}), PREP, "cpu")(x)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])


def test_blur_is_opencvs_gaussian_blur_and_its_kernel_sizes_follow_the_spec():
    import cv2
    import numpy as np

    x = torch.zeros(2, 36, 36, 3, dtype=torch.uint8)
    x[:, 18, 18] = 255
    blur = DeviceAugment(_spec({"__class_fullname__": "GaussianBlur", "blur_limit": [5, 5], "sigma_limit": [1.0, 1.0],
                                "p": 1.0}), PREP, "cpu")(x)
    plain = DeviceEval(PREP, "cpu")(x)[0, 0].numpy()
    reference = cv2.GaussianBlur(np.float32(plain), (5, 5), 1.0, borderType=cv2.BORDER_REFLECT_101)
    assert np.abs(blur[0, 0].numpy() - reference).max() < 1e-6
    small = DeviceAugment(_spec({"__class_fullname__": "GaussianBlur", "blur_limit": [3, 3], "sigma_limit": [3, 3],
                                 "p": 1.0}), PREP, "cpu")(x)
    assert (small[0, 0, 14:19, 14:19] > 0).sum() == 9  # a 3x3 kernel reaches one pixel around, however wide sigma


@pytest.mark.parametrize("name,supported", [("none", True), ("light", True), ("medium", True), ("aerial", True),
                                            ("documents", True), ("microscopy", True), ("heavy", False),
                                            ("photos", False)])
def test_presets_without_a_device_form_are_named_with_the_step(name, supported):
    steps, why = device_spec(preset(name))
    assert (steps is not None) == supported
    if not supported:
        assert "has no GPU form here" in why and "augments on the CPU" in why


class HostReads(TorchFunctionMode):
    """Every read of a tensor's value into Python (a host sync on a GPU) made from tlcore's own code."""

    READS = (torch.Tensor.item, torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__bool__,
             torch.Tensor.tolist)

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        caller = sys._getframe(1).f_code
        if func in self.READS and "/tlcore/" in caller.co_filename:
            self.reads.append(f"{func.__name__} in {caller.co_name}")
        return func(*args, **(kwargs or {}))


def test_the_training_step_and_device_augmentation_never_read_values_back_to_the_host(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    config = tiny_config(make_colour_classes(tmp_path / "data", per_class=8), decoded_cache="on",
                         augment_on="device", augment={"preset": "light"})
    prep = prepare(config)
    prep.inputs = choose_input(config, prep.manifest, prep.built.preprocessing, prep.runtime, lambda k, m: None)
    loop = build_loop(prep)
    loop.train_loader.start_epoch(0)
    params = [p for p in prep.model.parameters() if p.requires_grad]
    with HostReads() as watch:
        for x, y in loop.train_loader:  # uint8 batches augmented by the device
            train_step(prep.model, x, y, loop.optimizer, loop.scheduler, loop.objective, prep.runtime, params,
                       config.optimizer.grad_clip)
    assert watch.reads == []
    with HostReads() as watch:  # the watcher does see tlcore's reads: validation reads its totals once
        evaluate_loss(prep.model, [(x, y)], prep.runtime, loop.eval_criterion)
    assert watch.reads == ["__float__ in evaluate_loss"] * 2


def test_a_run_augmenting_on_the_device_learns_and_repeats_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    source = make_colour_classes(tmp_path / "data", per_class=8)
    config = tiny_config(source, epochs=2, decoded_cache="on", augment_on="device", augment={"preset": "light"})
    events: list = []
    first = train(config, tmp_path / "a", sink=events.append)
    again = train(config, tmp_path / "b")
    assert [h["train_loss"] for h in again.history] == [h["train_loss"] for h in first.history]
    assert first.history[-1]["train_loss"] < first.history[0]["train_loss"]
    assert any("augmented on the device" in e.message for e in events)
    cpu = train(tiny_config(source, epochs=2, decoded_cache="on", augment={"preset": "light"}), tmp_path / "c")
    assert [h["train_loss"] for h in cpu.history] != [h["train_loss"] for h in first.history]  # really another path


def test_torchrun_ranks_draw_their_own_augmentation():
    from tlcore.inputs.loader import DecodedDataset, EpochLoader

    pictures = _pictures(8)
    items = [(f"p{i}", 0) for i in range(8)]
    draws = []
    for rank in (0, 1):
        aug = DeviceAugment(device_spec(preset("light"))[0], PREP, "cpu")
        loader = EpochLoader(DecodedDataset(items, (pictures.numpy(), list(range(8)))), batch_size=8, num_workers=0,
                             pin_memory=False, rank=rank, world=2, on_device=aug, device=torch.device("cpu"))
        loader.start_epoch(3)
        draws.append(aug.sampling(8)[0])
    assert not torch.equal(draws[0], draws[1])  # the same seed in both ranks would flip and crop alike
