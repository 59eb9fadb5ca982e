"""Where and how a run computes: device, precision, loader workers. Chosen once, reported to the user."""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from tlcore.errors import TransferLabError

__all__ = ["Runtime", "select_runtime", "tune_allocator", "busy_cores", "free_threads"]

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters
_allocator_tuned = False


def tune_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the OS after every tensor.

    With glibc's defaults a large tensor is mapped fresh and the kernel zeroes its pages; so every forward pass
    pays page faults for its activations. Here every allocation comes from the heap (no `mmap`) and the heap is
    never trimmed. Measured with `bench/allocator.py` (2 CPU cores, EfficientNet-Lite0, 240 pictures, 2 rounds): a
    head-only run 9.7 s with the defaults and 6.2 s tuned; a full fine-tuning epoch 8.6 s with the defaults and
    7.0 s tuned. An earlier tuning (a 1 GiB top pad and no trimming) made the head-only run nearly as fast (6.9 s)
    but the fine-tuning epoch 13.4 s: a top pad turns off glibc's moving mmap threshold, so every large tensor was
    mapped fresh. Peak memory: 4.0 GB tuned, 3.5 GB with the top pad, 3.8 GB with the defaults.
    Text runs (all-MiniLM-L6-v2) are the same either way. The cost is a process that keeps its peak memory;
    training processes want exactly that. Only for training processes (worker, CLI), never the web server. No-op
    off glibc.

    Returns:
        True once the allocator is tuned (now or before), False where it cannot be (not glibc).
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, ctypes.c_int(0)) and libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))
    except (OSError, AttributeError):
        return False
    _allocator_tuned = bool(ok)
    return _allocator_tuned


@dataclass(frozen=True)
class Runtime:
    """Where and how a run computes: device, autocast precision, memory format, loader workers."""
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: full fp32
    channels_last: bool
    num_workers: int
    pin_memory: bool
    threads: int | None = None  # the CPU's compute threads (None: PyTorch's own choice)

    def describe(self) -> str:
        """Device, precision and loader settings in words for the run's log."""
        precision = "bf16 autocast" if self.autocast_dtype is torch.bfloat16 else "fp32"
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else self.device.type.upper()
        threads = "" if self.threads is None else (
            f", {self.threads} compute thread{'s' if self.threads > 1 else ''}"
            + (f" ({_usable_cores() - self.threads} of {_usable_cores()} cores busy with other work)"
               if self.threads < min(_usable_cores(), _TORCH_THREADS) else ""))
        return (f"{name}, {precision}{', channels_last' if self.channels_last else ''}, {self.num_workers} loader "
                f"workers{threads}")

    def on_free_cores(self) -> "Runtime":
        """This runtime with the CPU's compute threads set to the cores other work leaves free (`free_threads`),
        for a process that trains (the worker, the CLI, an estimate), never the web server: PyTorch is told here.

        Returns:
            The runtime with `threads` set (unchanged off the CPU).
        """
        if self.device.type != "cpu":
            return self
        threads = free_threads()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return replace(self, threads=threads)


_TORCH_THREADS = torch.get_num_threads()  # PyTorch's own choice, before any run changed it
_BUSY_SAMPLE_S = 0.1
_BUSY_KEPT_S = 5.0  # one look at the machine serves the runs prepared within this many seconds
_busy_seen: list[tuple[float, float]] = []  # (when, busy cores)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> dict[str, tuple[int, int]] | None:
    """(all, idle) CPU time so far of each core this process may run on ("cpu3"), in clock ticks; None where
    /proc/stat is not there."""
    try:
        allowed = {f"cpu{n}" for n in os.sched_getaffinity(0)}
        times = {}
        for line in Path("/proc/stat").read_text().splitlines():
            fields = line.split()
            if fields and fields[0] in allowed:
                values = [int(v) for v in fields[1:9]]
                times[fields[0]] = (sum(values), values[3] + values[4])  # idle and waiting for I/O
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return times or None


def _busy_over(sample_s: float) -> float:
    first = _cpu_times()
    time.sleep(sample_s)
    second = _cpu_times()
    if first is None or second is None:
        return 0.0
    busy = 0.0
    for cpu, (total, idle) in second.items():
        if cpu in first and total > first[cpu][0]:
            busy += 1.0 - (idle - first[cpu][1]) / (total - first[cpu][0])
    return max(0.0, busy)


def busy_cores(sample_s: float = _BUSY_SAMPLE_S) -> float:
    """How many of the cores this process may run on other work keeps busy now (a container's or `taskset`'s set,
    not the machine's): the smaller of two looks of `sample_s` seconds each (this process sleeps meanwhile), so a
    moment's burst (a page redrawn) is not taken for load. 0 where the kernel does not say (not Linux).

    Args:
        sample_s: how long each look lasts.

    Returns:
        Busy cores, e.g. 1.0 beside one process spinning on a CPU.
    """
    return min(_busy_over(sample_s), _busy_over(sample_s))


def free_threads(busy: float | None = None) -> int:
    """Compute threads for a CPU run: the cores other work leaves free, at least 1 and at most PyTorch's own
    choice. On this project's 2 cores beside one spinning process, 2 threads took 13 s an epoch (freeze first k, the
    sample pictures) and 1 thread 7.7 s: a thread that waits for a core holds every step back (quiet: 4.1 s with 2,
    7.5 s with 1).

    Args:
        busy: cores busy with other work (None: `busy_cores()`, looked at most once every few seconds).

    Returns:
        The number of threads.
    """
    if busy is None:
        now = time.monotonic()
        if not _busy_seen or now - _busy_seen[0][0] > _BUSY_KEPT_S:
            _busy_seen[:] = [(now, busy_cores())]
        busy = _busy_seen[0][1]
    taken = int(busy + 0.3)  # a core 70% busy is taken; light background work is not
    return max(1, min(_TORCH_THREADS, _usable_cores() - taken))


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def select_runtime(device: str = "auto", precision: str = "auto", num_workers: int = -1) -> Runtime:
    """CUDA, then Apple MPS, then CPU; bf16 autocast by default on CUDA only, channels_last on CUDA and CPU.

    Args:
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        precision: "auto", "fp32" or "bf16".
        num_workers: loader processes (-1: from the machine's cores).

    Returns:
        The runtime.

    Raises:
        TransferLabError: CUDA or MPS asked for where there is none.
    """
    if device == "auto":
        chosen = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise TransferLabError("a CUDA GPU was requested but none is available on this machine",
                               "set device to 'auto' or 'cpu'")
    elif device == "mps" and not _mps_available():
        raise TransferLabError("an Apple GPU (mps) was requested but none is available", "set device to 'auto' or 'cpu'")
    else:
        chosen = device
    dev = torch.device(chosen)
    # bf16 when asked for (allowed on a CPU too, where it is slow), and by default on CUDA.
    dtype = torch.bfloat16 if precision == "bf16" or (precision == "auto" and dev.type == "cuda") else None
    cores = os.cpu_count() or 1
    if num_workers < 0:
        # On a small CPU-only machine a worker steals a core from the model; on a GPU box, decoding is the bottleneck.
        num_workers = min(8, cores) if dev.type == "cuda" else (0 if cores <= 2 else min(4, cores // 2))
    # channels_last: measured on this project's 2-core CPU, +26% forward and +35% training for EfficientNet-Lite0.
    return Runtime(device=dev, autocast_dtype=dtype, channels_last=dev.type in ("cuda", "cpu"),
                   num_workers=num_workers, pin_memory=dev.type == "cuda")
