"""Learning-rate schedules as one multiplier per optimizer step (applied to every group's own lr)."""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["lr_multiplier"]

_FLOOR = 0.01  # cosine and one-cycle end at 1% of the peak, not at zero


def lr_multiplier(name: str, total_steps: int, steps_per_epoch: int, warmup_epochs: float = 0.0,
                  step_size: int = 3, gamma: float = 0.1) -> Callable[[int], float]:
    """A function of the step index; LambdaLR multiplies each group's lr (already scaled per layer group) by it."""
    total_steps = max(1, total_steps)
    warmup = int(round(warmup_epochs * steps_per_epoch))
    if name == "onecycle" and warmup == 0:
        warmup = int(0.3 * total_steps)  # the usual one-cycle shape: 30% up, then down

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

    return {"cosine": cosine, "onecycle": cosine, "step": stepwise, "constant": constant}[name]
