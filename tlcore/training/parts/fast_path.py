"""The feature-cache fast path: head-only runs train on cached backbone features (a picture model's pooled
features, a text encoder's pooled embeddings: any modality whose model has timm's `forward_features`,
`forward_head` and `get_classifier`), with the same batches and result as on the items and far less work per
epoch. The features are computed once and kept on disk, keyed by the items' content, so the next run on the same
split (another seed, learning rate or head) reads them."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

import torch

from tlcore.core.collectives import rank_world
from tlcore.core.events import STARTING_CHECK_EVERY_S, Cancelled, Event, Progress, Sink
from tlcore.training.features import FeatureSet, HeadOnFeatures, cached_feature_set, fast_path_fits, uses_fast_path
from tlcore.training.parts.base import Fit, Part, StepPath
from tlcore.training.prepare import Prepared
from tlcore.training.steps import evaluate_loss, make_loader

__all__ = ["FastPath", "fast_path_applies", "make", "EXTRACT_BATCH_CUDA"]

EXTRACT_BATCH_CUDA = 256  # feature extraction on a GPU: no gradients, so far larger batches than training
PROGRESS_EVERY_S = 1.0


def fast_path_applies(prep: Prepared) -> bool:
    """The run trains on cached features: asked for, only the head trains, and the head on features computes
    what the whole model does.

    Args:
        prep: the prepared run.

    Returns:
        True when the fast path applies.
    """
    config = prep.config
    return (config.feature_cache and rank_world()[1] == 1  # with torchrun every rank trains the model itself
            and prep.modality.fast_path_allowed(config)  # augmented texts change every epoch: no fixed views
            and uses_fast_path(prep.plan, len(prep.built.groups), config.epochs)
            and fast_path_fits(prep.model, prep.modality.example_input(prep.built)))


class FastPath(Part):
    """Extracts (or reads) the features before the first epoch, then offers the head on them as the step path."""

    after = ("source_statistics",)  # features computed with the source's BatchNorm statistics, AdaBN's

    def __init__(self) -> None:
        self.features: FeatureSet | None = None

    def before_fit(self, fit: Fit) -> None:
        prep, config, loop = fit.prep, fit.config, fit.loop
        train_loader, val_loader, augment = loop.train_loader, loop.val_loader, prep.modality.augment_key(config)
        if prep.runtime.device.type == "cuda":  # no gradients: large batches; bf16 and channels_last from the runtime
            train_loader = make_loader(prep, "train", training=True, generator=torch.Generator(),
                                       batch_size=EXTRACT_BATCH_CUDA)
            val_loader = make_loader(prep, "val", training=False, batch_size=EXTRACT_BATCH_CUDA)
            # the batch changes an augmented view (the draws follow it); unaugmented items have one view whatever it is
            augment = {**augment, "extract_batch": EXTRACT_BATCH_CUDA} if augment else augment
        if prep.inputs.steps is not None:  # the device's augmentation draws other views than albumentations
            augment = {**augment, "on": "device"}
        self.features = cached_feature_set(
            prep.model, prep.built, prep.manifest, train_loader, val_loader, prep.runtime, seed=config.seed,
            views=config.feature_views, augment=augment, on_note=lambda text: fit.sink(Event("warning", text)),
            target=(prep.target, make_loader(prep, "target", training=False)) if loop.target_loader else None,
            on_progress=feature_progress(fit.sink, f"features of the {prep.modality.items_word}", fit.should_stop,
                                         unit=f"{prep.modality.items_word[:-1]} views" if augment else None),
            keys={split: prep.modality.feature_keys(prep, split) for split in ("train", "val")})
        items = prep.modality.items_word
        views = f"{config.feature_views} augmented view(s) of " if augment else "the "  # unaugmented: one view
        fit.sink(Event("log", f"feature extraction fast path: backbone features of {len(self.features.val)} val "
                              f"{items} and {views}{len(self.features.train_labels)} training {items} "
                              f"{_cache_words(self.features, config.feature_views)}; the head trains on them"))

    def step_path(self, fit: Fit) -> StepPath:
        features, batch_size = self.features, fit.config.batch_size
        head = HeadOnFeatures(fit.prep.model)
        runtime = replace(fit.prep.runtime, channels_last=False)

        def batches(epoch: int, order: list[int]):
            head.train()
            return features.epoch_batches(epoch, order, batch_size)

        def validate() -> tuple[float, float]:
            return evaluate_loss(head, [(features.val, features.val_labels)], runtime, fit.loop.eval_criterion)

        def target_batches(epoch_seed: int):
            if fit.loop.target_loader is None:
                return None
            return _cycle_features(features.target, epoch_seed, batch_size)

        return StepPath("features", head, runtime, batches, validate, target_batches)


def _cycle_features(target: torch.Tensor, epoch_seed: int, batch_size: int):
    generator = torch.Generator().manual_seed(epoch_seed)
    while True:
        yield from target[torch.randperm(len(target), generator=generator)].split(batch_size)


def feature_progress(sink: Sink, words: str = "extracting features",
                     should_stop: Callable[[], bool] | None = None,
                     unit: str | None = None) -> Callable[[int, int], None]:
    """Progress of the one pass through the frozen backbone ("features of the pictures 120/350", "features of the
    texts 96/204"), at its start, at most every PROGRESS_EVERY_S and at its end: on a CPU it is most of a short run's
    first minute.

    Args:
        sink: the run's event sink.
        words: what is being done, for the event's message.
        should_stop: asked at most every STARTING_CHECK_EVERY_S (at every batch): the one pass can be long, and a
            cancel must not wait for the first epoch.
        unit: what the count counts where it is not the items ("picture views": each training picture once per
            augmented view, so 372 for 240 pictures); None: the items.

    Returns:
        `report(done, total)`.
    """
    last, checked = [-PROGRESS_EVERY_S], [time.monotonic()]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if should_stop is not None and now - checked[0] >= STARTING_CHECK_EVERY_S:
            checked[0] = now
            if should_stop():
                raise Cancelled(f"cancelled while extracting features ({done} of {total} done)")
        if now - last[0] >= PROGRESS_EVERY_S or done in (0, total):
            last[0] = now
            sink(Event("progress", f"{words} {done}/{total}" + (f" {unit}" if unit else ""),
                       Progress("features", done, total, unit=unit).to_data()))
    return report


def _cache_words(features: FeatureSet, views: int) -> str:
    if features.from_cache:
        return "read from the cache"
    if features.views_from_cache:  # e.g. the next seed of a comparison: it shares all but one view
        return (f"({features.views_from_cache} of {views} training view(s) read from the cache, shared with an "
                "earlier run or seed; the rest computed once and cached)")
    return "computed once and cached"


def make(prep: Prepared) -> Part | None:
    """The part, for runs the fast path applies to.

    Args:
        prep: the prepared run.

    Returns:
        The part, or None.
    """
    return FastPath() if fast_path_applies(prep) else None
