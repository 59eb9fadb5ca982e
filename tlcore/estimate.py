"""How long a run will take, from a few real steps measured on this machine before it starts.

A run's time is mostly its steps: per epoch, the training batches (a forward and a
backward through the groups that train) and the validation batches (a forward). So a
few steps of each kind, on the run's own pictures, model, batch size and device, give
the estimate. What trains changes the backward's cost, so the first and the last stage
of the freeze plan are measured, and stages in between are interpolated by their
trainable parameters. Head-only runs on the feature fast path pay one forward over the
pictures (unless the features are cached already) and then almost nothing per epoch.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch

from tlcore.config import RunConfig
from tlcore.features import FeatureCache
from tlcore.freeze import apply_plan, set_train_mode
from tlcore.inference import outputs
from tlcore.parts.fast_path import fast_path_applies
from tlcore.prepare import prepare
from tlcore.steps import Loop, build_loop, target_batches, train_step

__all__ = ["TimeEstimate", "estimate_time", "format_duration"]

HEAD_EPOCH_S = 0.05  # a head on cached features: a few matrix products per epoch, below what can be measured here


@dataclass(frozen=True)
class TimeEstimate:
    """Seconds a run should take on this machine, and what they rest on."""

    setup_s: float  # building the model, plus extracting features on the fast path
    epoch_s: tuple[float, ...]  # one per epoch
    basis: str

    @property
    def total_s(self) -> float:
        return self.setup_s + sum(self.epoch_s)

    @property
    def typical_epoch_s(self) -> float:
        return sorted(self.epoch_s)[len(self.epoch_s) // 2]

    def describe(self) -> str:
        start = f", {self.setup_s:.0f} s of it to start" if self.setup_s >= 1 else ""
        return (f"about {self.typical_epoch_s:.1f} s per epoch, {format_duration(self.total_s)} for "
                f"{len(self.epoch_s)} epoch(s){start} ({self.basis})")

    def to_dict(self) -> dict:
        return {**asdict(self), "epoch_s": list(self.epoch_s), "total_s": self.total_s}

    @classmethod
    def from_dict(cls, data: dict) -> "TimeEstimate":
        return cls(float(data["setup_s"]), tuple(float(s) for s in data["epoch_s"]), str(data["basis"]))


def format_duration(seconds: float) -> str:
    """A duration for people: seconds under 90 s, minutes under 90 min, else hours.

    Args:
        seconds: the duration.

    Returns:
        E.g. "45 s", "12 min", "1.5 h".
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _time_per_batch(make_batches, measure: int, step) -> tuple[float, float]:
    """(seconds per batch, extra seconds of a pass's first batch), timed after a warm-up pass of one batch.

    The warm-up pays the one-time costs (first calls into the model); the extra is what every pass over a
    loader pays again (starting its worker processes).
    """
    step(*next(iter(make_batches())))
    started = time.perf_counter()
    iterator = iter(make_batches())
    step(*next(iterator))
    first = time.perf_counter() - started
    times, last = [], time.perf_counter()
    for batch in iterator:  # each time includes waiting for the batch
        step(*batch)
        times.append(time.perf_counter() - last)
        last = time.perf_counter()
        if len(times) >= measure:
            break
    if not times:  # a single batch: its own time is all there is
        return first, 0.0
    per_batch = statistics.median(times)  # the first steps of a fresh model are slow now and then
    return per_batch, max(0.0, first - per_batch)


def _train_step_seconds(loop: Loop, config: RunConfig, epoch: int, measure: int) -> tuple[float, float, int]:
    """(seconds per training batch, first-batch extra, trainable parameters) with the groups of `epoch`."""
    prep, runtime = loop.prep, loop.prep.runtime
    apply_plan(prep.model, prep.built.groups, prep.plan, epoch)
    set_train_mode(prep.model, prep.built.groups, prep.plan, epoch)
    trainable = [p for p in prep.model.parameters() if p.requires_grad]
    loop.train_loader.start_epoch(config.seed)
    loop.objective.targets = target_batches(loop, config.seed)  # an adaptation's target batches cost their share

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.to(runtime.device), y.to(runtime.device)
        loss, _ = train_step(prep.model, x, y, loop.optimizer, loop.scheduler, loop.objective, runtime, trainable,
                             config.optimizer.grad_clip)
        float(loss)  # wait for the device: the step is done when its loss is

    return *_time_per_batch(lambda: loop.train_loader, measure, step), sum(p.numel() for p in trainable)


def _forward_seconds(loop: Loop, measure: int) -> tuple[float, float]:
    """Seconds per batch of a forward in eval mode, loading included: validation, or feature extraction.

    Timed on the training pictures in their fixed order, where every batch is full."""
    loop.train_loader.in_manifest_order()
    return _time_per_batch(lambda: outputs(loop.prep.model, loop.train_loader, loop.prep.runtime), measure, lambda logits, y: float(logits.sum()))


def _features_cached(loop: Loop) -> bool:
    prep, config = loop.prep, loop.prep.config
    hashes = prep.manifest.hashes("train") + prep.manifest.hashes("val")
    hashes += prep.target.sha256 if prep.target else []
    keys = [{"split": "eval"}] + [{"split": "train", "augment": config.augment.to_dict(), "seed": config.seed + v,
                                   "workers": prep.runtime.num_workers} for v in range(config.feature_views)]
    stored: dict = {}
    for key in keys:
        stored.update(FeatureCache(prep.built, key).load())
    return all(h in stored for h in hashes)


def estimate_time(config: RunConfig, *, measure: int = 3) -> TimeEstimate:
    """Build the run's model and time `measure` steps of each kind (after a warm-up step); nothing is saved.

    Takes a few seconds to a minute: one model build plus about 3 * (measure + 2) batches.
    Raises `TransferLabError` for the same problems a run would meet at its start.
    """
    started = time.perf_counter()
    prep = prepare(config)
    config = prep.config  # batch size "auto" as the number the run would use
    loop = build_loop(prep)
    setup = time.perf_counter() - started
    n_groups, epochs = len(prep.built.groups), config.epochs
    # in full batches: a last, smaller batch costs its share
    train_batches = len(loop.train_loader.dataset) / config.batch_size
    val_batches = len(loop.val_loader.dataset) / config.batch_size
    forward, forward_first = _forward_seconds(loop, measure)
    validation = forward * val_batches + forward_first
    device = prep.runtime.device.type
    basis = f"{measure + 2} steps of {config.batch_size} pictures measured on this machine's {device}"
    if fast_path_applies(prep):
        passes = 1 + config.feature_views  # the val pictures, then each augmented view of the training pictures
        target_batches_ = len(prep.target.paths) / config.batch_size if prep.target else 0.0
        extract = 0.0 if _features_cached(loop) else (
            forward * (val_batches + train_batches * config.feature_views + target_batches_) + forward_first * passes)
        return TimeEstimate(setup + extract, (HEAD_EPOCH_S,) * epochs,
                            basis + ("; features already cached" if extract == 0 else
                                     "; features extracted once, then the head trains on them"))
    first, last = prep.plan.trainable_from(0, n_groups), prep.plan.trainable_from(epochs - 1, n_groups)
    measured = {first: _train_step_seconds(loop, config, 0, measure)}
    if last != first:
        measured[last] = _train_step_seconds(loop, config, epochs - 1, measure)
    per_epoch = []
    for epoch in range(epochs):
        index = prep.plan.trainable_from(epoch, n_groups)
        if index in measured:
            step, step_first, _ = measured[index]
        else:  # between two measured stages: the backward's cost grows with what trains
            trainable = sum(g.params for g in prep.built.groups[index:])
            (s0, f0, p0), (s1, f1, p1) = measured[first], measured[last]
            share = (trainable - p0) / max(1, p1 - p0)
            step, step_first = s0 + (s1 - s0) * share, f0 + (f1 - f0) * share
        per_epoch.append(step * train_batches + step_first + validation)
    return TimeEstimate(setup, tuple(per_epoch), basis)
