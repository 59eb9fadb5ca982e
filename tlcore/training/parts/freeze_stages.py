"""The freeze plan, epoch by epoch: which layer groups train (gradual unfreezing changes it) and which run in
eval mode, said when it changes."""

from __future__ import annotations

from tlcore.core.events import Event
from tlcore.spec.freeze import apply_plan, set_train_mode
from tlcore.training.parts.base import Fit, Part
from tlcore.training.prepare import Prepared

__all__ = ["FreezeStages", "make"]


class FreezeStages(Part):
    """Applies the plan before each epoch."""

    after = ("cancel_check",)  # a cancel is seen before the stage changes

    def __init__(self) -> None:
        self.mask: list[bool] | None = None

    def before_epoch(self, fit: Fit, epoch: int) -> None:
        model, groups, plan = fit.prep.model, fit.prep.built.groups, fit.prep.plan
        mask = apply_plan(model, groups, plan, epoch)
        if mask != self.mask:
            trainable = sum(g.params for g, m in zip(groups, mask) if m)
            first = mask.index(True)
            which = ("only the new head trains" if first == len(groups) - 1
                     else f"groups {groups[first].name} to head train")
            fit.sink(Event("stage", f"epoch {epoch + 1}: {which} ({trainable:,} parameters)",
                           {"epoch": epoch, "trainable_from": first, "trainable_params": trainable}))
        self.mask = mask
        set_train_mode(model, groups, plan, epoch)


def make(prep: Prepared) -> Part:
    """Every run follows its freeze plan.

    Args:
        prep: the prepared run.

    Returns:
        The part.
    """
    return FreezeStages()
