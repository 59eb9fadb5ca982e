"""What one optimizer step is told besides its batch: where the run is, and the unlabelled target batches.

The loop owns one `StepContext` per run and fills in the epoch and step; the parts that know more (the adaptation
part: the epoch's target batches, the share of the run done) write it there, and the step's objective reads it.
No part reaches into the objective or the loop's other objects to hand it something.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["StepContext"]


@dataclass
class StepContext:
    """One step's situation.

    Attributes:
        epoch: 0-based; step: 0-based within the epoch.
        progress: the share of the run's steps done before this one, 0 to 1 (DANN's reversal weight follows it).
        targets: endless batches of unlabelled target items (tensors), or None when the run has no target.
    """

    epoch: int = 0
    step: int = 0
    progress: float = 0.0
    targets: Iterator[Any] | None = None
