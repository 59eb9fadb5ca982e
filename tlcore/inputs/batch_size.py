"""`"batch_size": "auto"`: the largest power of two that fits the GPU, found by trial steps, and its learning rate.

A GPU runs fastest with the largest batch its memory holds, but what fits depends on the
model, the input size, the precision and how much of the model trains. So it is measured:
one short training step per candidate size, doubling while the step's peak memory (plus
the optimiser state it will add) stays under 90% of the device's memory.

The search stops at 1,024 and at an eighth of the training pictures (at least 8 steps an
epoch: on a small data set the largest batch that fits would hardly train).

The learning rate in a config is meant for batch `BASE_BATCH` (32, the default). A larger
batch scales it by the documented rule: linearly for SGD (Goyal et al. 2017, "Accurate,
Large Minibatch SGD") and by the square root for AdamW (Malladi et al. 2022, "On the SDEs
and Scaling Rules for Adaptive Gradient Algorithms").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from tlcore.errors import TransferLabError

__all__ = ["keeping_buffers", "BASE_BATCH", "MEMORY_SHARE", "MIN_STEPS_PER_EPOCH", "batch_limit", "largest_batch", "scaled_lr", "cuda_trial", "auto_batch_words"]

BASE_BATCH = 32
MEMORY_SHARE = 0.9
MAX_BATCH = 1024
MIN_STEPS_PER_EPOCH = 8  # a small data set gets small batches: 2 steps an epoch would hardly train
FIRST_TRY = 16


def scaled_lr(lr: float, optimizer: str, batch: int, base: int = BASE_BATCH) -> float:
    """The learning rate for `batch`, from one meant for `base`: linear for SGD, square root for AdamW.

    Args:
        lr: the learning rate meant for `base`.
        optimizer: "sgd" or "adamw".
        batch: the batch size it is for.
        base: the batch size `lr` was meant for.

    Returns:
        The scaled learning rate.
    """
    ratio = batch / base
    return lr * (ratio if optimizer == "sgd" else math.sqrt(ratio))


def batch_limit(train_pictures: int) -> int:
    """The largest batch worth trying: at least `MIN_STEPS_PER_EPOCH` steps an epoch, at most `MAX_BATCH`.

    Args:
        train_pictures: the number of training pictures.

    Returns:
        The batch size limit.
    """
    return max(1, min(MAX_BATCH, train_pictures // MIN_STEPS_PER_EPOCH))


def largest_batch(trial: Callable[[int], int], capacity: int, *, limit: int = MAX_BATCH,
                  oom: tuple[type[BaseException], ...] = (torch.cuda.OutOfMemoryError,),
                  on_try: Callable[[int, int | None], None] = lambda batch, peak: None) -> int:
    """The largest power of two up to `limit` whose `trial(batch)` (peak bytes) stays under 90% of `capacity`.

    Doubles from 16 while it fits; when 16 does not, halves down to 1. An out-of-memory error (`oom`) counts as
    not fitting; any other error is a real problem and is raised. `TransferLabError` when not even 1 fits.

    Args:
        trial: runs one step at a batch size and returns its peak bytes.
        capacity: the device's memory in bytes.
        limit: the largest batch to try.
        oom: the exception type of an out-of-memory error.
        on_try: hears (batch, peak bytes or None) for every try.

    Returns:
        The batch size.

    Raises:
        TransferLabError: not even a batch of 1 fits.
    """
    budget = MEMORY_SHARE * capacity

    def fits(batch: int) -> bool:
        try:
            peak = trial(batch)
        except oom:
            on_try(batch, None)
            return False
        on_try(batch, peak)
        return peak <= budget

    limit = max(1, limit)
    batch = min(FIRST_TRY, 1 << (limit.bit_length() - 1))
    if fits(batch):
        while batch * 2 <= limit and fits(batch * 2):
            batch *= 2
        return batch
    while batch > 1:
        batch //= 2
        if fits(batch):
            return batch
    raise TransferLabError("not even a batch of 1 picture fits in the GPU's memory with this model and input size",
                           "use a smaller model or input size, or freeze more layers")


@contextmanager
def keeping_buffers(model: nn.Module) -> Iterator[None]:
    """Trial steps run in training mode and move BatchNorm's running statistics: put them back afterwards.

    Args:
        model: the model whose buffers are restored on leaving.

    Returns:
        A context manager.
    """
    saved = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(saved[name])


def cuda_trial(model: nn.Module, input_size: tuple[int, int, int], num_classes: int, runtime) -> Callable[[int], int]:
    """A trial step on the GPU: forward and backward of a random batch; returns the peak bytes plus the optimiser
    state (AdamW keeps two values per trainable parameter) that the real run adds.

    Args:
        model: the model, on the GPU.
        input_size: its (channels, height, width).
        num_classes: the head's outputs.
        runtime: the device and precision the run uses.

    Returns:
        The trial function for `largest_batch`.
    """
    from tlcore.inputs.inference import autocast

    device = runtime.device
    state_bytes = 2 * sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)

    def trial(batch: int) -> int:
        model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            x = torch.randn(batch, *input_size, device=device)
            if runtime.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, num_classes, (batch,), device=device)
            model.train()
            with autocast(runtime):
                loss = nn.functional.cross_entropy(model(x).float(), y)
            loss.backward()
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) + state_bytes
        finally:
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()

    return trial


def auto_batch_words(batch: int, lr: float, new_lr: float, optimizer: str, tried: list[tuple[int, int | None]],
                     capacity: int) -> str:
    """The log line: what was tried, what was chosen, and the learning rate it brought.

    Args:
        batch: the chosen batch size.
        lr: the configured learning rate.
        new_lr: the learning rate scaled for `batch`.
        optimizer: the optimizer's name.
        tried: (batch, peak bytes or None for out of memory) per try.
        capacity: the device's memory in bytes.

    Returns:
        One sentence.
    """
    steps = ", ".join(f"{b}: {'out of memory' if p is None else f'{p / 2**30:.1f} GiB'}" for b, p in tried)
    rule = "linear (SGD)" if optimizer == "sgd" else "square root (AdamW)"
    return (f"batch size auto: {batch} ({steps}; limit {MEMORY_SHARE:.0%} of {capacity / 2**30:.0f} GiB); "
            f"learning rate {lr:g} scaled to {new_lr:.3g} by the {rule} rule from batch {BASE_BATCH}")
