"""Learning-rate schedules, stepped once per optimizer step.

cosine, step and constant are one multiplier per step applied to every group's own lr
(already scaled per layer group). onecycle is torch's `OneCycleLR` (Smith 2018): the lr
rises from peak/25 to each group's peak over the warm-up share, then anneals to
peak/250,000, while momentum (Adam's beta1) moves the other way, 0.95 -> 0.85 -> 0.95.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["lr_multiplier", "make_scheduler", "ONECYCLE_WARMUP_SHARE"]

_FLOOR = 0.01  # cosine ends at 1% of the peak, not at zero
ONECYCLE_WARMUP_SHARE = 0.3  # one-cycle's rising part when no warm-up is given (torch's pct_start default)


def lr_multiplier(name: str, total_steps: int, steps_per_epoch: int, warmup_epochs: float = 0.0,
                  step_size: int = 3, gamma: float = 0.1) -> Callable[[int], float]:
    """A function of the step index; LambdaLR multiplies each group's lr (already scaled per layer group) by it.

    Args:
        name: "cosine", "step" or "constant" (onecycle is torch's own scheduler, made by `make_scheduler`).
        total_steps: the run's training steps.
        steps_per_epoch: training steps per epoch.
        warmup_epochs: epochs of linear warm-up.
        step_size: "step": epochs between drops.
        gamma: "step": the factor of each drop.

    Returns:
        step index -> multiplier.

    Raises:
        KeyError: another name (the run config allows only these and onecycle).
    """
    total_steps = max(1, total_steps)
    warmup = int(round(warmup_epochs * steps_per_epoch))

    def warm(step: int) -> float | None:
        return _FLOOR + (1 - _FLOOR) * step / warmup if step < warmup else None

    def cosine(step: int) -> float:
        w = warm(step)
        if w is not None:
            return w
        progress = (step - warmup) / max(1, total_steps - warmup)
        return _FLOOR + (1 - _FLOOR) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def stepwise(step: int) -> float:
        w = warm(step)
        return w if w is not None else gamma ** ((step // max(1, steps_per_epoch)) // step_size)

    def constant(step: int) -> float:
        w = warm(step)
        return w if w is not None else 1.0

    return {"cosine": cosine, "step": stepwise, "constant": constant}[name]


def make_scheduler(optimizer: torch.optim.Optimizer, name: str, epochs: int, steps_per_epoch: int,
                   warmup_epochs: float = 0.0, step_size: int = 3,
                   gamma: float = 0.1) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler for a run: each group's current lr is its peak (frozen groups too, so unfreezing needs nothing).

    Args:
        optimizer: the optimizer, its groups' lr at their peaks.
        name: the schedule's name (see `lr_multiplier`).
        epochs: the run's epochs.
        steps_per_epoch: training steps per epoch.
        warmup_epochs: epochs of warm-up.
        step_size: "step": epochs between drops.
        gamma: "step": the factor of each drop.

    Returns:
        The scheduler, stepped once per training step.
    """
    total = max(1, epochs * steps_per_epoch)
    if name == "onecycle":
        share = warmup_epochs / epochs if warmup_epochs > 0 else ONECYCLE_WARMUP_SHARE
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total,
            pct_start=min(0.95, max(0.01, share)), anneal_strategy="cos", cycle_momentum=True)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_multiplier(name, total, steps_per_epoch, warmup_epochs, step_size, gamma))
