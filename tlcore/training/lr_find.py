"""Learning-rate range test (Smith 2015, as in fastai): raise the lr each step, watch the loss, suggest a value."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from tlcore.config import RunConfig
from tlcore.errors import TransferLabError
from tlcore.spec.freeze import apply_plan, set_train_mode
from tlcore.inputs.inference import autocast
from tlcore.training.prepare import prepare
from tlcore.training.steps import make_loader, make_optimizer

__all__ = ["LrCurve", "lr_find"]


@dataclass(frozen=True)
class LrCurve:
    """A learning-rate range test: the learning rates tried, the smoothed losses, and the suggested rate."""
    lrs: list[float]
    losses: list[float]  # smoothed
    suggestion: float  # the steepest fall of the smoothed loss

    def to_dict(self) -> dict:
        """The curve as plain data (kept with the run and shown on the Train page)."""
        return asdict(self)


def lr_find(config: RunConfig, *, start: float = 1e-6, end: float = 1.0, steps: int = 60,
            on_step: Callable[[int, int, float, float], None] = lambda step, steps, lr, loss: None) -> LrCurve:
    """Trains a throw-away copy of the model for `steps` steps at exponentially growing learning rates.

    Uses the config's first freeze stage (what epoch 1 trains) and its optimizer; the suggestion is
    where the loss falls fastest, the usual pick for the head's learning rate. `on_step(step, steps, lr,
    smoothed loss)` follows it live (it takes minutes for a large model on a CPU).

    Args:
        config: the run config.
        start: the first learning rate.
        end: the last one.
        steps: how many steps between them.
        on_step: see above.

    Returns:
        The curve (learning rates and smoothed losses) and its suggestion.

    Raises:
        TransferLabError: for the problems a run would meet at its start.
    """
    prep = prepare(config)
    runtime = prep.runtime
    model = copy.deepcopy(prep.model).to(runtime.device)
    apply_plan(model, prep.built.groups, prep.plan, 0)
    set_train_mode(model, prep.built.groups, prep.plan, 0)
    o = config.optimizer
    optimizer = make_optimizer(model, prep.built.groups, prep.plan, config, runtime)  # the run's own (lr set below)
    criterion = nn.CrossEntropyLoss(label_smoothing=o.label_smoothing)
    factor = (end / start) ** (1 / max(1, steps - 1))
    loader = make_loader(prep, "train", training=True, generator=torch.Generator().manual_seed(config.seed))
    loader.sampler.shuffle(config.seed)  # mixed classes in every batch
    lrs, losses, smoothed, best = [], [], 0.0, math.inf
    step = 0
    while step < steps:
        for x, y in loader:
            lr = start * factor ** step
            for g in optimizer.param_groups:
                g["lr"] = lr * g["lr_scale"]
            x, y = x.to(runtime.device), y.to(runtime.device)
            with autocast(runtime):
                loss = criterion(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            smoothed = 0.8 * smoothed + 0.2 * value  # exponential average, debiased for the first steps
            debiased = smoothed / (1 - 0.8 ** (step + 1))
            lrs.append(lr)
            losses.append(debiased)
            best = min(best, debiased)
            step += 1
            on_step(step, steps, lr, debiased)
            if step >= steps or not math.isfinite(debiased) or debiased > 4 * best:
                step = steps
                break
    if len(losses) < 5:
        raise TransferLabError("the learning-rate test stopped after too few steps", "use more training images")
    lowest = int(np.argmin(losses))
    gradient = np.gradient(np.array(losses[: lowest + 1]), np.log(np.array(lrs[: lowest + 1])))
    usable = max(1, len(gradient) // 10)  # the first steps are noise
    suggestion = lrs[usable + int(np.argmin(gradient[usable:]))] if len(gradient) > usable else lrs[lowest] / 10
    return LrCurve(lrs=lrs, losses=losses, suggestion=float(suggestion))
