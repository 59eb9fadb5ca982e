"""Cancelling: asked before each epoch and about every half second within one. Under torchrun every rank asks
at the same steps and rank 0's answer holds for all, so all ranks stop at the same step."""

from __future__ import annotations

import time

from tlcore.core.collectives import all_agree, rank_world
from tlcore.training.parts.base import Fit, Part
from tlcore.training.prepare import Prepared

__all__ = ["Cancel", "make", "STOP_CHECK_EVERY_S", "STOP_CHECK_EVERY_STEPS"]

STOP_CHECK_EVERY_S = 0.5
STOP_CHECK_EVERY_STEPS = 8  # with torchrun: a collective look at the cancel flag, at the same steps on every rank


class Cancel(Part):
    """Signals the loop to stop (`fit.stop`) when the run's `should_stop` says so; the loop raises `Cancelled`."""

    provides = ("cancel_check",)

    def __init__(self, collective: bool) -> None:
        self.collective = collective
        self.last_check = 0.0

    def before_epoch(self, fit: Fit, epoch: int) -> None:
        if all_agree(fit.should_stop()):
            fit.stop = f"cancelled before epoch {epoch + 1}"
        self.last_check = time.monotonic()

    def before_step(self, fit: Fit, epoch: int, step: int) -> None:
        if self.collective:
            if step % STOP_CHECK_EVERY_STEPS == 0 and all_agree(fit.should_stop()):
                fit.stop = f"cancelled during epoch {epoch + 1}"
            return
        now = time.monotonic()
        if now - self.last_check >= STOP_CHECK_EVERY_S:
            self.last_check = now
            if fit.should_stop():
                fit.stop = f"cancelled during epoch {epoch + 1}"


def make(prep: Prepared) -> Part:
    """Every run can be cancelled.

    Args:
        prep: the prepared run.

    Returns:
        The part (collective with several ranks).
    """
    return Cancel(collective=rank_world()[1] > 1)
