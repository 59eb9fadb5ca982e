"""Resume and checkpoints: the last complete epoch restored on resume; best and last weights, the resume unit and
the history written after each epoch (rank 0 only), each file whole or not at all (a store rebuilt mid-run gets
every finished epoch's metrics back from the history)."""

from __future__ import annotations

import json

from tlcore.results.artifacts import BEST, HISTORY, LAST, CheckpointError, weights_epoch
from tlcore.training.checkpoint import read_state, save_state, save_weights
from tlcore.core.events import Event
from tlcore.core.files import atomic_write
from tlcore.training.parts.base import Fit, Part, Progress
from tlcore.training.prepare import Prepared

__all__ = ["Checkpoints", "make"]


class Checkpoints(Part):
    """Restores a resumed run, and keeps every finished epoch on disk."""

    provides = ("start_epoch", "best_weights", "checkpoint_on_disk")

    def before_fit(self, fit: Fit) -> None:
        if fit.resume:
            fit.progress = _restore(fit)

    def after_epoch(self, fit: Fit, epoch: int, metrics: dict) -> None:
        if not fit.writer:
            return
        loop, model = fit.loop, fit.prep.model
        if fit.improved:
            save_weights(model, fit.run_dir / BEST, epoch)
        save_weights(model, fit.run_dir / LAST, epoch)
        save_state(fit.run_dir, model, loop.optimizer, loop.scheduler, epoch,  # each part saves its own state
                   {**fit.progress.state(), "parts": {p.name: s for p in fit.parts if (s := p.state_dict())}})
        _write_history(fit)

    def after_fit(self, fit: Fit) -> None:
        if fit.writer:
            _write_history(fit)


def _write_history(fit: Fit) -> None:
    history = json.dumps(fit.progress.history, indent=1)
    atomic_write(fit.run_dir / HISTORY, lambda tmp: tmp.write_text(history))


def _restore(fit: Fit) -> Progress:
    """The last complete epoch, or a fresh start (epoch 1) when the checkpoint cannot be trusted."""
    loop, run_dir, sink = fit.loop, fit.run_dir, fit.sink
    try:
        state = read_state(run_dir, loop.prep.model, loop.optimizer, loop.scheduler)
    except CheckpointError as exc:
        if (run_dir / LAST).exists() or (run_dir / BEST).exists():
            sink(Event("warning", f"cannot resume: {exc.problem}; training starts again from epoch 1, with the "
                                  "same seed, so the result is the same as an uninterrupted run"))
        return Progress()
    saved = state.get("parts") or {"adaptation": state.get("adapt", {})}  # "adapt": resume files of older versions
    for part in fit.parts:
        part.load_state_dict(saved.get(part.name, {}))
    progress = Progress(state["history"], state["best"], state["best_epoch"], state["stale"], state["epoch"] + 1)
    if progress.best_epoch >= 0 and weights_epoch(run_dir / BEST) not in (progress.best_epoch, progress.start_epoch):
        progress.best, progress.best_epoch = None, -1  # the next epoch writes a best checkpoint that exists
        sink(Event("warning", f"{BEST} is missing or damaged: the best checkpoint is chosen again from here on"))
    sink(Event("log", f"resumed after epoch {progress.start_epoch} of {loop.prep.config.epochs}",
               {"epoch": progress.start_epoch}))
    return progress


def make(prep: Prepared) -> Part:
    """Every run checkpoints.

    Args:
        prep: the prepared run.

    Returns:
        The part.
    """
    return Checkpoints()
