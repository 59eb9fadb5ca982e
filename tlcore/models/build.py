"""From a model spec (plain data) to a ready model: architecture, weights, new head, layer groups."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from tlcore.errors import TransferLabError
from tlcore.core.schema import setting
from tlcore.core.typed import typed
from tlcore.models.catalog import DEFAULT_MODEL, RECOMMENDED, resolve_name
from tlcore.models.groups import LayerGroup, layer_groups
from tlcore.models.head import HeadSpec, replace_head
from tlcore.models.weights import WeightsSource, find_weights, load_into

if TYPE_CHECKING:
    from torch import nn

__all__ = ["ModelSpec", "Preprocessing", "BuiltModel", "build_model"]


@dataclass(frozen=True)
class ModelSpec:
    """What the run config says about the model. `weights`: "auto", a file path, or "random"."""

    name: str = setting(DEFAULT_MODEL, label="Model", axis="", try_values=[DEFAULT_MODEL], suggestions=RECOMMENDED,
                        group="model", help="A timm model name, or a BERT-family encoder for texts.")
    weights: str = setting("auto", label="Weights", group="model",
                           help="auto: the model's pretrained weights where they are on this machine; random; "
                                "or a weights file.")
    allow_download: bool = setting(False, label="Allow downloading weights", group="model",
                                   help="Fetch the weights from the Hugging Face Hub where they are not here.")
    head: HeadSpec = field(default_factory=HeadSpec)
    fine_groups: bool = setting(False, label="Finer layer groups", group="model",
                                help="timm's finer layer groups: per block instead of per stage.")

    def to_dict(self) -> dict:
        """As the run config stores it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        """From a run config's `model` mapping, each field checked by type.

        Args:
            data: the mapping.

        Raises:
            ConfigError: an unknown field or a value of the wrong type.
        """
        return typed(cls, data, "'model'")


@dataclass(frozen=True)
class Preprocessing:
    """How images must look to this model with these weights: read from its config, never hand-written."""

    input_size: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    crop_pct: float
    crop_mode: str = "center"

    def to_dict(self) -> dict:
        """As plain data (for the model card and the export)."""
        return asdict(self)


@dataclass
class BuiltModel:
    """A model made ready for transfer learning: the module with its new head, its weights source,
    preprocessing and layer groups."""
    model: nn.Module
    arch: str
    tag: str
    num_classes: int
    weights: WeightsSource
    preprocessing: Preprocessing
    groups: list[LayerGroup]
    tokenizer: object | None = None  # text models (tlcore.text): their tokenizer; None for image models
    max_length: int | None = None  # text models: tokens per text
    modality: str = "images"  # the kind of data it takes (a `tlcore.modality` key)

    @property
    def label(self) -> str:
        """How the model is named everywhere it is shown: random weights are always said out loud."""
        suffix = "" if self.weights.pretrained else " (RANDOM INIT, not pretrained)"
        return f"{self.arch}{suffix}"


def check_weights(spec: ModelSpec) -> WeightsSource:
    """Where the spec's weights come from, without building anything; `WeightsError` when there are none here.

    Called before a run is queued, so an impossible run is refused at once instead of failing in the worker.
    """
    arch, tag = resolve_name(spec.name)
    return find_weights(arch, tag, spec.weights, allow_download=spec.allow_download)


def build_model(spec: ModelSpec, num_classes: int | None, *, input_size: tuple[int, int, int] | None = None,
                seed: int = 0) -> BuiltModel:
    """A timm model with its pretrained weights, a new head, its preprocessing and its layer groups, on the CPU.

    Args:
        spec: the model part of a run config (name, weights: "auto", a file or "random", head).
        num_classes: outputs of the new head; None keeps the ImageNet classifier (to check weights are real).
        input_size: overrides the model's own (smaller is faster; tests use tiny inputs).
        seed: makes the new head's initialisation reproducible.

    Returns a `BuiltModel`: `.model`, `.preprocessing` (from the model's own config), `.groups` (stem to head),
    `.weights` (where they came from). Raises `ModelNotFoundError` or `WeightsError` with what to do.
    """
    import timm
    import torch
    arch, tag = resolve_name(spec.name)
    source = find_weights(arch, tag, spec.weights, allow_download=spec.allow_download)
    fixed_size = bool((timm.models.get_pretrained_cfg(arch) or {}).__dict__.get("fixed_input_size"))
    extra = {"img_size": input_size[-1]} if input_size and fixed_size else {}  # ViTs are built for one size
    model = timm.create_model(arch, pretrained=False, **extra)
    load_into(model, arch, source)
    if num_classes is not None:
        if num_classes < 2:
            raise TransferLabError(f"{num_classes} class(es) given", "a classifier needs at least two classes")
        torch.manual_seed(seed)
        replace_head(model, num_classes, spec.head)
    cfg = timm.data.resolve_data_config({}, model=model)
    cfg.update(source.preprocessing)
    preprocessing = Preprocessing(
        input_size=tuple(input_size or cfg["input_size"]),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=cfg["interpolation"],
        crop_pct=float(cfg["crop_pct"]),
        crop_mode=cfg.get("crop_mode", "center"),
    )
    groups = layer_groups(model, coarse=not spec.fine_groups, input_size=preprocessing.input_size)
    return BuiltModel(model=model, arch=arch, tag=tag, num_classes=num_classes or model.num_classes,
                      weights=source, preprocessing=preprocessing, groups=groups)
