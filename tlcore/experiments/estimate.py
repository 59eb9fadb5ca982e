"""How long a run will take, from a few real steps measured on this machine before it starts.

A run's time is mostly its steps: per epoch, the training batches (a forward and a
backward through the groups that train) and the validation batches (a forward). So a
few steps of each kind, on the run's own pictures, model, batch size and device, give
the estimate. What trains changes the backward's cost, so the first and the last stage
of the freeze plan are measured, and stages in between are interpolated by their
trainable parameters. Head-only runs on the feature fast path pay one forward over the
pictures (unless the features are cached already) and then almost nothing per epoch;
AdaBN adds a forward over the training pictures before and one over the target's after; the run's end adds a
forward over its test split (the evaluation). Every epoch also
writes the model three times (best, last and the resume state): one of each is timed, on the data folder's disk
(for a head on a 90 MB text encoder, 0.4 s an epoch: most of such a run).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from tlcore.spec.adapt_spec import uses_adabn
from tlcore.config import FreezeConfig, RunConfig
from tlcore.core.paths import data_home
from tlcore.core.step_context import StepContext
from tlcore.training.checkpoint import save_state, save_weights
from tlcore.training.features import FeatureCache, train_view_key
from tlcore.modality import of_config
from tlcore.spec.freeze import apply_plan, set_train_mode
from tlcore.inputs.inference import outputs
from tlcore.training.parts.fast_path import fast_path_applies
from tlcore.training.prepare import Prepared, prepare, replanned
from tlcore.training.steps import Loop, build_loop, target_batches, train_step
from tlcore.experiments.timing import EXTRACTED_ONCE, TimeEstimate, format_duration, timing_key

__all__ = ["TimeEstimate", "estimate_time", "estimate_times", "format_duration", "ESTIMATE_PHASES",
           "measuring_phases"]

# What measuring one run's time does, in order: each is said as it starts, so the wait has a count.
ESTIMATE_PHASES = ("building the model", "timing forward passes", "timing a checkpoint write",
                   "timing training steps")

HEAD_EPOCH_S = 0.05  # a head on cached features: a few matrix products per epoch, below what can be measured here


AGREE = 0.1  # two steps timed within 10% of each other: a third would not change the estimate


def _agree(a: float, b: float) -> bool:
    return abs(a - b) <= AGREE * max(a, b)


def _time_per_batch(make_batches, measure: int, step, warm_up: bool = True) -> tuple[float, float]:
    """(seconds per batch, extra seconds of a pass's first batch), timed after a warm-up pass of one batch: up to
    `measure` steps, or 2 when they agree within `AGREE` (a comparison's estimate is bound to 30 s).

    The warm-up pays the one-time costs (first calls into the model); the extra is what every pass over a
    loader pays again (starting its worker processes). A model that has already trained a step here needs no
    warm-up: its next stage's first calls cost about what a step costs.
    """
    if warm_up:
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
        if len(times) >= measure or (len(times) >= 2 and _agree(*times[-2:])):
            break
    if not times:  # a single batch: its own time is all there is
        return first, 0.0
    per_batch = statistics.median(times)  # the first steps of a fresh model are slow now and then
    return per_batch, max(0.0, first - per_batch)


def _train_step_seconds(loop: Loop, config: RunConfig, epoch: int, measure: int,
                        warm_up: bool = True) -> tuple[float, float, int]:
    """(seconds per training batch, first-batch extra, trainable parameters) with the groups of `epoch` (after a
    warm-up step unless the model has trained here before)."""
    prep, runtime = loop.prep, loop.prep.runtime
    apply_plan(prep.model, prep.built.groups, prep.plan, epoch)
    set_train_mode(prep.model, prep.built.groups, prep.plan, epoch)
    trainable = [p for p in prep.model.parameters() if p.requires_grad]
    loop.train_loader.start_epoch(config.seed)
    context = StepContext(targets=target_batches(loop, config.seed))  # an adaptation's target batches cost their share

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.to(runtime.device), y.to(runtime.device)
        loss, _ = train_step(prep.model, x, y, loop.optimizer, loop.scheduler, loop.objective, runtime, trainable,
                             config.optimizer.grad_clip, context=context)
        float(loss)  # wait for the device: the step is done when its loss is

    return *_time_per_batch(lambda: loop.train_loader, measure, step, warm_up), sum(p.numel() for p in trainable)


def _forward_seconds(loop: Loop, measure: int) -> tuple[float, float]:
    """Seconds per batch of a forward in eval mode, loading included: validation, or feature extraction.

    Timed on the training items in their fixed order, where every batch is full."""
    loop.train_loader.in_manifest_order()
    return _time_per_batch(lambda: outputs(loop.prep.model, loop.train_loader, loop.prep.runtime), measure, lambda logits, y: float(logits.sum()))


def _checkpoint_seconds(loop: Loop) -> float:
    """One epoch's writes: the best and the last weights, and the resume state, each timed once here."""
    home = data_home()
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".estimate-", dir=home) as folder:
        started = time.perf_counter()
        save_weights(loop.prep.model, Path(folder) / "weights.safetensors", 0)
        weights = time.perf_counter() - started
        started = time.perf_counter()
        save_state(folder, loop.prep.model, loop.optimizer, loop.scheduler, 0, {})
        state = time.perf_counter() - started
    return 2 * weights + state


def _features_cached(loop: Loop) -> bool:
    prep, config = loop.prep, loop.prep.config
    hashes = prep.modality.feature_keys(prep, "train") + prep.modality.feature_keys(prep, "val")
    hashes += prep.target.sha256 if prep.target else []
    augment = prep.modality.augment_key(config)
    keys = [{"split": "eval"}] + [train_view_key(augment, config.seed + v, prep.runtime.num_workers)
                                  for v in range(config.feature_views)]
    stored: dict = {}
    for key in keys:
        stored.update(FeatureCache(prep.built, key).load())
    return all(h in stored for h in hashes)


def _no_phase(index: int) -> None:
    return None


def _preparation_key(config: RunConfig) -> str:
    """Equal for settings that can be timed on one built model: they differ only in what trains when (the freeze
    settings and the epochs) and in settings that cost nothing. Batch size "auto" is searched with the plan's widest
    stage, so such settings are not shared."""
    if config.batch_size == "auto":
        return timing_key(config)
    return timing_key(replace(config, freeze=FreezeConfig(strategy="full"), epochs=1))


@dataclass
class _Bench:
    """One built model and what was measured on it, shared by the settings timed on it (`_preparation_key`).

    Attributes:
        prep: the first setting's prepared run.
        setup: seconds to build it (the worker's first import of the libraries aside).
        forward: (seconds per forward batch, a pass's first-batch extra).
        saving: one epoch's checkpoint writes, in seconds.
        steps: training steps timed, by (first trainable group, BatchNorm statistics updated in frozen groups).
        weights: the model as built: each setting starts from it (timed steps change the weights and BatchNorm
            statistics, which the feature cache's key reads: a head-only setting timed after `full` was told its
            cached features were not there).
    """

    prep: Prepared
    setup: float
    forward: tuple[float, float]
    saving: float
    steps: dict[tuple[int, bool], tuple[float, float, int]] = field(default_factory=dict)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)


def _built_and_timed(config: RunConfig, measure: int, on_phase: Callable[[int], None]) -> _Bench:
    """The first setting of a model, data and loading: built, its forward pass and checkpoint writes timed."""
    on_phase(0)
    of_config(config).warm_up()  # the libraries' first import is the worker's once, not each run's
    started = time.perf_counter()
    prep = prepare(config)
    loop = build_loop(prep)
    setup = time.perf_counter() - started
    weights = {name: value.detach().clone() for name, value in prep.model.state_dict().items()}
    on_phase(1)
    forward = _forward_seconds(loop, measure)
    on_phase(2)
    return _Bench(prep, setup, forward, _checkpoint_seconds(loop), weights=weights)


def estimate_time(config: RunConfig, *, measure: int = 3, on_phase: Callable[[int], None] = _no_phase,
                  shared: dict[str, _Bench] | None = None) -> TimeEstimate:
    """Build the run's model and time `measure` steps of each kind (after a warm-up step); nothing is saved.

    Takes a few seconds to a minute: one model build plus up to `measure + 2` batches of each kind timed.

    Args:
        config: the run.
        measure: training and forward steps timed of each kind.
        on_phase: called with the index in `ESTIMATE_PHASES` of each phase as it starts, in order: all four for a
            model built here, only the last ("timing training steps") for one `shared` already holds.
        shared: models built and timed by earlier calls, reused by settings that differ only in what trains when
            (kept in it for the next call; None: nothing shared).

    Returns:
        The estimate.

    Raises:
        TransferLabError: for the same problems a run would meet at its start.
    """
    shared = {} if shared is None else shared
    key = _preparation_key(config)
    if key not in shared:
        shared[key] = _built_and_timed(config, measure, on_phase)
    bench = shared[key]
    prep = replanned(bench.prep, config)
    prep.model.load_state_dict(bench.weights)  # as built, whatever the settings timed before changed
    loop = build_loop(prep)
    config = prep.config  # batch size "auto" as the number the run would use
    setup, (forward, forward_first), saving = bench.setup, bench.forward, bench.saving
    n_groups, epochs = len(prep.built.groups), config.epochs
    # in full batches: a last, smaller batch costs its share
    train_batches = len(loop.train_loader.dataset) / config.batch_size
    val_batches = len(loop.val_loader.dataset) / config.batch_size
    validation = forward * val_batches + forward_first
    # after the last epoch, the run is evaluated on its test split: one more forward pass (with its start-up)
    evaluation = forward * len(prep.manifest.files("test")) / config.batch_size + forward_first
    device = prep.runtime.device.type
    basis = (f"up to {measure + 2} steps of {config.batch_size} {prep.modality.items_word} measured on this "
             f"machine's {device}")
    target_batches_ = len(prep.target.paths) / config.batch_size if prep.target else 0.0
    if uses_adabn(config.adapt.method):  # a forward over the source training pictures before, the target's after
        setup += forward * (train_batches + target_batches_) + 2 * forward_first
        basis += "; AdaBN's two passes counted"
    on_phase(3)  # on the fast path: only whether the features are cached
    if fast_path_applies(prep):
        # the val items, then each augmented view of the training items (unaugmented ones: one view)
        views = config.feature_views if prep.modality.augment_key(config) else 1
        passes = 1 + views
        extract = 0.0 if _features_cached(loop) else (
            forward * (val_batches + train_batches * views + target_batches_) + forward_first * passes)
        return TimeEstimate(setup + extract, (HEAD_EPOCH_S + saving,) * epochs,
                            basis + ("; features already cached" if extract == 0 else f"; {EXTRACTED_ONCE}"),
                            evaluation, extract)
    first, last = prep.plan.trainable_from(0, n_groups), prep.plan.trainable_from(epochs - 1, n_groups)
    for index, epoch in ((first, 0), (last, epochs - 1)):
        if (index, config.freeze.train_bn) not in bench.steps:
            bench.steps[index, config.freeze.train_bn] = _train_step_seconds(loop, config, epoch, measure,
                                                                             warm_up=not bench.steps)
            prep.model.zero_grad(set_to_none=True)  # the gradients are not kept while other settings are timed
    measured = {index: bench.steps[index, config.freeze.train_bn] for index in (first, last)}
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
        per_epoch.append(step * train_batches + step_first + validation + saving)
    return TimeEstimate(setup, tuple(per_epoch), basis, evaluation)


def _longest_by_step_cost(configs: list[RunConfig]) -> dict[str, RunConfig]:
    """Per distinct step cost (`timing_key`, in the configs' order), the config with the most epochs."""
    longest: dict[str, RunConfig] = {}
    for config in configs:
        key = timing_key(config)
        if key not in longest or config.epochs > longest[key].epochs:
            longest[key] = config
    return longest


def _phases(longest: dict[str, RunConfig]) -> list[tuple[int, int]]:
    """(which measured setting, index in `ESTIMATE_PHASES`) of each phase, in the order they are said."""
    built: set[str] = set()
    phases = []
    for which, config in enumerate(longest.values()):
        key = _preparation_key(config)
        phases += [(which, p) for p in (range(len(ESTIMATE_PHASES)) if key not in built else (3,))]
        built.add(key)
    return phases


def measuring_phases(configs: list[RunConfig]) -> int:
    """How many phases `estimate_times` will say for these configs (the count its progress goes to).

    Args:
        configs: the runs to be estimated.

    Returns:
        Four phases per model built, one per other setting measured on it.
    """
    return len(_phases(_longest_by_step_cost(configs)))


def estimate_times(configs: list[RunConfig], *, measure: int = 3,
                   on_each: Callable[[int, TimeEstimate], None] | None = None,
                   on_phase: Callable[[str, int, int], None] | None = None) -> list[TimeEstimate]:
    """Estimates of several runs, measuring once per distinct step cost (`timing.timing_key`): runs that differ
    only in learning rate, schedule, seed or epochs share one measurement, taken on the one with the most epochs.
    Settings that differ only in what trains when (a comparison's strategies) share one built model, its forward
    pass and checkpoint writes, and each stage's training steps.

    Args:
        configs: the runs, e.g. a comparison's settings.
        measure: steps timed of each kind (see `estimate_time`).
        on_each: called with (index, estimate) for each config, in order, as soon as it is known.
        on_phase: called as each phase of the measuring starts with (words, phases done, phases in all), e.g.
            ("setting 2 of 3: timing training steps", 5, 8): the measurements' phases counted together.

    Returns:
        One estimate per config, in their order.

    Raises:
        TransferLabError: for the same problems a run would meet at its start.
    """
    longest = _longest_by_step_cost(configs)
    phases = _phases(longest)
    shared: dict[str, _Bench] = {}
    measured: dict[str, TimeEstimate] = {}
    estimates = []
    for index, config in enumerate(configs):
        key = timing_key(config)
        if key not in measured:
            which = len(measured)
            of = f"setting {which + 1} of {len(longest)}: " if len(longest) > 1 else ""

            def say(phase: int) -> None:
                if on_phase is not None:
                    on_phase(of + ESTIMATE_PHASES[phase], phases.index((which, phase)), len(phases))
            measured[key] = estimate_time(longest[key], measure=measure, on_phase=say, shared=shared)
            later = {_preparation_key(c) for k, c in longest.items() if k not in measured}
            for unused in set(shared) - later:  # a model no later setting is timed on: its memory back
                del shared[unused]
        estimates.append(measured[key].for_epochs(config.epochs))
        if on_each:
            on_each(index, estimates[-1])
    return estimates
