"""AdaBN: each domain normalised by its own BatchNorm statistics, the source's while training (measured before
the first epoch) and the target's after (kept as `adapted.safetensors` beside the best weights)."""

from __future__ import annotations

from tlcore.adaptation.adapt import adabn
from tlcore.spec.adapt_spec import uses_adabn
from tlcore.results.artifacts import ADAPTED, BEST, load_weights, weights_epoch
from tlcore.training.checkpoint import save_weights
from tlcore.core.events import Event
from tlcore.training.parts.base import Fit, Part
from tlcore.training.prepare import Prepared
from tlcore.training.steps import make_loader

__all__ = ["AdaBN", "make"]


class AdaBN(Part):
    """Source statistics before training; the target's statistics on the best weights after it."""

    requires = ("start_epoch", "best_weights")  # a resumed run keeps its statistics; after the fit, the best weights
    provides = ("source_statistics",)

    def before_fit(self, fit: Fit) -> None:
        if fit.progress.start_epoch:  # resumed: the statistics were measured when the run began
            return
        prep = fit.prep
        layers = adabn(prep.model, make_loader(prep, "train", training=False), prep.runtime.device)
        fit.sink(Event("log", f"AdaBN: the statistics of {layers} BatchNorm layers measured on the "
                              f"{len(fit.loop.train_loader.dataset)} source training pictures before training"))

    def after_fit(self, fit: Fit) -> None:
        prep, run_dir = fit.prep, fit.run_dir
        epoch = weights_epoch(run_dir / BEST)
        load_weights(prep.model, run_dir / BEST)
        layers = adabn(prep.model, make_loader(prep, "target", training=False), prep.runtime.device)
        save_weights(prep.model, run_dir / ADAPTED, epoch)
        load_weights(prep.model, run_dir / BEST)
        fit.sink(Event("log", f"AdaBN: {ADAPTED} holds the best weights with the statistics of {layers} BatchNorm "
                              f"layers measured on {len(prep.target.paths)} target pictures"))


def make(prep: Prepared) -> Part | None:
    """The part, for runs whose adaptation method uses AdaBN.

    Args:
        prep: the prepared run.

    Returns:
        The part, or None.
    """
    return AdaBN() if uses_adabn(prep.config.adapt.method) else None
