"""The CPU's compute threads follow the cores other work leaves free."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
import torch

from tlcore.core import runtime as runtime_module
from tlcore.core.runtime import busy_cores, free_threads, select_runtime


def _spin() -> None:
    while True:
        pass


def test_threads_leave_the_cores_other_work_keeps_busy(monkeypatch) -> None:
    """Beside one spinning process, 2 threads took 13 s an epoch on 2 cores and 1 thread 7.7 s."""
    monkeypatch.setattr(runtime_module, "_usable_cores", lambda: 2)
    monkeypatch.setattr(runtime_module, "_TORCH_THREADS", 2)
    assert free_threads(busy=0.0) == 2 and free_threads(busy=0.5) == 2  # light background work keeps both
    assert free_threads(busy=1.0) == 1 and free_threads(busy=0.8) == 1
    assert free_threads(busy=7.0) == 1  # never none
    monkeypatch.setattr(runtime_module, "_usable_cores", lambda: 16)
    monkeypatch.setattr(runtime_module, "_TORCH_THREADS", 8)
    assert free_threads(busy=1.0) == 8 and free_threads(busy=10.0) == 6  # at most PyTorch's own choice


@pytest.mark.skipif(not os.path.exists("/proc/stat") or (os.cpu_count() or 1) < 2, reason="needs Linux, 2 cores")
def test_a_spinning_process_is_seen_and_a_cpu_run_leaves_its_core() -> None:
    before = torch.get_num_threads()
    spinner = multiprocessing.Process(target=_spin, daemon=True)
    spinner.start()
    try:
        time.sleep(0.3)
        assert busy_cores(0.5) >= 0.8  # at least the spinner (other work may add to it)
        runtime_module._busy_seen.clear()
        assert select_runtime("cpu").threads is None  # choosing them is for training processes only
        runtime = select_runtime("cpu").on_free_cores()
        assert runtime.threads is not None and runtime.threads <= min(runtime_module._usable_cores() - 1,
                                                                      runtime_module._TORCH_THREADS)
        assert torch.get_num_threads() == runtime.threads
        assert "compute thread" in runtime.describe()
    finally:
        spinner.terminate()
        spinner.join()
        runtime_module._busy_seen.clear()
        torch.set_num_threads(before)
