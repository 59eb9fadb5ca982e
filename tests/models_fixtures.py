"""Tiny random-weight models of each architecture family the card names, built once per test session."""

from __future__ import annotations

from functools import lru_cache

from tlcore.models import BuiltModel, ModelSpec, build_model

# (architecture, input size): small inputs keep every forward pass cheap on CPU.
ARCHITECTURES = {
    "resnet18": (3, 64, 64),
    "vgg16": (3, 64, 64),
    "inception_v3": (3, 75, 75),
    "efficientnet_b0": (3, 64, 64),
    "convnext_atto": (3, 64, 64),
    "vit_tiny_patch16_224": (3, 32, 32),
}


@lru_cache(maxsize=None)
def tiny(arch: str, num_classes: int = 3) -> BuiltModel:
    return build_model(ModelSpec(name=arch, weights="random"), num_classes, input_size=ARCHITECTURES[arch])
