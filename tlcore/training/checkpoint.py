"""Checkpoints on disk, each file written as one unit: complete under its final name, or absent.

A kill at any moment (SIGKILL, power loss, a full disk) leaves either the previous file or
the new one, never half of one: every write goes to a hidden temporary file in the same
folder and is renamed into place. Resume reads a single file (`last_state.pt`) that holds the
weights together with the optimizer, schedule and history of the same epoch, so weights and
state can never come from different epochs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_model
from torch import nn

from tlcore.results.artifacts import STATE, CheckpointError
from tlcore.core.files import atomic_write

__all__ = ["save_weights", "save_state", "read_state"]


def save_weights(model: nn.Module, path: str | Path, epoch: int) -> Path:
    """Weights as safetensors, stamped with the epoch they come from.

    Args:
        model: the model whose state is saved.
        path: the .safetensors file (written whole or not at all).
        epoch: the epoch stamped into its metadata.

    Returns:
        The path written.
    """
    return atomic_write(path, lambda tmp: save_model(model, str(tmp), metadata={"epoch": str(epoch)}))


def save_state(run_dir: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, epoch: int, progress: dict) -> Path:
    """The resume unit: weights, optimizer, schedule and the loop's progress of one epoch, in one file.

    Args:
        run_dir: the run folder.
        model: the model.
        optimizer: its optimizer.
        scheduler: its learning-rate schedule.
        epoch: the epoch just completed.
        progress: the loop's own progress (history, best metric, patience), plain data.

    Returns:
        The file written.
    """
    state = {"epoch": epoch, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), **progress}
    return atomic_write(Path(run_dir) / STATE, lambda tmp: torch.save(state, tmp))


def read_state(run_dir: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict:
    """Load the resume unit into model, optimizer and schedule; returns the progress dict.

    Raises `CheckpointError` (and leaves the model, optimizer and schedule untouched) when the file is
    missing, damaged, from the old two-file layout, or from another model.

    Args:
        run_dir: the run folder.
        model: the model to load into.
        optimizer: its optimizer.
        scheduler: its learning-rate schedule.

    Returns:
        The progress dict `save_state` wrote.
    """
    path = Path(run_dir) / STATE
    if not path.is_file():
        raise CheckpointError(f"no checkpoint in {path.parent}", "the run starts from its first epoch")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, bad pickle opcode, unsupported type: all "damaged"
        raise CheckpointError(f"{path.name} is damaged ({type(exc).__name__})", "the run starts again") from None
    needed = {"epoch", "model", "optimizer", "scheduler"}
    if not isinstance(state, dict) or not needed <= set(state):
        raise CheckpointError(f"{path.name} is incomplete or from an older version", "the run starts again")
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    opt_saved, sched_saved = optimizer.state_dict(), scheduler.state_dict()
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        model.load_state_dict(saved)
        optimizer.load_state_dict(opt_saved)
        scheduler.load_state_dict(sched_saved)
        raise CheckpointError(f"{path.name} does not fit this run ({str(exc).splitlines()[0][:160]})",
                              "the run starts again") from None
    return {k: v for k, v in state.items() if k not in ("model", "optimizer", "scheduler")}
