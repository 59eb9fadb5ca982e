"""`"compile": true`: the training step's model through torch.compile, with the eager model at hand: a compile
failure switches the run to eager, once, and says so."""

from __future__ import annotations

import os

import torch

from tlcore.core.events import Event
from tlcore.training.parts.base import Fit, Part, Step
from tlcore.training.prepare import Prepared

__all__ = ["Compile", "make", "COMPILE_BACKEND"]

COMPILE_BACKEND = os.environ.get("TRANSFERLAB_COMPILE_BACKEND", "inductor")


class Compile(Part):
    """Wraps the step so it runs the compiled model, or the eager one after a compile failure."""

    provides = ("compiled_step",)

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def wrap_step(self, fit: Fit, step: Step) -> Step:
        if fit.path.name == "features":
            fit.sink(Event("log", "compile: skipped, only the head trains, on cached features (nothing worth "
                                  "compiling)"))
            return step
        compiled = fit.step_on(torch.compile(fit.path.model, backend=self.backend))
        fit.sink(Event("log", f"compile: the model is compiled with torch.compile ({self.backend}) at its first step"))
        failed = [False]

        def compiled_or_eager(x, y, share=None):
            if failed[0]:
                return step(x, y, share)
            try:
                return compiled(x, y, share)
            except Exception as exc:  # noqa: BLE001 - dynamo and the backends raise many types; eager decides
                detail = " ".join(str(exc).split())[:200]
                fit.sink(Event("warning", f"torch.compile failed ({type(exc).__name__}: {detail}); the run goes on "
                                          "without compiling (same results, eager speed)"))
                failed[0] = True
                return step(x, y, share)
        return compiled_or_eager


def make(prep: Prepared) -> Part | None:
    """The part, for runs with `"compile": true`.

    Args:
        prep: the prepared run.

    Returns:
        The part (using the backend in effect now), or None.
    """
    return Compile(COMPILE_BACKEND) if prep.config.compile else None
