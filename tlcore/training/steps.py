"""The objects one run trains with: its loaders, optimizer, scheduler and loss, and one optimizer step.

`Loop` holds them, built once by `build_loop`; the training story that walks the epochs is tlcore.training.train.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from tlcore.adaptation.adapt import Objective, make_objective
from tlcore.core.collectives import rank_world, sync_gradients
from tlcore.config import RunConfig
from tlcore.errors import TransferLabError
from tlcore.spec.freeze import FreezePlan, optimizer_param_groups
from tlcore.inputs.inference import autocast, outputs
from tlcore.inputs.loader import EpochLoader
from tlcore.training.prepare import Prepared
from tlcore.core.runtime import Runtime
from tlcore.core.schedules import make_scheduler
from tlcore.core.step_context import StepContext

__all__ = ["Loop", "build_loop", "make_loader", "make_optimizer", "train_step", "evaluate_loss", "epoch_seed_of",
           "target_batches"]


def make_loader(prep: Prepared, split: str, training: bool, generator: torch.Generator | None = None,
                batch_size: int | None = None) -> EpochLoader:
    """A loader of one split's items, made by the run's modality. Training loaders augment and follow the order set
    each epoch; the others go in manifest order. For pictures: with the decoded-image cache the pictures come from
    it; with device augmentation the loader gives uint8 batches that the device augments (tlcore.inputs.input_path).

    Args:
        prep: the prepared run.
        split: "train", "val", "test", "target" (the adaptation target's pictures; labels all 0, never read) or
            "labelled" (the few labelled target pictures, `adapt.labelled`, with their classes).
        training: augment, and take this rank's share of each batch under torchrun.
        generator: the loader's random generator (training loaders).
        batch_size: overrides the config's (feature extraction uses larger ones).

    Returns:
        The `EpochLoader`.
    """
    return prep.modality.loader(prep, split, training, generator, batch_size)


def make_optimizer(model: nn.Module, groups, plan: FreezePlan, config: RunConfig, runtime: Runtime) -> torch.optim.Optimizer:
    """The run's optimizer, built once with every layer group (frozen ones too), so unfreezing never rebuilds it.

    Args:
        model: the model; groups: its layer groups; plan: the freeze plan (each group's learning-rate scale).
        config: the run (optimizer name, learning rate, weight decay, momentum); runtime: fused AdamW on CUDA.

    Returns:
        An AdamW or SGD (Nesterov) optimizer with one parameter group per layer group and decay kind.
    """
    o = config.optimizer
    param_groups = optimizer_param_groups(model, groups, plan, o.lr, o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(param_groups, lr=o.lr, fused=runtime.device.type == "cuda")
    return torch.optim.SGD(param_groups, lr=o.lr, momentum=o.momentum, nesterov=True)


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, objective: Objective, runtime: Runtime,
               trainable_params: list[nn.Parameter], grad_clip: float,
               share: float | None = None, context: StepContext | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step; returns (loss, logits of the labelled batch) detached, still on the device (no host
    sync here).

    Args:
        model: the module stepped; x, y: the batch; optimizer, scheduler: stepped once each;
        objective: the step's loss (cross-entropy, plus the adaptation method's term); runtime: precision and
        memory format; trainable_params: clipped (and summed across ranks); grad_clip: max norm (0: none);
        share: see below; context: what the objective is told besides the batch (target batches, the share of
        the run done).

    `share` (torchrun): this rank's share of the global batch; its loss is weighted by it and the gradients are
    summed across ranks before clipping, which makes the step the single-process step on the global batch.

    Returns:
        (loss, logits), detached.
    """
    if runtime.channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(runtime):
        loss, logits = objective(model, x, y, context)
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
    """Mean loss and accuracy over a loader, accumulated on the device and read once.

    Args:
        model: the model (put in eval mode by `outputs`); loader: (x, y) batches; runtime: device and precision;
        criterion: the loss.

    Returns:
        (mean loss, accuracy); (0.0, 0.0) for an empty loader.
    """
    loss_sum = torch.zeros((), device=runtime.device)
    correct = torch.zeros((), device=runtime.device, dtype=torch.long)
    seen = 0
    for logits, y in outputs(model, loader, runtime):
        loss_sum += criterion(logits, y) * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    return float(loss_sum) / max(1, seen), float(correct) / max(1, seen)


@dataclass
class Loop:
    """The objects one run trains with, built once and never swapped: parts (tlcore.training.parts) add to what a step
    runs on without changing these.

    Attributes:
        prep: the prepared run.
        optimizer, scheduler: built once with every layer group, so unfreezing never rebuilds them.
        train_loader, val_loader: the pictures, in the epoch's order (training) or the manifest's.
        criterion: the training loss (with label smoothing); eval_criterion: plain cross-entropy.
        objective: the step's loss: the criterion plus the adaptation method's term.
        target_loader: the adaptation target's unlabeled pictures, when the method uses them.
    """

    prep: Prepared
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: EpochLoader
    val_loader: EpochLoader
    criterion: nn.Module
    eval_criterion: nn.Module
    objective: Objective
    target_loader: EpochLoader | None = None


def build_loop(prep: Prepared) -> Loop:
    """The model on its device, its optimizer, scheduler, loss and loaders.

    Args:
        prep: the prepared run.

    Returns:
        The run's `Loop`.

    Raises:
        TransferLabError: `distributed.sync_bn` asked for without CUDA GPUs.
    """
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
                target_loader)


def epoch_seed_of(config: RunConfig, epoch: int) -> int:
    """The seed of one epoch's batch order and augmentation: the run's seed moves it, the split never.

    Args:
        config: the run; epoch: counted from 0.

    Returns:
        The epoch's seed.
    """
    return config.seed * 1000 + epoch


def target_batches(loop: Loop, epoch_seed: int) -> Iterator[torch.Tensor] | None:
    """Unlabeled target batches for the epoch, endless, in an order fixed by the epoch's seed (for resume).

    Args:
        loop: the run's loop; epoch_seed: the epoch's seed.

    Returns:
        An endless iterator of target picture batches, or None when the run has no target.
    """
    if loop.target_loader is None:
        return None
    return _cycle_target(loop.target_loader, epoch_seed)


def _cycle_target(loader: EpochLoader, epoch_seed: int) -> Iterator[torch.Tensor]:
    round_ = 0
    while True:  # the target may be smaller or larger than the source: cycle through it
        loader.start_epoch(epoch_seed * 100 + round_)
        for x, _ in loader:
            yield x
        round_ += 1
