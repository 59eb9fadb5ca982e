"""What the Model page and the sidebar say of a model: whether its weights are here, its overview, its
preprocessing in words, and notes on feeding it on a GPU."""

from __future__ import annotations

import json
from dataclasses import dataclass

import streamlit as st

from tlcore.models import ModelSpec, check_weights
from tlcore.errors import TransferLabError
from tlcore.models.groups import LayerGroup
from tlcore.models.weights import packaged_weights_present
from pages.state import augment_spec, model_spec
from pages.scanning import data_report, num_classes

__all__ = ["has_weights", "weights_words", "resize_words", "normalise_words", "ModelOverview", "model_overview",
           "gpu_speed_notes"]


@st.cache_data(show_spinner=False, max_entries=500, ttl=60)  # a weights file put in place shows within a minute


def has_weights(spec_json: str) -> bool:
    """Whether a model spec's weights are here (its offline package or cache, or its file), without downloading;
    kept per spec, as the sidebar and the Model page's lists ask on every run."""
    spec = ModelSpec.from_dict(json.loads(spec_json))
    if spec.weights in ("", "auto") and packaged_weights_present(spec.name):
        return True  # known without loading timm and torch, which the first page need not wait for
    try:
        check_weights(spec)
    except TransferLabError:
        return False
    return True


def weights_words(spec: ModelSpec) -> str:
    """How the model starts, in the words of the Model page: pretrained, random, a file, or needing weights."""
    if spec.weights == "random":
        return "random init"
    if not has_weights(json.dumps(spec.to_dict())):
        return "needs weights"
    return "weights file" if spec.weights != "auto" else "pretrained"


def resize_words(interpolation: str, crop_pct: float) -> str:
    return f"{interpolation}, crop {crop_pct:g}"


def normalise_words(mean, std) -> str:
    """A model's normalisation as people name it; the numbers where it has no name."""
    def near(values, target) -> bool:  # TF ports store 127/255 and 128/255 for 0.5
        return len(values) == len(target) and all(abs(v - t) < 0.005 for v, t in zip(values, target))

    values = (*mean, *std)
    if near(values, (0.485, 0.456, 0.406, 0.229, 0.224, 0.225)):
        return "ImageNet mean/std"
    if near(values, (0.5,) * 6):
        return "to [-1, 1]"
    if near(values, (0.0, 0.0, 0.0, 1.0, 1.0, 1.0)):
        return "none (0 to 1)"
    return "mean " + ", ".join(f"{v:.3f}" for v in mean) + "; std " + ", ".join(f"{v:.3f}" for v in std)


@dataclass(frozen=True)


class ModelOverview:
    """What pages show of a model; never the model object itself (that stays out of session state)."""

    label: str
    weights: str
    pretrained: bool
    preprocessing: dict
    groups: list[LayerGroup]


@st.cache_data(show_spinner="Building the model...", max_entries=8)


def model_overview(spec_json: str, classes: int) -> ModelOverview:
    """A model's label, weights, preprocessing and layer groups (an image model or a text encoder)."""
    from tlcore.modality import build_for  # loads torch: only pages that show a model pay for it

    built = build_for(ModelSpec.from_dict(json.loads(spec_json)), classes)
    return ModelOverview(built.label, built.weights.description, built.weights.pretrained,
                         built.preprocessing.to_dict(), built.groups)


def gpu_speed_notes() -> list[str]:
    """What the GPU speed settings would do for this experiment: where augmentation runs, the cache's size."""
    import torch

    from tlcore.inputs.decoded import DEFAULT_MAX_GB, cache_bytes, square_size
    from tlcore.inputs.device_augment import device_spec
    from tlcore.models import Preprocessing

    notes = [f"This machine {'has a CUDA GPU: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'has no CUDA GPU: auto leaves all three off'}."]
    try:
        steps, why = device_spec(augment_spec())
    except TransferLabError as exc:  # the user's own steps do not make an augmentation (yet)
        steps, why = None, str(exc)
    notes.append("This augmentation can run on the GPU." if steps is not None else f"Augmentation: {why}.")
    report = data_report()
    try:
        p = Preprocessing(**model_overview(json.dumps(model_spec().to_dict()), num_classes()).preprocessing)
    except TransferLabError:
        return notes
    if report is not None:
        side, size = square_size(p), cache_bytes(len(report.images), p)
        notes.append(f"Decoded-image cache for these {len(report.images):,} pictures: {size / 1e9:.2f} GB "
                     f"({side}x{side} px each; a run over {DEFAULT_MAX_GB:g} GB reads the JPEGs and says so).")
    return notes
