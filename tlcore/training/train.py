"""The training loop: a run config in, events out, checkpoints on disk.

It knows nothing of SQLite or Streamlit: progress leaves as `Event`s through a sink (the run store, a
progress bar, a test), and cancellation comes in through a `should_stop` callable. Each epoch reseeds from
(seed, epoch), so a resumed run repeats exactly what an uninterrupted one would have done.

The loop itself only walks epochs and steps; every feature (resume and checkpoints, the fast path, compile,
torchrun, AdaBN, adaptation, scoring the labelled target pictures, cancel, progress, early stopping) is a part it calls at named moments
(tlcore.training.parts). The objects a run trains with are in tlcore.training.steps, preparing a run in tlcore.training.prepare.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from tlcore.results.artifacts import BEST, CONFIG, LAST, SPLIT
from tlcore.core.collectives import is_writer
from tlcore.errors import TransferLabError
from tlcore.core.events import Cancelled, Event, Sink, cancellable, ignore
from tlcore.core.files import atomic_write, clean_partial_writes
from tlcore.training.parts import Fit, Part, StepPath, parts_for
from tlcore.training.prepare import AUTO_BATCH, Prepared, prepare, say_last_phase
from tlcore.core.runtime import Runtime
from tlcore.training.steps import (Loop, build_loop, epoch_seed_of, evaluate_loss, make_loader, make_optimizer, target_batches,
                          train_step)

__all__ = ["train", "TrainResult", "Event", "Cancelled", "Prepared", "Loop", "prepare", "build_loop", "train_step",
           "evaluate_loss", "make_optimizer", "make_loader", "target_batches", "epoch_seed_of", "AUTO_BATCH", "BEST",
           "LAST"]


@dataclass
class TrainResult:
    """How a run ended.

    Attributes:
        epochs_done: epochs in the history (those of earlier sessions of a resumed run included).
        best_epoch: the best epoch under the early-stopping rule (0-based; -1 when none).
        best_metric: its value (NaN when none).
        history: one metrics dict per epoch.
        stopped_early: early stopping ended the run.
    """

    epochs_done: int
    best_epoch: int
    best_metric: float
    history: list[dict]
    stopped_early: bool


def _never() -> bool:
    return False



def train(config, run_dir: str | Path, sink: Sink = ignore, should_stop: Callable[[], bool] = _never,
          resume: bool = False) -> TrainResult:
    """Train to the end, to early stopping, or to a cancel; the run folder holds config, split and checkpoints.

    Args:
        config: the run (`RunConfig`), as the UI builds it or `RunConfig.load` reads it.
        run_dir: the run's folder; created if needed. It receives config.json, split.json, the checkpoints
            (best/last weights and the resume file, each written whole or not at all) and history.json.
        sink: receives every `Event` (log, stage, progress, epoch, warning, done) as it happens.
        should_stop: asked between epochs and about every half second within one; True cancels.
        resume: continue after the last complete epoch in `run_dir` (a damaged checkpoint restarts from epoch 1).

    Returns:
        A `TrainResult` (epochs done, best epoch and metric, history, whether it stopped early).

    Raises:
        Cancelled: when stopped.
        TransferLabError: for a problem the user can fix (data, model, plan, divergence).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    writer = is_writer()  # with torchrun, only rank 0 writes files
    if writer:
        for leftover in clean_partial_writes(run_dir):
            sink(Event("log", f"removed {leftover.name}, left by a write that was interrupted"))
    starting = cancellable(sink, should_stop)  # before epoch 1: cancelled at any event of the start-up
    prep = prepare(config, run_dir, starting)
    if writer:  # the config as it ran: batch size "auto" as the number it became
        atomic_write(run_dir / CONFIG, lambda tmp: tmp.write_text(prep.config.to_json()))
        prep.manifest.save(run_dir / SPLIT)
    say_last_phase(prep, starting)
    prep.inputs = prep.modality.choose_inputs(prep, lambda kind, message: starting(Event(kind, message)))
    loop = build_loop(prep)
    kind = prep.modality.items_word
    sink(Event("log", f"{prep.built.label} on {prep.runtime.describe()}; {len(loop.train_loader.dataset)} train / "
                      f"{len(loop.val_loader.dataset)} val {kind}; split {prep.manifest.id}; weights: "
                      f"{prep.built.weights.description}; {_inputs_words(prep)}", {"split_id": prep.manifest.id, "speed_unit": prep.modality.speed_unit}))
    return fit(Fit(loop, run_dir, sink, should_stop, resume=resume, writer=writer), parts_for(prep))


def fit(run: Fit, parts: list[Part]) -> TrainResult:
    """The story of a run: its parts set it up, then each epoch trains, validates and is recorded.

    Args:
        run: the built loop and where it reports.
        parts: the run's parts, in calling order (`tlcore.training.parts.parts_for`).

    Returns:
        The `TrainResult`.

    Raises:
        Cancelled: a part saw the cancel.
        TransferLabError: the loss became NaN.
    """
    run.parts = parts
    try:
        return _fit(run, parts)
    except BaseException as error:  # every part hears it (a cancel, a diverged loss, a bug), then it goes on
        for part in parts:
            try:
                part.on_exception(run, error)
            except Exception:  # noqa: BLE001 - a part's cleanup must not hide the run's own error
                pass
        raise


def _fit(run: Fit, parts: list[Part]) -> TrainResult:
    for part in parts:
        part.before_fit(run)
    run.path = next((path for part in parts if (path := part.step_path(run))), None) or pictures_path(run.loop)
    step = run.step_on(run.path.model)
    for part in parts:
        step = part.wrap_step(run, step)
    rule = run.config.early_stopping
    for epoch in range(run.progress.start_epoch, run.config.epochs):
        for part in parts:
            part.before_epoch(run, epoch)
        if run.stop:  # a part's cancel signal
            raise Cancelled(run.stop)
        started = time.perf_counter()
        metrics = _train_epoch(run, parts, step, epoch)
        metrics.update(_validate(run), epoch_seconds=time.perf_counter() - started,
                       peak_memory_mb=_peak_memory_mb(run.prep.runtime))
        for part in parts:
            part.after_validate(run, epoch, metrics)
        run.improved = run.progress.record(metrics, rule)
        for part in parts:
            part.after_epoch(run, epoch, metrics)
        if run.stopped_early:
            break
    for part in parts:
        part.after_fit(run)
    progress = run.progress
    best = progress.best if progress.best is not None else math.nan
    run.sink(Event("done", f"finished: best epoch {progress.best_epoch + 1} ({rule.metric} {best:.4f})",
                   {"best_epoch": progress.best_epoch, "best_metric": best}))
    return TrainResult(len(progress.history), progress.best_epoch, best, progress.history, run.stopped_early)


def pictures_path(loop: Loop) -> StepPath:
    """The steps on the whole model and loaded pictures: the path unless a part offers another.

    Args:
        loop: the run's loop.

    Returns:
        The `StepPath`.
    """
    prep = loop.prep
    return StepPath("pictures", prep.model, prep.runtime, lambda epoch, order: iter(loop.train_loader),
                    lambda: evaluate_loss(prep.model, loop.val_loader, prep.runtime, loop.eval_criterion),
                    lambda epoch_seed: target_batches(loop, epoch_seed))


def _train_epoch(run: Fit, parts: list[Part], step, epoch: int) -> dict:
    """One pass over the training pictures (or their cached features); returns the epoch's training metrics."""
    runtime = run.prep.runtime
    epoch_seed = epoch_seed_of(run.config, epoch)
    torch.manual_seed(epoch_seed)
    order = run.loop.train_loader.start_epoch(epoch_seed)
    run.trainable = [p for p in run.prep.model.parameters() if p.requires_grad]
    loss_sum = torch.zeros((), device=runtime.device)
    correct = torch.zeros((), device=runtime.device, dtype=torch.long)
    seen = 0
    started = time.monotonic()
    for index, (x, y) in enumerate(run.path.batches(epoch, order)):
        run.context.epoch, run.context.step = epoch, index
        for part in parts:
            part.before_step(run, epoch, index)
        if run.stop:
            raise Cancelled(run.stop)
        x, y = x.to(runtime.device, non_blocking=True), y.to(runtime.device, non_blocking=True)
        out = step(x, y)
        if out is not None:  # None: a batch that counts for nothing (torchrun's padding)
            loss, logits = out
            loss_sum += loss * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
        for part in parts:
            part.after_step(run, epoch, index)
    if math.isnan(float(loss_sum)):
        raise TransferLabError(f"training diverged in epoch {epoch + 1} (loss is NaN)",
                               "lower the learning rate (try lr-find) or turn on gradient clipping")
    seconds = time.monotonic() - started
    totals = (float(loss_sum), float(correct), float(seen))
    for part in parts:
        totals = part.epoch_totals(run, totals)
    loss_total, correct_total, seen_total = totals
    return {"epoch": epoch, "train_loss": loss_total / seen_total, "train_acc": correct_total / seen_total,
            "images_per_s": seen_total / seconds, "trainable_params": sum(p.numel() for p in run.trainable)}


def _validate(run: Fit) -> dict:
    val_loss, val_acc = run.path.validate()
    optimizer = run.loop.optimizer
    lr_groups = {}
    for group in optimizer.param_groups:  # one learning rate per layer group (decay and no-decay share it)
        lr_groups.setdefault(group.get("group", str(len(lr_groups))), group["lr"])
    return {"val_loss": val_loss, "val_acc": val_acc, "lr": optimizer.param_groups[-1]["lr"], "lr_groups": lr_groups}


def _inputs_words(prep: Prepared) -> str:
    return prep.modality.inputs_words(prep)


def _peak_memory_mb(runtime: Runtime) -> float:
    if runtime.device.type == "cuda":
        return torch.cuda.max_memory_allocated(runtime.device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
