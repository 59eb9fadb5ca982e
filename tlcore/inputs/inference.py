"""The one loop that runs a model over a loader without training it: validation, test evaluation and
backbone features all go through here, with the run's device, autocast and memory format."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

from tlcore.core.runtime import Runtime

__all__ = ["autocast", "outputs"]


def autocast(runtime: Runtime):
    """bf16 autocast where the runtime asks for it; a no-op context elsewhere."""
    return torch.autocast(runtime.device.type, dtype=runtime.autocast_dtype or torch.float32,
                          enabled=runtime.autocast_dtype is not None)


def outputs(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], runtime: Runtime,
            forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(output as fp32, labels) per batch, both on the device, with the model in eval mode and no autograd.

    `forward` replaces `model(x)`, e.g. to stop at the pooled features before the classifier.

    Args:
        model: the model (left in eval mode).
        batches: (inputs, labels) batches.
        runtime: the device and precision.
        forward: see above.

    Returns:
        An iterator of (outputs, labels).
    """
    model.eval()
    with torch.inference_mode(), autocast(runtime):
        for x, y in batches:
            x = x.to(runtime.device, non_blocking=True)
            if runtime.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            out = forward(model, x) if forward else model(x)
            yield out.float(), y.to(runtime.device, non_blocking=True)
