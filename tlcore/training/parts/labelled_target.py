"""The few labelled target pictures that no run trains on (`adapt.labelled`, `labelled_use` "choose"), scored
after every epoch: `labelled_loss` and `labelled_acc` in the epoch's metrics, so the early-stopping rule can keep
the epoch that does best on the target rather than on the source's validation split
(`early_stopping.metric` labelled_acc or labelled_loss).

An AdaBN run is scored as it will be used: with the BatchNorm statistics of the unlabelled target pictures
(measured for the scoring, then the source's put back), as `adapted.safetensors` holds them."""

from __future__ import annotations

from contextlib import nullcontext

from tlcore.adaptation.adapt import statistics_of
from tlcore.spec.adapt_spec import uses_adabn
from tlcore.config import LABELLED_MONITORS
from tlcore.core.events import Event
from tlcore.training.parts.base import Fit, Part
from tlcore.training.prepare import Prepared
from tlcore.training.steps import evaluate_loss, make_loader

__all__ = ["LabelledTarget", "make"]


class LabelledTarget(Part):
    """Adds the labelled target pictures' loss and accuracy to each epoch's metrics."""

    def __init__(self, prep: Prepared) -> None:
        self.loader = make_loader(prep, "labelled", training=False)
        self.target = make_loader(prep, "target", training=False) if uses_adabn(prep.config.adapt.method) else None

    def before_fit(self, fit: Fit) -> None:
        fit.sink(Event("log", f"every epoch is scored on the {len(self.loader.dataset)} labelled target pictures "
                              f"(not trained on); the best epoch is chosen by {fit.config.early_stopping.metric}"))

    def after_validate(self, fit: Fit, epoch: int, metrics: dict) -> None:
        prep = fit.prep
        device = prep.runtime.device
        statistics = statistics_of(prep.model, self.target, device) if self.target is not None else nullcontext()
        with statistics:
            loss, accuracy = evaluate_loss(prep.model, self.loader, prep.runtime, fit.loop.eval_criterion)
        metrics.update(labelled_loss=loss, labelled_acc=accuracy)


def make(prep: Prepared) -> Part | None:
    """The part, for runs whose best epoch is chosen on the labelled target pictures.

    Args:
        prep: the prepared run.

    Returns:
        The part, or None.
    """
    return LabelledTarget(prep) if prep.config.early_stopping.metric in LABELLED_MONITORS else None
