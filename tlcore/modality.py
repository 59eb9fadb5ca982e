"""Which kind of data a run has (pictures or texts) and what follows from it: the model builder and the loader's
dataset. The one place that knows both kinds; everything else asks here or reads `BuiltModel.text`."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from tlcore.models import BuiltModel, ModelSpec, build_model
from tlcore.text.augment import TextAugment
from tlcore.text.data import is_text_source
from tlcore.text.loader import TextDataset, collate_texts, texts_of
from tlcore.text.model import build_text_model, is_text_model

__all__ = ["is_text_source", "is_text_model", "build_for", "text_dataset", "collate_texts"]


def build_for(spec: ModelSpec, num_classes: int, *, input_size: tuple[int, int, int] | None = None,
              seed: int = 0) -> BuiltModel:
    """The model a spec names: a text encoder (tlcore.text.model) or an image model (tlcore.models).

    Args:
        spec: the model part of a run config; num_classes: outputs of the new head;
        input_size: image models only; seed: the new head's initialisation.

    Returns:
        The `BuiltModel`.
    """
    if is_text_model(spec.name):
        return build_text_model(spec, num_classes, seed=seed)
    return build_model(spec, num_classes, input_size=input_size, seed=seed)


def text_dataset(built: BuiltModel, items: list[tuple[Path, int]], root: str, source: str,
                 text_column: str | None, label_column: str | None, augment: TextAugment | None = None) -> Dataset:
    """The texts of a manifest's items, tokenized for the model.

    Args:
        built: a text model; items: (root / location, class index) pairs; root: the manifest's root;
        source: the data file or folder; text_column, label_column: the run's columns.
        augment: the training texts' augmentation (None: the texts as they are).

    Returns:
        A `TextDataset` (batch it with `collate_texts`).
    """
    locations = [Path(path).relative_to(root).as_posix() for path, _ in items]
    texts = texts_of(source, locations, text_column, label_column) if items else []
    return TextDataset(items, texts, built.tokenizer, built.max_length, augment)
