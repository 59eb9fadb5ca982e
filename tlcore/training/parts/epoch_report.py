"""The epoch event: one line for a person ("epoch 2/5: train loss ... (best)") and the metrics for the charts."""

from __future__ import annotations

from tlcore.core.events import Event
from tlcore.training.parts.base import Fit, Part
from tlcore.training.prepare import Prepared

__all__ = ["EpochReport", "make"]


class EpochReport(Part):
    """Sends each finished epoch to the sink."""

    requires = ("checkpoint_on_disk",)  # the epoch is reported once its checkpoint is on disk
    provides = ("epoch_report",)

    def after_epoch(self, fit: Fit, epoch: int, metrics: dict) -> None:
        m = metrics
        fit.sink(Event("epoch", f"epoch {m['epoch'] + 1}/{fit.config.epochs}: train loss {m['train_loss']:.3f} acc "
                                f"{m['train_acc']:.3f}, val loss {m['val_loss']:.3f} acc {m['val_acc']:.3f}"
                                + (f", labelled target loss {m['labelled_loss']:.3f} acc {m['labelled_acc']:.3f}"
                                   if "labelled_acc" in m else "")
                                + (" (best)" if fit.improved else ""), metrics))


def make(prep: Prepared) -> Part:
    """Every run reports its epochs.

    Args:
        prep: the prepared run.

    Returns:
        The part.
    """
    return EpochReport()
