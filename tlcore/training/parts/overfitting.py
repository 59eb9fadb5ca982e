"""A warning when validation loss has risen two epochs running while training loss fell: said once, when it
starts, with what helps."""

from __future__ import annotations

from tlcore.core.events import Event
from tlcore.training.parts.base import Fit, Part
from tlcore.training.prepare import Prepared

__all__ = ["Overfitting", "overfitting_words", "make"]


class Overfitting(Part):
    """Watches the history for the start of overfitting."""

    after = ("epoch_report",)  # its warning follows the epoch's line

    def after_epoch(self, fit: Fit, epoch: int, metrics: dict) -> None:
        if warning := overfitting_words(fit.progress.history):
            fit.sink(Event("warning", warning, {"epoch": epoch}))


def _diverging(history: list[dict]) -> bool:
    if len(history) < 3:
        return False
    a, b, c = history[-3:]
    return b["val_loss"] > a["val_loss"] and c["val_loss"] > b["val_loss"] and c["train_loss"] < a["train_loss"]


def overfitting_words(history: list[dict]) -> str | None:
    """The warning, when this epoch is where overfitting starts.

    Args:
        history: the epochs so far (val_loss and train_loss each).

    Returns:
        The warning, or None (not overfitting, or already said).
    """
    if not _diverging(history) or _diverging(history[:-1]):
        return None
    return (f"overfitting: validation loss has risen for 2 epochs (since epoch {len(history) - 2}) while training "
            "loss keeps falling; the best checkpoint is kept, and more augmentation, fewer trainable layers or "
            "early stopping help")


def make(prep: Prepared) -> Part:
    """Every run watches for overfitting.

    Args:
        prep: the prepared run.

    Returns:
        The part.
    """
    return Overfitting()
