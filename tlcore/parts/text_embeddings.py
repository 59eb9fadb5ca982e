"""The fast path for head-only text runs: the frozen encoder's pooled embeddings of the training and validation
texts, computed once before the first epoch, and the head trained on them in the epoch's order: the batches and
the result of the slow path (runs without text augmentation: one view is every epoch's view), without running
the encoder every epoch. Kept in memory for the run (a few MB: texts x hidden size x 4 bytes)."""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.data import DataLoader

from tlcore.collectives import rank_world
from tlcore.events import Event
from tlcore.parts.fast_path import feature_progress
from tlcore.features import uses_fast_path
from tlcore.inference import outputs
from tlcore.parts.base import Fit, Part, StepPath
from tlcore.prepare import Prepared
from tlcore.steps import evaluate_loss
from tlcore.text.loader import collate_texts

__all__ = ["TextEmbeddings", "make"]


class _Head(nn.Module):
    """The text model's head on pooled embeddings."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.head = model.head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


class TextEmbeddings(Part):
    """Embeds the texts once, then offers the head on the embeddings as the step path."""

    def __init__(self) -> None:
        self.train: torch.Tensor | None = None
        self.train_labels: torch.Tensor | None = None
        self.val: torch.Tensor | None = None
        self.val_labels: torch.Tensor | None = None

    def before_fit(self, fit: Fit) -> None:
        prep, started = fit.prep, time.monotonic()
        model = prep.model

        total = len(fit.loop.train_loader.dataset) + len(fit.loop.val_loader.dataset)
        report, done = feature_progress(fit.sink, "embedding texts"), [0]

        def embed(dataset) -> tuple[torch.Tensor, torch.Tensor]:
            # the loop's own datasets (texts read and tokenized once), in manifest order
            loader = DataLoader(dataset, batch_size=fit.config.batch_size, collate_fn=collate_texts)
            pairs = []
            for features, labels in outputs(model, loader, prep.runtime, forward=lambda m, x: m.forward_features(x)):
                pairs.append((features, labels))
                done[0] += len(labels)
                report(done[0], total)  # "embedding texts 96/204": most of a short text run's first minute
            return torch.cat([f for f, _ in pairs]), torch.cat([y for _, y in pairs])

        report(0, total)
        self.train, self.train_labels = embed(fit.loop.train_loader.dataset)
        self.val, self.val_labels = embed(fit.loop.val_loader.dataset)
        fit.sink(Event("log", f"text fast path: pooled embeddings of {len(self.train)} training and {len(self.val)} "
                              f"validation texts computed once ({time.monotonic() - started:.1f} s); the head "
                              "trains on them"))

    def step_path(self, fit: Fit) -> StepPath:
        head = _Head(fit.prep.model)
        runtime, batch_size = fit.prep.runtime, fit.config.batch_size

        def batches(epoch: int, order: list[int]):
            head.train()
            return ((self.train[idx], self.train_labels[idx]) for idx in torch.tensor(order).split(batch_size))

        def validate() -> tuple[float, float]:
            return evaluate_loss(head, [(self.val, self.val_labels)], runtime, fit.loop.eval_criterion)

        return StepPath("features", head, runtime, batches, validate, lambda epoch_seed: None)


def make(prep: Prepared) -> Part | None:
    """The part, for head-only text runs with the feature cache on (the default), in one process, without text
    augmentation.

    Args:
        prep: the prepared run.

    Returns:
        The part, or None.
    """
    config = prep.config
    if not (prep.built.text and config.feature_cache and rank_world()[1] == 1) or config.text_augment.active:
        return None  # augmented texts change every epoch: each epoch embeds its own
    return TextEmbeddings() if uses_fast_path(prep.plan, len(prep.built.groups), config.epochs) else None
