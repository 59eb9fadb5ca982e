"""The protocol between the training loop and its parts: the named moments, and what a part may see there.

The loop (tlcore.training.train) walks epochs and steps; everything else a run does (resume and checkpoints, the
feature-cache fast path, torch.compile, torchrun, AdaBN, the adaptation objective, cancelling, progress,
early stopping) is a `Part` whose methods the loop calls at these moments, in the order of `tlcore.training.parts.PARTS`:

    before_fit(fit)                      once, after the loop is built
    step_path(fit) -> StepPath | None    what the steps run on; the first part that answers wins
    wrap_step(fit, step) -> step         wrap the optimizer step (compile's fallback, torchrun's shares)
    before_epoch(fit, epoch)             cancel, freeze stage, the epoch's target batches (into fit.context)
    before_step(fit, epoch, step)        cancel, the share of the run done (into fit.context)
    after_step(fit, epoch, step)         progress events
    epoch_totals(fit, totals) -> totals  the epoch's loss, correct and seen counts (torchrun sums ranks')
    after_validate(fit, epoch, metrics)  more of the epoch's metrics, before the best epoch is chosen by one
    after_epoch(fit, epoch, metrics)     checkpoints, the epoch event, warnings, early stopping
    after_fit(fit)                       once, after the last epoch
    on_exception(fit, error)             when the run stops on an exception (a cancel included), then it goes on

A part declares its place rather than relying on a comment: `provides` names what it makes ready for the parts
after it ("start_epoch", "best_weights"...), `requires` what it needs from a part before it, and `after` what it
must follow when that part is there. `check_order` checks them when the run's parts are chosen, so a wrong order is
an error before any training. A part keeps its own state and saves it itself (`state_dict`, `load_state_dict`: the
checkpoint collects them by the part's `name`); it never replaces the `Loop`'s objects or writes into them: what
a step must be told besides its batch goes in the run's typed `StepContext` (`fit.context`), which the loop
gives every step. A cancel is a signal:
a part sets `fit.stop`, and the loop stops. A new feature is a new module with a `make(prep) -> Part | None` and
one line in `PARTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from tlcore.config import RunConfig
from tlcore.errors import TransferLabError
from tlcore.core.events import Sink
from tlcore.training.prepare import Prepared
from tlcore.core.runtime import Runtime
from tlcore.core.step_context import StepContext
from tlcore.training.steps import Loop, train_step

__all__ = ["Part", "Fit", "StepPath", "Progress", "Step", "PartOrderError", "check_order", "StepContext"]

Step = Callable[..., "tuple[torch.Tensor, torch.Tensor] | None"]  # (x, y, share=None) -> (loss, logits) or None


@dataclass
class StepPath:
    """What the optimizer steps run on: a model, its runtime, the epoch's batches and the validation pass.

    Attributes:
        name: "pictures" (the whole model on loaded pictures) or "features" (the head on cached features).
        model: the module each step calls.
        runtime: its device and precision.
        batches: (epoch, order) -> the epoch's (x, y) training batches.
        validate: () -> (validation loss, validation accuracy).
        target_batches: epoch seed -> endless unlabeled target batches, or None without a target.
    """

    name: str
    model: nn.Module
    runtime: Runtime
    batches: Callable[[int, list[int]], Iterable[tuple[torch.Tensor, torch.Tensor]]]
    validate: Callable[[], tuple[float, float]]
    target_batches: Callable[[int], Iterator[torch.Tensor] | None]


@dataclass
class Progress:
    """What the loop has done so far: the part of a checkpoint that is not weights.

    Attributes:
        history: one metrics dict per finished epoch; best, best_epoch: the best value of the early-stopping
        metric and its epoch (-1: none yet); stale: epochs since it improved; start_epoch: the first epoch to run.
    """

    history: list[dict] = field(default_factory=list)
    best: float | None = None
    best_epoch: int = -1
    stale: int = 0
    start_epoch: int = 0

    def record(self, metrics: dict, rule) -> bool:
        """Add an epoch's metrics.

        Args:
            metrics: the epoch's metrics (holding the rule's metric and "epoch").
            rule: the early-stopping rule, which says what improves.

        Returns:
            True when this epoch is the new best.
        """
        self.history.append(metrics)
        value = metrics[rule.metric]
        if rule.improves(value, self.best):
            self.best, self.best_epoch, self.stale = value, metrics["epoch"], 0
            return True
        self.stale += 1
        return False

    def state(self) -> dict:
        """The JSON-serialisable part of the resume unit."""
        return {"history": self.history, "best": self.best, "best_epoch": self.best_epoch, "stale": self.stale}


@dataclass
class Fit:
    """One run as the parts see it: the built loop, where it writes, who listens, and how far it has come.

    Attributes:
        loop: the run's objects (never swapped by a part).
        run_dir: the run's folder.
        sink: receives every event.
        should_stop: True cancels the run.
        resume: continue after the last complete epoch.
        writer: this process writes files (rank 0 under torchrun, else always).
        progress: history, best epoch, and the epoch to start from (the checkpoints part restores it).
        path: what the steps run on, chosen after `before_fit`.
        trainable: the parameters that train in the current epoch.
        improved: the last epoch was the new best.
        stopped_early: early stopping ended the run.
        stop: why the run should stop now (a part's cancel signal; the loop raises `Cancelled` with it).
        parts: the run's parts, in calling order (the checkpoint saves their states).
        context: what each step is told besides its batch: the loop sets its epoch and step, parts the rest.
    """

    loop: Loop
    run_dir: Path
    sink: Sink
    should_stop: Callable[[], bool]
    resume: bool = False
    writer: bool = True
    progress: Progress = field(default_factory=Progress)
    path: StepPath | None = None
    trainable: list[nn.Parameter] = field(default_factory=list)
    improved: bool = False
    stopped_early: bool = False
    stop: str | None = None
    parts: list["Part"] = field(default_factory=list)
    context: StepContext = field(default_factory=StepContext)

    @property
    def prep(self) -> Prepared:
        """The prepared run."""
        return self.loop.prep

    @property
    def config(self) -> RunConfig:
        """The run's config (batch size resolved)."""
        return self.loop.prep.config

    def step_on(self, model: nn.Module) -> Step:
        """The optimizer step on `model` (the path's model, or a compiled twin of it).

        Args:
            model: the module each step calls.

        Returns:
            step(x, y, share=None) -> (loss, logits), training the parameters of the current epoch.
        """
        loop = self.loop

        def step(x: torch.Tensor, y: torch.Tensor, share: float | None = None):
            return train_step(model, x, y, loop.optimizer, loop.scheduler, loop.objective, self.path.runtime,
                              self.trainable, self.config.optimizer.grad_clip, share, self.context)
        return step


class PartOrderError(TransferLabError):
    """The run's parts are in an order their declarations do not allow (a bug in `PARTS`, found before training)."""


class Part:
    """A feature of training, called by the loop at named moments (see the module's docstring). Every moment
    does nothing by default, so a part defines only the moments it needs.

    Attributes:
        provides: what this part makes ready for the parts after it.
        requires: what it needs a part before it to provide (that part must be in the run).
        after: what it must come after when a part of the run provides it.
    """

    provides: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The part's name, as its saved state is keyed."""
        return type(self).__name__.lower()

    def state_dict(self) -> dict:
        """What this part must carry over a resume ({}: nothing); saved with the checkpoint."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Take back what `state_dict` gave, when a run resumes.

        Args:
            state: the saved state ({} when the checkpoint holds none for this part).
        """

    def on_exception(self, fit: Fit, error: BaseException) -> None:
        """The run is stopping on an exception (a cancel, a diverged loss, a bug): undo what must not outlive it.

        Args:
            fit: the run being trained.
            error: the exception, raised again after every part was told.
        """

    def before_fit(self, fit: Fit) -> None:
        """Once, after the loop is built and before the first epoch.

        Args:
            fit: the run being trained (its config, model, loop and progress).
        """

    def step_path(self, fit: Fit) -> StepPath | None:
        """What the steps run on, or None to leave it to a later part (the last one is the pictures path).

        Args:
            fit: the run being trained (its config, model, loop and progress).
        """
        return None

    def wrap_step(self, fit: Fit, step: Step) -> Step:
        """The optimizer step, wrapped or as it is.

        Args:
            fit: the run being trained (its config, model, loop and progress).
            step: the step as the parts before this one left it.
        """
        return step

    def before_epoch(self, fit: Fit, epoch: int) -> None:
        """Before an epoch's first step.

        Args:
            fit: the run being trained (its config, model, loop and progress).
            epoch: 0-based.
        """

    def before_step(self, fit: Fit, epoch: int, step: int) -> None:
        """Before each optimizer step.

        Args:
            fit: the run being trained (its config, model, loop and progress).
            epoch: 0-based; step: 0-based within the epoch.
        """

    def after_step(self, fit: Fit, epoch: int, step: int) -> None:
        """After each optimizer step.

        Args:
            fit: the run being trained (its config, model, loop and progress).
            epoch: 0-based; step: 0-based within the epoch.
        """

    def epoch_totals(self, fit: Fit, totals: tuple[float, float, float]) -> tuple[float, float, float]:
        """The epoch's (loss sum, correct, seen) counts, as this part makes them (torchrun sums them over ranks).

        Args:
            fit: the run being trained (its config, model, loop and progress).
            totals: the counts as the parts before this one left them.
        """
        return totals

    def after_validate(self, fit: Fit, epoch: int, metrics: dict) -> None:
        """After the epoch is validated, before it is recorded: a part may add metrics (the early-stopping rule's
        metric among them), in place.

        Args:
            fit: the run being trained (its config, model, loop and progress).
            epoch: 0-based; metrics: the epoch's metrics so far, to add to.
        """

    def after_epoch(self, fit: Fit, epoch: int, metrics: dict) -> None:
        """After an epoch is validated and recorded in `fit.progress`.

        Args:
            fit: the run being trained (its config, model, loop and progress).
            epoch: 0-based; metrics: the epoch's metrics by name (val_acc, val_loss, train_loss...).
        """

    def after_fit(self, fit: Fit) -> None:
        """Once, after the last epoch (or early stopping).

        Args:
            fit: the run being trained (its config, model, loop and progress).
        """


def check_order(parts: list[Part]) -> None:
    """Each part's declarations hold in this order: what it requires is provided by a part before it, and what it
    must come after is not provided by a part after it.

    Args:
        parts: the run's parts, in calling order.

    Raises:
        PartOrderError: naming the part, what it needs, and where that is (or that no part provides it).
    """
    for index, part in enumerate(parts):
        before = {name: p for p in parts[:index] for name in p.provides}
        later = {name: p for p in parts[index + 1:] for name in p.provides}
        for needed in part.requires:
            if needed not in before:
                where = f"{later[needed].name} provides it after it" if needed in later else "no part provides it"
                raise PartOrderError(f"the part {part.name} requires {needed!r}, and {where}",
                                     f"put the part that provides {needed!r} before {part.name} in tlcore.training.parts.PARTS")
        for first in part.after:
            if first in later:
                raise PartOrderError(f"the part {part.name} must come after {later[first].name} ({first!r})",
                                     f"move {part.name} after {later[first].name} in tlcore.training.parts.PARTS")
