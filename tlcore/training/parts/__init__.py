"""The parts of training, in the order the loop calls them at each moment (see tlcore.training.parts.base).

A new training feature is a module here with `make(prep) -> Part | None`, and one line in `PARTS`.
"""

from __future__ import annotations

from tlcore.training.parts import (adabn, adaptation, cancel, checkpoints, early_stopping, epoch_report, fast_path,
                          freeze_stages, labelled_target, overfitting, progress, torch_compile, torchrun)
from tlcore.training.parts.base import Fit, Part, PartOrderError, Progress, StepPath, check_order
from tlcore.training.prepare import Prepared

__all__ = ["PARTS", "parts_for", "Fit", "Part", "Progress", "StepPath", "PartOrderError", "check_order"]

# The calling order; each part declares what it provides, requires and comes after, and `parts_for` checks it.
PARTS = (
    checkpoints.make,     # resume first: the parts after it see where the run starts
    adabn.make,           # the source's BatchNorm statistics, before features are computed with them
    fast_path.make,       # cached features (pictures' and texts'), and the head on them as the step path
    torch_compile.make,   # wraps the step (after the path is known)
    torchrun.make,        # wraps the step outermost: each rank's share
    cancel.make,          # before each epoch and step, first
    freeze_stages.make,   # what trains this epoch
    adaptation.make,      # the objective's target batches and progress
    labelled_target.make,  # each epoch scored on the few labelled target pictures, before the best is chosen
    progress.make,
    epoch_report.make,    # after the checkpoint is on disk
    overfitting.make,
    early_stopping.make,
)


def parts_for(prep: Prepared) -> list[Part]:
    """The parts this run uses, in calling order.

    Args:
        prep: the prepared run.

    Returns:
        One `Part` per feature that applies to the run.

    Raises:
        PartOrderError: the parts' declarations do not hold in this order (checked before any training).
    """
    parts = [part for make in PARTS if (part := make(prep)) is not None]
    check_order(parts)
    return parts
