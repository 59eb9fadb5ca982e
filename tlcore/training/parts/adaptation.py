"""The adaptation objective's inputs, put in the step context: each epoch's unlabeled target batches (in an order
fixed by the epoch's seed, so a resumed run repeats them) and the run's progress, which schedules DANN's reversal
weight; and the objective's own state (DANN's domain classifier) saved with the checkpoint."""

from __future__ import annotations

from tlcore.training.parts.base import Fit, Part
from tlcore.training.prepare import Prepared
from tlcore.training.steps import epoch_seed_of

__all__ = ["Adaptation", "make"]


class Adaptation(Part):
    """Feeds the objective its target batches and its place in the run."""

    requires = ("start_epoch",)  # a resumed run's objective state is back before the first step
    after = ("cancel_check",)

    def __init__(self) -> None:
        self.steps = 1
        self.objective = None
        self.restored: dict = {}

    def before_fit(self, fit: Fit) -> None:
        self.objective = fit.loop.objective
        if self.restored:  # DANN's domain classifier and its optimizer, as the resumed run left them
            self.objective.load_state_dict(self.restored)

    def state_dict(self) -> dict:
        return self.objective.state_dict() if self.objective is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self.restored = state

    def before_epoch(self, fit: Fit, epoch: int) -> None:
        fit.context.targets = fit.path.target_batches(epoch_seed_of(fit.config, epoch))
        self.steps = max(1, len(fit.loop.train_loader))

    def before_step(self, fit: Fit, epoch: int, step: int) -> None:
        fit.context.progress = (epoch * self.steps + step) / max(1, fit.config.epochs * self.steps)


def make(prep: Prepared) -> Part:
    """Every run has an objective (plain cross-entropy without adaptation, which ignores both).

    Args:
        prep: the prepared run.

    Returns:
        The part.
    """
    return Adaptation()
