"""One rank of a torchrun run: each step weighs this rank's loss by its share of the global batch (the step
then equals the single-process step on the whole batch), a padding batch counts for nothing, and the epoch's
counts are summed over the ranks. Cancelling at agreed steps is tlcore.training.parts.cancel's."""

from __future__ import annotations

from tlcore.core.collectives import rank_world, sum_across
from tlcore.training.parts.base import Fit, Part, Step
from tlcore.training.prepare import Prepared

__all__ = ["Torchrun", "make"]


class Torchrun(Part):
    """This rank's shares of the epoch's global batches, and the sums over ranks."""

    after = ("compiled_step",)  # wraps the step outermost: each rank's share of the (compiled) step

    def __init__(self) -> None:
        self.shares: list[float] = []
        self.step_index = 0

    def before_step(self, fit: Fit, epoch: int, step: int) -> None:
        if step == 0:  # the epoch's order is set: this rank's part of each of its global batches
            self.shares = fit.loop.train_loader.step_weights() or []
        self.step_index = step

    def wrap_step(self, fit: Fit, step: Step) -> Step:
        def shared(x, y, share=None):
            share = self.shares[self.step_index]
            out = step(x, y, share)
            return None if share == 0 else out  # a padding batch: this rank had no picture in the last global batch
        return shared

    def epoch_totals(self, fit: Fit, totals: tuple[float, float, float]) -> tuple[float, float, float]:
        loss, correct, seen = sum_across(*totals)  # every rank saw part of the pictures
        return loss, correct, seen


def make(prep: Prepared) -> Part | None:
    """The part, in a rank of a torchrun run that trains on pictures (several ranks never take the fast path).

    Args:
        prep: the prepared run.

    Returns:
        The part, or None with one process.
    """
    return Torchrun() if rank_world()[1] > 1 else None
