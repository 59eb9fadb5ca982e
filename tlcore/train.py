"""The training loop: a run config in, events out, checkpoints on disk.

It knows nothing of SQLite or Streamlit: progress leaves as `Event`s through a sink
(the run store, a progress bar, a test), and cancellation comes in through a
`should_stop` callable checked between steps. Each epoch reseeds from (seed, epoch),
so a resumed run repeats exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import json
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from tlcore.checkpoint import (
    BEST, LAST, CheckpointError, atomic_write, clean_partial_writes, read_state, save_state, save_weights, weights_epoch,
)
from tlcore.augment import eval_pipeline, resize_target, train_pipeline
from tlcore.config import RunConfig, resolve_freeze_plan
from tlcore.data import SplitManifest, default_manifest_path, make_split, scan
from tlcore.errors import TransferLabError
from tlcore.freeze import FreezePlan, apply_plan, optimizer_param_groups, set_train_mode
from tlcore.features import cached_features, uses_fast_path
from tlcore.loader import EpochOrder, ImageListDataset, seed_worker
from tlcore.models import BuiltModel, build_model
from tlcore.runtime import Runtime, select_runtime
from tlcore.schedules import make_scheduler

__all__ = ["Event", "Cancelled", "Prepared", "TrainResult", "prepare", "train", "train_step", "evaluate_loss",
           "make_optimizer", "BEST", "LAST"]

PROGRESS_EVERY_S = 2.0
STOP_CHECK_EVERY_S = 0.5


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

    @property
    def model(self) -> nn.Module:
        return self.built.model


def resolve_manifest(config: RunConfig) -> tuple[SplitManifest, Path]:
    """The config's manifest, or the split its source and seed always give (saved where every run finds it)."""
    if config.data.manifest:
        path = Path(config.data.manifest)
        manifest = SplitManifest.load(path)
    else:
        report = scan(config.data.source)
        path = default_manifest_path(report, config.data.split_seed)
        manifest = make_split(report, seed=config.data.split_seed, val=config.data.val, test=config.data.test)
        if not path.exists() or SplitManifest.load(path).id != manifest.id:
            manifest.save(path)
    return manifest, path


def load_manifest(config: RunConfig) -> SplitManifest:
    manifest, _ = resolve_manifest(config)
    missing = manifest.missing_files()
    if missing:
        raise TransferLabError(f"{len(missing)} file(s) of the split are gone (first: {missing[0]})",
                               "restore them, or scan and split the data set again")
    return manifest


def prepare(config: RunConfig) -> Prepared:
    """Everything a run needs, built and checked before the first step (so errors come early and clearly)."""
    runtime = select_runtime(config.device, config.precision, config.num_workers)
    manifest = load_manifest(config)
    for split in ("train", "val"):
        if not manifest.files(split):
            raise TransferLabError(f"the split has no {split} images", "use larger val/test shares or more images")
    torch.manual_seed(config.seed)
    built = build_model(config.model, len(manifest.classes), input_size=config.input_size, seed=config.seed)
    plan = resolve_freeze_plan(config.freeze, len(built.groups))
    return Prepared(config, manifest, built, plan, runtime)


def _loader(prep: Prepared, split: str, training: bool, generator: torch.Generator | None = None) -> DataLoader:
    """Training loaders augment and follow an `EpochOrder` set each epoch; the others go in manifest order."""
    p = prep.built.preprocessing
    pipeline = train_pipeline(prep.config.augment, p, seed=prep.config.seed) if training else eval_pipeline(p)
    dataset = ImageListDataset(prep.manifest.files(split), pipeline, min_side=resize_target(p.input_size, p.crop_pct))
    workers = prep.runtime.num_workers
    return DataLoader(dataset, batch_size=prep.config.batch_size, sampler=EpochOrder(len(dataset)), drop_last=False,
                      num_workers=workers, pin_memory=prep.runtime.pin_memory, worker_init_fn=seed_worker,
                      generator=generator, persistent_workers=False)


class _HeadOnFeatures(nn.Module):
    """The model's own classifier applied to cached pooled features, with the model's head dropout."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.classifier = model.get_classifier()
        self.drop_rate = float(getattr(model, "drop_rate", 0.0) or 0.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(nn.functional.dropout(features, self.drop_rate, self.training))


def _fast_path_fits(model: nn.Module, input_size: tuple[int, int, int]) -> bool:
    """The cached-feature head must compute exactly what the whole model does (checked once, on one input)."""
    if not all(hasattr(model, a) for a in ("forward_features", "forward_head", "get_classifier")):
        return False
    model.eval()
    device = next(model.parameters()).device
    x = torch.randn(2, *input_size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():
        whole = model(x)
        parts = model.get_classifier()(model.forward_head(model.forward_features(x), pre_logits=True))
    return whole.shape == parts.shape and torch.allclose(whole, parts, atol=1e-4, rtol=1e-4)


@dataclass
class _FeatureSet:
    views: list[torch.Tensor]  # per augmented view: features of every training picture, manifest order
    train_labels: torch.Tensor
    val: torch.Tensor
    val_labels: torch.Tensor


def _cached_feature_set(prep: Prepared, train_loader: DataLoader, val_loader: DataLoader,
                        sink: Callable[[Event], None]) -> _FeatureSet:
    config, runtime, model = prep.config, prep.runtime, prep.model
    hashes = {split: [i.sha256 for i in prep.manifest.items if i.split == split] for split in ("train", "val")}
    note = lambda text: sink(Event("warning", text))  # noqa: E731
    val, hit = cached_features(model, prep.built, val_loader, hashes["val"], {"split": "eval"}, runtime.device,
                               runtime.autocast_dtype, runtime.channels_last, note)
    views, hits = [], [hit]
    train_loader.sampler.order = list(range(len(train_loader.dataset)))  # manifest order: matches `hashes`
    for view in range(config.feature_views):
        seed = config.seed * 1000 + view
        train_loader.dataset.pipeline.set_random_seed(seed)
        if train_loader.generator is not None:
            train_loader.generator.manual_seed(seed)
        key = {"split": "train", "augment": config.augment.to_dict(), "seed": seed, "workers": runtime.num_workers}
        features, hit = cached_features(model, prep.built, train_loader, hashes["train"], key, runtime.device,
                                        runtime.autocast_dtype, runtime.channels_last, note)
        views.append(features)
        hits.append(hit)
    sink(Event("log", f"feature extraction fast path: backbone features of {len(hashes['val'])} val pictures and "
                      f"{config.feature_views} augmented view(s) of {len(hashes['train'])} training pictures "
                      f"{'read from the cache' if all(hits) else 'computed once and cached'}; the head trains on them"))
    labels = lambda loader: torch.tensor([y for _, y in loader.dataset.items])  # noqa: E731
    return _FeatureSet(views, labels(train_loader), val, labels(val_loader))


def make_optimizer(model: nn.Module, groups, plan: FreezePlan, config: RunConfig, runtime: Runtime) -> torch.optim.Optimizer:
    """Built once, with every layer group (frozen ones too), so unfreezing never rebuilds it."""
    o = config.optimizer
    param_groups = optimizer_param_groups(model, groups, plan, o.lr, o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(param_groups, lr=o.lr, fused=runtime.device.type == "cuda")
    return torch.optim.SGD(param_groups, lr=o.lr, momentum=o.momentum, nesterov=True)


def _autocast(runtime: Runtime):
    return torch.autocast(runtime.device.type, dtype=runtime.autocast_dtype or torch.float32,
                          enabled=runtime.autocast_dtype is not None)


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, criterion: nn.Module, runtime: Runtime,
               trainable_params: list[nn.Parameter], grad_clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step; returns (loss, logits) detached, still on the device (no host sync here)."""
    if runtime.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with _autocast(runtime):
        logits = model(x)
        loss = criterion(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(trainable_params, grad_clip)
    optimizer.step()
    scheduler.step()
    return loss.detach(), logits.detach()


def evaluate_loss(model: nn.Module, loader: DataLoader, runtime: Runtime, criterion: nn.Module) -> tuple[float, float]:
    """Mean loss and accuracy over a loader, accumulated on the device and read once."""
    model.eval()
    loss_sum = torch.zeros((), device=runtime.device)
    correct = torch.zeros((), device=runtime.device, dtype=torch.long)
    seen = 0
    with torch.inference_mode(), _autocast(runtime):
        for x, y in loader:
            x = x.to(runtime.device, non_blocking=True)
            y = y.to(runtime.device, non_blocking=True)
            if runtime.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = model(x)
            loss_sum += criterion(logits.float(), y) * len(y)
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


def _better(metric: str, value: float, best: float | None, min_delta: float) -> bool:
    if best is None:
        return True
    return value < best - min_delta if metric == "val_loss" else value > best + min_delta


def _restore(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: torch.optim.lr_scheduler.LRScheduler, config: RunConfig,
             sink: Callable[[Event], None]) -> dict | None:
    """The last complete epoch, or None (start from epoch 1) when the checkpoint cannot be trusted."""
    try:
        state = read_state(run_dir, model, optimizer, scheduler)
    except CheckpointError as exc:
        if (run_dir / LAST).exists() or (run_dir / BEST).exists():
            sink(Event("warning", f"cannot resume: {exc.problem}; training starts again from epoch 1, with the "
                                  "same seed, so the result is the same as an uninterrupted run"))
        return None
    if state["best_epoch"] >= 0 and weights_epoch(run_dir / BEST) not in (state["best_epoch"], state["epoch"] + 1):
        state["best"], state["best_epoch"] = None, -1  # the next epoch writes a best checkpoint that exists
        sink(Event("warning", f"{BEST} is missing or damaged: the best checkpoint is chosen again from here on"))
    sink(Event("log", f"resumed after epoch {state['epoch'] + 1} of {config.epochs}", {"epoch": state["epoch"] + 1}))
    return state


def train(config: RunConfig, run_dir: str | Path, sink: Callable[[Event], None] = lambda e: None,
          should_stop: Callable[[], bool] = _never, resume: bool = False) -> TrainResult:
    """Train to the end, to early stopping, or to a cancel; the run folder holds config, split and checkpoints."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for leftover in clean_partial_writes(run_dir):
        sink(Event("log", f"removed {leftover.name}, left by a write that was interrupted"))
    prep = prepare(config)
    model, groups, plan, runtime = prep.model, prep.built.groups, prep.plan, prep.runtime
    atomic_write(run_dir / "config.json", lambda tmp: tmp.write_text(config.to_json()))
    prep.manifest.save(run_dir / "split.json")
    model.to(runtime.device)
    if runtime.channels_last:
        model.to(memory_format=torch.channels_last)
    o, s, e = config.optimizer, config.schedule, config.early_stopping
    optimizer = make_optimizer(model, groups, plan, config, runtime)
    generator = torch.Generator()
    train_loader = _loader(prep, "train", training=True, generator=generator)
    val_loader = _loader(prep, "val", training=False)
    steps = len(train_loader)
    scheduler = make_scheduler(optimizer, s.name, config.epochs, steps, s.warmup_epochs, s.step_size, s.gamma)
    criterion = nn.CrossEntropyLoss(label_smoothing=o.label_smoothing)
    eval_criterion = nn.CrossEntropyLoss()

    history: list[dict] = []
    best: float | None = None
    best_epoch, stale, start_epoch = -1, 0, 0
    if resume:
        restored = _restore(run_dir, model, optimizer, scheduler, config, sink)
        if restored is not None:
            history, best, best_epoch, stale = restored["history"], restored["best"], restored["best_epoch"], restored["stale"]
            start_epoch = restored["epoch"] + 1
    sink(Event("log", f"{prep.built.label} on {runtime.describe()}; {len(train_loader.dataset)} train / "
                      f"{len(val_loader.dataset)} val images; split {prep.manifest.id}; weights: "
                      f"{prep.built.weights.description}", {"split_id": prep.manifest.id}))
    features: _FeatureSet | None = None
    step_model, step_runtime = model, runtime
    if config.feature_cache and uses_fast_path(plan, len(groups), config.epochs) \
            and _fast_path_fits(model, prep.built.preprocessing.input_size):
        features = _cached_feature_set(prep, train_loader, val_loader, sink)
        step_model, step_runtime = _HeadOnFeatures(model), replace(runtime, channels_last=False)

    last_check = last_progress = time.monotonic()
    previous_mask: list[bool] | None = None
    stopped_early = False
    for epoch in range(start_epoch, config.epochs):
        if should_stop():  # always asked between epochs; within one, at most every STOP_CHECK_EVERY_S
            raise Cancelled(f"cancelled before epoch {epoch + 1}")
        mask = apply_plan(model, groups, plan, epoch)
        if mask != previous_mask:
            trainable = sum(g.params for g, m in zip(groups, mask) if m)
            first = mask.index(True)
            which = "only the new head trains" if first == len(groups) - 1 else \
                f"groups {groups[first].name} to head train"
            sink(Event("stage", f"epoch {epoch + 1}: {which} ({trainable:,} parameters)", {"epoch": epoch, "trainable_from": first,
                                                                  "trainable_params": trainable}))
            previous_mask = mask
        set_train_mode(model, groups, plan, epoch)
        epoch_seed = config.seed * 1000 + epoch
        torch.manual_seed(epoch_seed)
        generator.manual_seed(epoch_seed)
        train_loader.dataset.pipeline.set_random_seed(epoch_seed)
        order = train_loader.sampler.shuffle(epoch_seed)
        trainable_params = [p for p in model.parameters() if p.requires_grad]
        loss_sum = torch.zeros((), device=runtime.device)
        correct = torch.zeros((), device=runtime.device, dtype=torch.long)
        seen = 0
        started = time.perf_counter()
        if features is not None:
            step_model.train()
            view = features.views[epoch % len(features.views)]
            batches = ((view[idx], features.train_labels[idx]) for idx in
                       torch.tensor(order).split(config.batch_size))
        else:
            batches = iter(train_loader)
        for step, (x, y) in enumerate(batches):
            now = time.monotonic()
            if now - last_check >= STOP_CHECK_EVERY_S:
                last_check = now
                if should_stop():
                    raise Cancelled(f"cancelled during epoch {epoch + 1}")
            x = x.to(runtime.device, non_blocking=True)
            y = y.to(runtime.device, non_blocking=True)
            loss, logits = train_step(step_model, x, y, optimizer, scheduler, criterion, step_runtime,
                                      trainable_params, o.grad_clip)
            loss_sum += loss * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if now - last_progress >= PROGRESS_EVERY_S:  # counts only: no read from the device
                last_progress = now
                sink(Event("progress", f"epoch {epoch + 1}: step {step + 1}/{steps}",
                           {"epoch": epoch, "step": step + 1, "steps": steps}))
        if math.isnan(float(loss_sum)):
            raise TransferLabError(f"training diverged in epoch {epoch + 1} (loss is NaN)",
                                   "lower the learning rate (try lr-find) or turn on gradient clipping")
        train_seconds = time.perf_counter() - started
        if features is not None:
            step_model.eval()
            val_loss, val_acc = evaluate_loss(step_model, [(features.val, features.val_labels)], step_runtime,
                                              eval_criterion)
        else:
            val_loss, val_acc = evaluate_loss(model, val_loader, runtime, eval_criterion)
        head_lr = optimizer.param_groups[-1]["lr"]
        metrics = {
            "epoch": epoch, "train_loss": float(loss_sum) / seen, "train_acc": float(correct) / seen,
            "val_loss": val_loss, "val_acc": val_acc, "lr": head_lr, "images_per_s": seen / train_seconds,
            "epoch_seconds": time.perf_counter() - started, "peak_memory_mb": _peak_memory_mb(runtime),
            "trainable_params": sum(p.numel() for p in trainable_params),
        }
        history.append(metrics)
        value = metrics[e.metric]
        improved = _better(e.metric, value, best, e.min_delta)
        if improved:
            best, best_epoch, stale = value, epoch, 0
            save_weights(model, run_dir / BEST, epoch)
        else:
            stale += 1
        save_weights(model, run_dir / LAST, epoch)
        save_state(run_dir, model, optimizer, scheduler, epoch,
                   {"history": history, "best": best, "best_epoch": best_epoch, "stale": stale})
        sink(Event("epoch", f"epoch {epoch + 1}/{config.epochs}: train loss {metrics['train_loss']:.3f} "
                            f"acc {metrics['train_acc']:.3f}, val loss {val_loss:.3f} acc {val_acc:.3f}"
                            + (" (best)" if improved else ""), metrics))
        warning = _overfitting(history)
        if warning:
            sink(Event("warning", warning, {"epoch": epoch}))
        if e.patience and stale >= e.patience and epoch + 1 < config.epochs:
            stopped_early = True
            sink(Event("log", f"early stopping: {e.metric} has not improved for {stale} epochs; best was epoch "
                              f"{best_epoch + 1}", {"epoch": epoch}))
            break
    result = TrainResult(epochs_done=len(history), best_epoch=best_epoch, best_metric=best if best is not None else math.nan,
                         history=history, stopped_early=stopped_early)
    atomic_write(run_dir / "history.json", lambda tmp: tmp.write_text(json.dumps(history, indent=1)))
    sink(Event("done", f"finished: best epoch {best_epoch + 1} ({e.metric} {result.best_metric:.4f})",
               {"best_epoch": best_epoch, "best_metric": result.best_metric}))
    return result


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
