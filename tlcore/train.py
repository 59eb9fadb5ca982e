"""The training loop: a run config in, events out, checkpoints on disk.

It knows nothing of SQLite or Streamlit: progress leaves as `Event`s through a sink
(the run store, a progress bar, a test), and cancellation comes in through a
`should_stop` callable checked between steps. Each epoch reseeds from (seed, epoch),
so a resumed run repeats exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import json
import math
import os
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from tlcore.adapt import (NEEDS_TARGET, Objective, TargetSet, adabn, check_method_fits, make_objective, scan_target,
                          uses_adabn)
from tlcore.artifacts import ADAPTED, BEST, CONFIG, HISTORY, LAST, SPLIT, CheckpointError, load_weights, weights_epoch
from tlcore.augment import eval_pipeline, resize_target, train_pipeline
from tlcore.checkpoint import read_state, save_state, save_weights
from tlcore.config import RunConfig, resolve_freeze_plan
from tlcore.data import SplitManifest, load_manifest
from tlcore.ddp import all_agree, is_writer, rank_world, sum_across, sync_gradients
from tlcore.errors import TransferLabError
from tlcore.features import FeatureSet, HeadOnFeatures, cached_feature_set, fast_path_fits, uses_fast_path
from tlcore.files import atomic_write, clean_partial_writes
from tlcore.batch_size import (BASE_BATCH, auto_batch_words, batch_limit, cuda_trial, keeping_buffers, largest_batch,
                               scaled_lr)
from tlcore.freeze import FreezePlan, apply_plan, optimizer_param_groups, set_train_mode
from tlcore.inference import autocast, outputs
from tlcore.input_path import InputPath, choose_input
from tlcore.loader import DecodedDataset, EpochLoader, ImageListDataset
from tlcore.models import BuiltModel, build_model
from tlcore.runtime import Runtime, select_runtime
from tlcore.schedules import make_scheduler

__all__ = ["Event", "Cancelled", "Prepared", "Loop", "TrainResult", "prepare", "build_loop", "train", "train_step",
           "evaluate_loss", "make_optimizer", "make_loader", "target_batches", "fast_path_applies", "epoch_seed_of", "BEST", "LAST"]

AUTO_BATCH = "auto_batch.json"  # the batch size "auto" found, so a resumed run keeps it
EXTRACT_BATCH_CUDA = 256  # feature extraction on a GPU: no gradients, so far larger batches than training
COMPILE_BACKEND = os.environ.get("TRANSFERLAB_COMPILE_BACKEND", "inductor")
PROGRESS_EVERY_S = 2.0
STOP_CHECK_EVERY_S = 0.5
STOP_CHECK_EVERY_STEPS = 8  # with torchrun: a collective look at the cancel flag, at the same steps on every rank


@dataclass(frozen=True)
class Event:
    kind: str  # log, stage, progress, epoch, warning, checkpoint, done
    message: str
    data: dict = field(default_factory=dict)


class Cancelled(Exception):
    """Raised between steps when `should_stop` says so; the last complete epoch stays on disk."""


def _never() -> bool:
    return False


@dataclass
class Prepared:
    config: RunConfig
    manifest: SplitManifest
    built: BuiltModel
    plan: FreezePlan
    runtime: Runtime
    target: TargetSet | None = None  # unlabeled pictures of the domain to adapt to
    inputs: InputPath = field(default_factory=InputPath)  # how pictures reach the model (tlcore.input_path)

    @property
    def model(self) -> nn.Module:
        return self.built.model

    @property
    def head_only(self) -> bool:
        n = len(self.built.groups)
        return all(self.plan.trainable_from(e, n) == n - 1 for e in range(self.config.epochs))


def prepare(config: RunConfig, run_dir: Path | None = None, sink: Callable[[Event], None] = lambda e: None) -> Prepared:
    """Everything a run needs, built and checked before the first step (so errors come early and clearly).

    `"batch_size": "auto"` is resolved here (read back from `run_dir` when the run found it before), so
    `prep.config` always holds a number.
    Raises `TransferLabError` when the data, the split, the model, its weights or the freeze plan cannot be used.
    """
    runtime = select_runtime(config.device, config.precision, config.num_workers)
    manifest = load_manifest(config.data)
    for split in ("train", "val"):
        if not manifest.files(split):
            raise TransferLabError(f"the split has no {split} images", "use larger val/test shares or more images")
    torch.manual_seed(config.seed)
    built = build_model(config.model, len(manifest.classes), input_size=config.input_size, seed=config.seed)
    plan = resolve_freeze_plan(config.freeze, len(built.groups))
    prep = Prepared(config, manifest, built, plan, runtime)
    check_method_fits(config.adapt, built.model, prep.head_only, built.arch)
    if config.adapt.method in NEEDS_TARGET:
        prep.target = scan_target(config.adapt.target, config.adapt.max_target)
        _warn_if_the_target_is_the_data(prep, sink)
    if config.batch_size == "auto":
        prep.config = _auto_batch(prep, run_dir, sink)
    return prep


def _warn_if_the_target_is_the_data(prep: Prepared, sink: Callable[[Event], None]) -> None:
    """Target pictures that are the labelled data set's own (by content): the adaptation then sees the validation
    and test pictures it is judged on, and says nothing about another domain. A warning, not a refusal."""
    target = set(prep.target.sha256)
    shared = {split: sum(h in target for h in prep.manifest.hashes(split)) for split in ("train", "val", "test")}
    if any(shared.values()):
        sink(Event("warning", f"{sum(shared.values())} of the {len(target)} target pictures are pictures of the "
                              f"labelled data set ({shared['val']} validation, {shared['test']} test): adaptation "
                              "then learns from the pictures it is tested on. Give a folder of the other domain's "
                              "pictures as the target"))


def _auto_batch(prep: Prepared, run_dir: Path | None, sink: Callable[[Event], None]) -> RunConfig:
    """The config with batch size "auto" made a number (and the learning rate scaled to it)."""
    config, runtime = prep.config, prep.runtime
    found = run_dir / AUTO_BATCH if run_dir else None
    if found and found.exists():
        chosen = json.loads(found.read_text())
        sink(Event("log", f"batch size auto: {chosen['batch_size']}, as found when this run started"))
        return replace(config, batch_size=chosen["batch_size"], optimizer=replace(config.optimizer, lr=chosen["lr"]))
    if runtime.device.type != "cuda":
        batch, lr = BASE_BATCH, config.optimizer.lr
        sink(Event("log", f"batch size auto: {batch} (the search measures GPU memory; on the "
                          f"{runtime.device.type.upper()} the default batch is used)"))
    else:
        model = prep.model.to(runtime.device)
        if runtime.channels_last:
            model.to(memory_format=torch.channels_last)
        n = len(prep.built.groups)
        widest = min(range(config.epochs), key=lambda e: prep.plan.trainable_from(e, n))  # most of the model trains
        apply_plan(model, prep.built.groups, prep.plan, widest)
        tried: list[tuple[int, int | None]] = []
        capacity = torch.cuda.get_device_properties(runtime.device).total_memory
        trial = cuda_trial(model, prep.built.preprocessing.input_size, len(prep.manifest.classes), runtime)
        with keeping_buffers(model):
            batch = largest_batch(trial, capacity, limit=batch_limit(len(prep.manifest.files("train"))),
                                  on_try=lambda b, peak: tried.append((b, peak)))
        lr = scaled_lr(config.optimizer.lr, config.optimizer.name, batch)
        sink(Event("log", auto_batch_words(batch, config.optimizer.lr, lr, config.optimizer.name, tried, capacity)))
    if found and is_writer():
        atomic_write(found, lambda tmp: tmp.write_text(json.dumps({"batch_size": batch, "lr": lr})))
    return replace(config, batch_size=batch, optimizer=replace(config.optimizer, lr=lr))


def make_loader(prep: Prepared, split: str, training: bool, generator: torch.Generator | None = None,
                batch_size: int | None = None) -> EpochLoader:
    """Training loaders augment and follow the order set each epoch; the others go in manifest order.

    `split` "target" is the adaptation target's pictures (labels all 0, never read). With the decoded-image
    cache the pictures come from it; with device augmentation the loader gives uint8 batches that the device
    augments (tlcore.input_path)."""
    p, config = prep.built.preprocessing, prep.config
    items = prep.target.items() if split == "target" else prep.manifest.files(split)
    decoded = prep.inputs.decoded(split) if split != "target" else None
    on_device = prep.inputs.on_device(p, prep.runtime, training, config.seed) if decoded else None
    if on_device is not None:
        dataset = DecodedDataset(items, decoded)
    else:
        pipeline = train_pipeline(config.augment, p, seed=config.seed) if training else eval_pipeline(p)
        dataset = ImageListDataset(items, pipeline, min_side=resize_target(p.input_size, p.crop_pct), decoded=decoded)
    rank, world = rank_world() if training and split == "train" else (0, 1)
    return EpochLoader(dataset, batch_size=batch_size or config.batch_size, num_workers=prep.runtime.num_workers,
                       pin_memory=prep.runtime.pin_memory, generator=generator, rank=rank, world=world,
                       on_device=on_device, device=prep.runtime.device)


def make_optimizer(model: nn.Module, groups, plan: FreezePlan, config: RunConfig, runtime: Runtime) -> torch.optim.Optimizer:
    """Built once, with every layer group (frozen ones too), so unfreezing never rebuilds it."""
    o = config.optimizer
    param_groups = optimizer_param_groups(model, groups, plan, o.lr, o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(param_groups, lr=o.lr, fused=runtime.device.type == "cuda")
    return torch.optim.SGD(param_groups, lr=o.lr, momentum=o.momentum, nesterov=True)


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, objective: Objective, runtime: Runtime,
               trainable_params: list[nn.Parameter], grad_clip: float,
               share: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step; returns (loss, logits of the labelled batch) detached, still on the device (no host
    sync here). `objective` is the step's loss: cross-entropy, plus the adaptation method's term.

    `share` (torchrun): this rank's share of the global batch; its loss is weighted by it and the gradients are
    summed across ranks before clipping, which makes the step the single-process step on the global batch."""
    if runtime.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(runtime):
        loss, logits = objective(model, x, y)
    optimizer.zero_grad(set_to_none=True)
    (loss if share is None else loss * share).backward()
    if share is not None:
        sync_gradients(trainable_params)
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(trainable_params, grad_clip)
    optimizer.step()
    scheduler.step()
    return loss.detach(), logits.detach()


def evaluate_loss(model: nn.Module, loader: Iterable, runtime: Runtime, criterion: nn.Module) -> tuple[float, float]:
    """Mean loss and accuracy over a loader, accumulated on the device and read once."""
    loss_sum = torch.zeros((), device=runtime.device)
    correct = torch.zeros((), device=runtime.device, dtype=torch.long)
    seen = 0
    for logits, y in outputs(model, loader, runtime):
        loss_sum += criterion(logits, y) * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    return float(loss_sum) / max(1, seen), float(correct) / max(1, seen)


def _peak_memory_mb(runtime: Runtime) -> float:
    if runtime.device.type == "cuda":
        return torch.cuda.max_memory_allocated(runtime.device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@dataclass
class TrainResult:
    epochs_done: int
    best_epoch: int
    best_metric: float
    history: list[dict]
    stopped_early: bool


@dataclass
class _Progress:
    """What the loop has done so far: the part of a checkpoint that is not weights."""

    history: list[dict] = field(default_factory=list)
    best: float | None = None
    best_epoch: int = -1
    stale: int = 0
    start_epoch: int = 0

    def record(self, metrics: dict, rule) -> bool:
        """Add an epoch's metrics; True when it is the new best under the early-stopping rule."""
        self.history.append(metrics)
        value = metrics[rule.metric]
        if rule.improves(value, self.best):
            self.best, self.best_epoch, self.stale = value, metrics["epoch"], 0
            return True
        self.stale += 1
        return False

    def state(self) -> dict:
        return {"history": self.history, "best": self.best, "best_epoch": self.best_epoch, "stale": self.stale}


@dataclass
class Loop:
    """The objects one run trains with, built once; `step_model` is the head alone on the fast path."""

    prep: Prepared
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: EpochLoader
    val_loader: EpochLoader
    criterion: nn.Module
    eval_criterion: nn.Module
    objective: Objective
    target_loader: EpochLoader | None = None
    features: FeatureSet | None = None
    step_model: nn.Module | None = None
    step_runtime: Runtime | None = None
    eager_model: nn.Module | None = None  # with "compile": the model to fall back to if compiling fails


def build_loop(prep: Prepared) -> Loop:
    config, runtime = prep.config, prep.runtime
    if config.distributed.sync_bn and rank_world()[1] > 1:
        if runtime.device.type != "cuda":
            raise TransferLabError("sync_bn needs CUDA GPUs (PyTorch's SyncBatchNorm runs on CUDA only)",
                                   "turn distributed.sync_bn off on CPUs")
        prep.built.model = nn.SyncBatchNorm.convert_sync_batchnorm(prep.built.model)  # same parameter names
    model = prep.model
    model.to(runtime.device)
    if runtime.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, prep.built.groups, prep.plan, config, runtime)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.optimizer.label_smoothing)
    objective = make_objective(config.adapt, criterion, model, set(prep.built.groups[-1].param_names),
                               getattr(model, "num_features", 0), prep.head_only)
    objective.modules.to(runtime.device)
    if len(objective.modules):  # DANN's domain classifier trains at the head's rate, from the first step
        optimizer.add_param_group({"params": list(objective.modules.parameters()), "lr": config.optimizer.lr,
                                   "lr_scale": 1.0, "weight_decay": config.optimizer.weight_decay})
    train_loader = make_loader(prep, "train", training=True, generator=torch.Generator())
    val_loader = make_loader(prep, "val", training=False)
    target_loader = make_loader(prep, "target", training=True, generator=torch.Generator()) if prep.target else None
    s = config.schedule
    scheduler = make_scheduler(optimizer, s.name, config.epochs, len(train_loader), s.warmup_epochs, s.step_size, s.gamma)
    return Loop(prep, optimizer, scheduler, train_loader, val_loader, criterion, nn.CrossEntropyLoss(), objective,
                target_loader, step_model=model, step_runtime=runtime)


def _restore(run_dir: Path, loop: Loop, sink: Callable[[Event], None]) -> _Progress:
    """The last complete epoch, or a fresh start (epoch 1) when the checkpoint cannot be trusted."""
    try:
        state = read_state(run_dir, loop.prep.model, loop.optimizer, loop.scheduler)
    except CheckpointError as exc:
        if (run_dir / LAST).exists() or (run_dir / BEST).exists():
            sink(Event("warning", f"cannot resume: {exc.problem}; training starts again from epoch 1, with the "
                                  "same seed, so the result is the same as an uninterrupted run"))
        return _Progress()
    loop.objective.load_state_dict(state.get("adapt", {}))
    progress = _Progress(state["history"], state["best"], state["best_epoch"], state["stale"], state["epoch"] + 1)
    if progress.best_epoch >= 0 and weights_epoch(run_dir / BEST) not in (progress.best_epoch, progress.start_epoch):
        progress.best, progress.best_epoch = None, -1  # the next epoch writes a best checkpoint that exists
        sink(Event("warning", f"{BEST} is missing or damaged: the best checkpoint is chosen again from here on"))
    sink(Event("log", f"resumed after epoch {progress.start_epoch} of {loop.prep.config.epochs}",
               {"epoch": progress.start_epoch}))
    return progress


def fast_path_applies(prep: Prepared) -> bool:
    """The run trains on cached features: asked for, only the head trains, and the head on features computes
    what the whole model does."""
    config = prep.config
    return (config.feature_cache and rank_world()[1] == 1  # with torchrun every rank trains the model itself
            and uses_fast_path(prep.plan, len(prep.built.groups), config.epochs)
            and fast_path_fits(prep.model, prep.built.preprocessing.input_size))


def _feature_progress(sink: Callable[[Event], None]) -> Callable[[int, int], None]:
    """Progress of the fast path's feature extraction ("extracting features 120/350"), at most every
    PROGRESS_EVERY_S and at its end: on a CPU it is most of a short run's first minute."""
    last = [-PROGRESS_EVERY_S]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or done == total:
            last[0] = now
            sink(Event("progress", f"extracting features {done}/{total}",
                       {"phase": "features", "done": done, "total": total}))
    return report


def _use_fast_path(loop: Loop, sink: Callable[[Event], None]) -> None:
    """Head-only runs train on cached backbone features: same batches and result, far less work per epoch."""
    prep, config = loop.prep, loop.prep.config
    if not fast_path_applies(prep):
        return
    train_loader, val_loader, augment = loop.train_loader, loop.val_loader, config.augment.to_dict()
    if prep.runtime.device.type == "cuda":  # no gradients: large batches; bf16 and channels_last from the runtime
        train_loader = make_loader(prep, "train", training=True, generator=torch.Generator(),
                                   batch_size=EXTRACT_BATCH_CUDA)
        val_loader = make_loader(prep, "val", training=False, batch_size=EXTRACT_BATCH_CUDA)
        augment = {**augment, "extract_batch": EXTRACT_BATCH_CUDA}
    if prep.inputs.steps is not None:  # the device's augmentation draws other views than albumentations
        augment = {**augment, "on": "device"}
    loop.features = cached_feature_set(
        prep.model, prep.built, prep.manifest, train_loader, val_loader, prep.runtime, seed=config.seed,
        views=config.feature_views, augment=augment, on_note=lambda text: sink(Event("warning", text)),
        target=(prep.target, make_loader(prep, "target", training=False)) if loop.target_loader else None,
        on_progress=_feature_progress(sink))
    sink(Event("log", f"feature extraction fast path: backbone features of {len(loop.features.val)} val pictures and "
                      f"{config.feature_views} augmented view(s) of {len(loop.features.train_labels)} training pictures "
                      f"{_cache_words(loop.features, config.feature_views)}; the head trains on them"))
    loop.step_model, loop.step_runtime = HeadOnFeatures(prep.model), replace(prep.runtime, channels_last=False)


def _use_compile(loop: Loop, sink: Callable[[Event], None]) -> None:
    """`"compile": true`: the training step's model through torch.compile; the eager model stays at hand."""
    if not loop.prep.config.compile:
        return
    if loop.features is not None:
        sink(Event("log", "compile: skipped, only the head trains, on cached features (nothing worth compiling)"))
        return
    loop.eager_model, loop.step_model = loop.step_model, torch.compile(loop.step_model, backend=COMPILE_BACKEND)
    sink(Event("log", f"compile: the model is compiled with torch.compile ({COMPILE_BACKEND}) at its first step"))


def _step(loop: Loop, x: torch.Tensor, y: torch.Tensor, trainable_params: list[nn.Parameter], share: float | None,
          sink: Callable[[Event], None]) -> tuple[torch.Tensor, torch.Tensor]:
    """`train_step`; with a compiled model, a compile failure switches the run to the eager model, once, said."""
    args = (loop.optimizer, loop.scheduler, loop.objective, loop.step_runtime, trainable_params,
            loop.prep.config.optimizer.grad_clip, share)
    if loop.eager_model is None:
        return train_step(loop.step_model, x, y, *args)
    try:
        return train_step(loop.step_model, x, y, *args)
    except Exception as exc:  # noqa: BLE001 - dynamo and the backends raise many types; eager decides if it is real
        detail = " ".join(str(exc).split())[:200]
        sink(Event("warning", f"torch.compile failed ({type(exc).__name__}: {detail}); the run goes on without "
                              "compiling (same results, eager speed)"))
        loop.step_model, loop.eager_model = loop.eager_model, None
        return train_step(loop.step_model, x, y, *args)


def _cache_words(features: FeatureSet, views: int) -> str:
    if features.from_cache:
        return "read from the cache"
    if features.views_from_cache:  # e.g. the next seed of a comparison: it shares all but one view
        return (f"({features.views_from_cache} of {views} training view(s) read from the cache, shared with an "
                "earlier run or seed; the rest computed once and cached)")
    return "computed once and cached"


def _set_stage(loop: Loop, epoch: int, previous: list[bool] | None, sink: Callable[[Event], None]) -> list[bool]:
    """Apply the freeze plan for this epoch; say so when what trains changes."""
    model, groups, plan = loop.prep.model, loop.prep.built.groups, loop.prep.plan
    mask = apply_plan(model, groups, plan, epoch)
    if mask != previous:
        trainable = sum(g.params for g, m in zip(groups, mask) if m)
        first = mask.index(True)
        which = "only the new head trains" if first == len(groups) - 1 else f"groups {groups[first].name} to head train"
        sink(Event("stage", f"epoch {epoch + 1}: {which} ({trainable:,} parameters)",
                   {"epoch": epoch, "trainable_from": first, "trainable_params": trainable}))
    set_train_mode(model, groups, plan, epoch)
    return mask


def epoch_seed_of(config: RunConfig, epoch: int) -> int:
    """The seed of one epoch's batch order and augmentation: the run's seed moves it, the split never."""
    return config.seed * 1000 + epoch


def _run_epoch(loop: Loop, epoch: int, should_stop: Callable[[], bool], sink: Callable[[Event], None]) -> dict:
    """One pass over the training pictures (or their cached features); returns the epoch's training metrics."""
    config, runtime = loop.prep.config, loop.prep.runtime
    epoch_seed = epoch_seed_of(config, epoch)
    torch.manual_seed(epoch_seed)
    order = loop.train_loader.start_epoch(epoch_seed)
    trainable_params = [p for p in loop.prep.model.parameters() if p.requires_grad]
    loss_sum = torch.zeros((), device=runtime.device)
    correct = torch.zeros((), device=runtime.device, dtype=torch.long)
    seen, steps = 0, len(loop.train_loader)
    started = last_check = last_progress = time.monotonic()
    if loop.features is not None:
        loop.step_model.train()
        batches = loop.features.epoch_batches(epoch, order, config.batch_size)
    else:
        batches = iter(loop.train_loader)
    loop.objective.targets = target_batches(loop, epoch_seed)
    shares = loop.train_loader.step_weights() if loop.features is None else None  # torchrun: this rank's parts
    for step, (x, y) in enumerate(batches):
        loop.objective.progress = (epoch * steps + step) / max(1, config.epochs * steps)
        now = time.monotonic()
        if shares is not None:  # every rank asks at the same steps, and rank 0's answer holds for all
            if step % STOP_CHECK_EVERY_STEPS == 0 and all_agree(should_stop()):
                raise Cancelled(f"cancelled during epoch {epoch + 1}")
        elif now - last_check >= STOP_CHECK_EVERY_S:
            last_check = now
            if should_stop():
                raise Cancelled(f"cancelled during epoch {epoch + 1}")
        x, y = x.to(runtime.device, non_blocking=True), y.to(runtime.device, non_blocking=True)
        share = None if shares is None else shares[step]
        loss, logits = _step(loop, x, y, trainable_params, share, sink)
        if share == 0:  # a padding batch: this rank had no picture in the last global batch
            continue
        loss_sum += loss * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if now - last_progress >= PROGRESS_EVERY_S:  # counts only: no read from the device
            last_progress = now
            sink(Event("progress", f"epoch {epoch + 1}: step {step + 1}/{steps}",
                       {"phase": "train", "epoch": epoch, "step": step + 1, "steps": steps}))
    if math.isnan(float(loss_sum)):
        raise TransferLabError(f"training diverged in epoch {epoch + 1} (loss is NaN)",
                               "lower the learning rate (try lr-find) or turn on gradient clipping")
    seconds = time.monotonic() - started
    loss_total, correct_total, seen = sum_across(float(loss_sum), float(correct), float(seen))  # all ranks' pictures
    return {"epoch": epoch, "train_loss": loss_total / seen, "train_acc": correct_total / seen,
            "images_per_s": seen / seconds, "trainable_params": sum(p.numel() for p in trainable_params)}


def target_batches(loop: Loop, epoch_seed: int):
    """Unlabeled target batches for the epoch, endless, in an order fixed by the epoch's seed (for resume)."""
    if loop.target_loader is None:
        return None
    if loop.features is not None:  # the fast path: the target's cached features
        features = loop.features.target
        generator = torch.Generator().manual_seed(epoch_seed)
        while True:
            yield from features[torch.randperm(len(features), generator=generator)].split(loop.prep.config.batch_size)
    round_ = 0
    while True:  # the target may be smaller or larger than the source: cycle through it
        loop.target_loader.start_epoch(epoch_seed * 100 + round_)
        for x, _ in loop.target_loader:
            yield x
        round_ += 1


def _validate(loop: Loop) -> dict:
    if loop.features is not None:
        batches = [(loop.features.val, loop.features.val_labels)]
        val_loss, val_acc = evaluate_loss(loop.step_model, batches, loop.step_runtime, loop.eval_criterion)
    else:
        val_loss, val_acc = evaluate_loss(loop.prep.model, loop.val_loader, loop.prep.runtime, loop.eval_criterion)
    lr_groups = {}
    for group in loop.optimizer.param_groups:  # one learning rate per layer group (decay and no-decay share it)
        lr_groups.setdefault(group.get("group", str(len(lr_groups))), group["lr"])
    return {"val_loss": val_loss, "val_acc": val_acc, "lr": loop.optimizer.param_groups[-1]["lr"], "lr_groups": lr_groups}


def _save_checkpoint(run_dir: Path, loop: Loop, epoch: int, progress: _Progress, improved: bool) -> None:
    """Best weights when improved, last weights, then the resume unit: each file written whole or not at all."""
    model = loop.prep.model
    if improved:
        save_weights(model, run_dir / BEST, epoch)
    save_weights(model, run_dir / LAST, epoch)
    save_state(run_dir, model, loop.optimizer, loop.scheduler, epoch, {**progress.state(),
                                                                         "adapt": loop.objective.state_dict()})


def _epoch_message(config: RunConfig, m: dict, improved: bool) -> str:
    return (f"epoch {m['epoch'] + 1}/{config.epochs}: train loss {m['train_loss']:.3f} acc {m['train_acc']:.3f}, "
            f"val loss {m['val_loss']:.3f} acc {m['val_acc']:.3f}" + (" (best)" if improved else ""))


def train(config: RunConfig, run_dir: str | Path, sink: Callable[[Event], None] = lambda e: None,
          should_stop: Callable[[], bool] = _never, resume: bool = False) -> TrainResult:
    """Train to the end, to early stopping, or to a cancel; the run folder holds config, split and checkpoints.

    Args:
        config: the run, as the UI builds it or `RunConfig.load` reads it.
        run_dir: the run's folder; created if needed. It receives config.json, split.json, the checkpoints
            (best/last weights and the resume file, each written whole or not at all) and history.json.
        sink: receives every `Event` (log, stage, progress, epoch, warning, done) as it happens.
        should_stop: asked between epochs and about every half second within one; True cancels.
        resume: continue after the last complete epoch in `run_dir` (a damaged checkpoint restarts from epoch 1).

    Returns a `TrainResult` (epochs done, best epoch and metric, history, whether it stopped early).
    Raises `Cancelled` when stopped, `TransferLabError` for a problem the user can fix.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    writer = is_writer()  # with torchrun, only rank 0 writes files
    if writer:
        for leftover in clean_partial_writes(run_dir):
            sink(Event("log", f"removed {leftover.name}, left by a write that was interrupted"))
    prep = prepare(config, run_dir, sink)
    config = prep.config
    if writer:  # the config as it ran: batch size "auto" as the number it became
        atomic_write(run_dir / CONFIG, lambda tmp: tmp.write_text(prep.config.to_json()))
        prep.manifest.save(run_dir / SPLIT)
    prep.inputs = choose_input(config, prep.manifest, prep.built.preprocessing, prep.runtime,
                               lambda kind, message: sink(Event(kind, message)))
    loop = build_loop(prep)
    progress = _restore(run_dir, loop, sink) if resume else _Progress()
    sink(Event("log", f"{prep.built.label} on {prep.runtime.describe()}; {len(loop.train_loader.dataset)} train / "
                      f"{len(loop.val_loader.dataset)} val images; split {prep.manifest.id}; weights: "
                      f"{prep.built.weights.description}; {prep.inputs.describe()}", {"split_id": prep.manifest.id}))
    if uses_adabn(config.adapt.method) and progress.start_epoch == 0:
        # AdaBN normalises each domain by its own statistics: the source's while training, the target's after
        layers = adabn(prep.model, make_loader(prep, "train", training=False), prep.runtime.device)
        sink(Event("log", f"AdaBN: the statistics of {layers} BatchNorm layers measured on the "
                          f"{len(loop.train_loader.dataset)} source training pictures before training"))
    _use_fast_path(loop, sink)
    _use_compile(loop, sink)
    rule, mask, stopped_early = config.early_stopping, None, False
    for epoch in range(progress.start_epoch, config.epochs):
        if all_agree(should_stop()):
            raise Cancelled(f"cancelled before epoch {epoch + 1}")
        mask = _set_stage(loop, epoch, mask, sink)
        started = time.perf_counter()
        metrics = _run_epoch(loop, epoch, should_stop, sink)
        metrics.update(_validate(loop), epoch_seconds=time.perf_counter() - started,
                       peak_memory_mb=_peak_memory_mb(prep.runtime))
        improved = progress.record(metrics, rule)
        if writer:
            _save_checkpoint(run_dir, loop, epoch, progress, improved)
        sink(Event("epoch", _epoch_message(config, metrics, improved), metrics))
        if warning := _overfitting(progress.history):
            sink(Event("warning", warning, {"epoch": epoch}))
        if rule.patience and progress.stale >= rule.patience and epoch + 1 < config.epochs:
            stopped_early = True
            sink(Event("log", f"early stopping: {rule.metric} has not improved for {progress.stale} epochs; best was "
                              f"epoch {progress.best_epoch + 1}", {"epoch": epoch}))
            break
    if uses_adabn(config.adapt.method):
        _adapted_model(run_dir, loop, sink)
    if writer:
        atomic_write(run_dir / HISTORY, lambda tmp: tmp.write_text(json.dumps(progress.history, indent=1)))
    best = progress.best if progress.best is not None else math.nan
    sink(Event("done", f"finished: best epoch {progress.best_epoch + 1} ({rule.metric} {best:.4f})",
               {"best_epoch": progress.best_epoch, "best_metric": best}))
    return TrainResult(len(progress.history), progress.best_epoch, best, progress.history, stopped_early)


def _adapted_model(run_dir: Path, loop: Loop, sink: Callable[[Event], None]) -> None:
    """AdaBN after training: the best weights with BatchNorm statistics of the target pictures, kept beside them
    as the model for the target domain (best and last keep the source's, which chose the best epoch)."""
    prep = loop.prep
    epoch = weights_epoch(run_dir / BEST)
    load_weights(prep.model, run_dir / BEST)
    layers = adabn(prep.model, make_loader(prep, "target", training=False), prep.runtime.device)
    save_weights(prep.model, run_dir / ADAPTED, epoch)
    load_weights(prep.model, run_dir / BEST)
    sink(Event("log", f"AdaBN: {ADAPTED} holds the best weights with the statistics of {layers} BatchNorm layers "
                      f"measured on {len(prep.target.paths)} target pictures"))


def _diverging(history: list[dict]) -> bool:
    if len(history) < 3:
        return False
    a, b, c = history[-3:]
    return b["val_loss"] > a["val_loss"] and c["val_loss"] > b["val_loss"] and c["train_loss"] < a["train_loss"]


def _overfitting(history: list[dict]) -> str | None:
    """Val loss up two epochs running while train loss went down: said once, when it starts."""
    if not _diverging(history) or _diverging(history[:-1]):
        return None
    return (f"overfitting: validation loss has risen for 2 epochs (since epoch {len(history) - 2}) while training "
            "loss keeps falling; the best checkpoint is kept, and more augmentation, fewer trainable layers or "
            "early stopping help")
