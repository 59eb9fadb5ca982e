"""Early stopping: the run ends when the rule's metric has not improved for `patience` epochs (the best
checkpoint is already kept)."""

from __future__ import annotations

from tlcore.core.events import Event
from tlcore.training.parts.base import Fit, Part
from tlcore.training.prepare import Prepared

__all__ = ["EarlyStopping", "make"]


class EarlyStopping(Part):
    """Stops the run when the metric has gone stale."""

    after = ("epoch_report",)  # the stop is said after the epoch's line

    def after_epoch(self, fit: Fit, epoch: int, metrics: dict) -> None:
        rule, progress = fit.config.early_stopping, fit.progress
        if rule.patience and progress.stale >= rule.patience and epoch + 1 < fit.config.epochs:
            fit.stopped_early = True
            fit.sink(Event("log", f"early stopping: {rule.metric} has not improved for {progress.stale} epochs; best "
                                  f"was epoch {progress.best_epoch + 1}", {"epoch": epoch}))


def make(prep: Prepared) -> Part | None:
    """The part, for runs with a patience.

    Args:
        prep: the prepared run.

    Returns:
        The part, or None.
    """
    return EarlyStopping() if prep.config.early_stopping.patience else None
