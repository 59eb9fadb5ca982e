"""Progress within an epoch ("epoch 2: step 30/44"), at most every PROGRESS_EVERY_S: counts only, nothing read
from the device, so the steps never wait for it."""

from __future__ import annotations

import time

from tlcore.core.events import Event, Progress
from tlcore.training.parts.base import Fit, Part
from tlcore.training.prepare import Prepared

__all__ = ["StepProgress", "make", "PROGRESS_EVERY_S"]

PROGRESS_EVERY_S = 1.0


class StepProgress(Part):
    """Says how far the epoch has come."""

    def __init__(self) -> None:
        self.last = 0.0
        self.steps = 0

    def before_epoch(self, fit: Fit, epoch: int) -> None:
        self.last, self.steps = time.monotonic(), len(fit.loop.train_loader)

    def after_step(self, fit: Fit, epoch: int, step: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            fit.sink(Event("progress", f"epoch {epoch + 1}: step {step + 1}/{self.steps}",
                           Progress("train", epoch=epoch, step=step + 1, steps=self.steps).to_data()))


def make(prep: Prepared) -> Part:
    """Every run reports progress.

    Args:
        prep: the prepared run.

    Returns:
        The part.
    """
    return StepProgress()
