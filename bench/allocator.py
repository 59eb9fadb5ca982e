"""Training time under three settings of glibc's allocator, each in a process of its own: glibc's defaults (a
plain PyTorch process), the tuning this project used before (no trimming, a 1 GiB top pad) and the one
`tlcore.core.runtime.tune_allocator` sets now (no mmap, no trimming).

Each process trains two runs on the bundled sample pictures (240 shapes, EfficientNet-Lite0, this machine's CPU),
2 epochs each: feature extraction (one forward pass over the pictures, then a head) and full fine-tuning. Printed:
the head-only run's seconds, each fine-tuning epoch's seconds, and the process's peak memory. `--rounds` repeats
the three settings in turn, so a load that comes and goes meets each of them.

Usage: `.venv/bin/python bench/allocator.py [--rounds 2]`
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
SETTINGS = ("glibc defaults", "top pad (before)", "no mmap (tune_allocator)")


def _set(setting: str) -> None:
    libc = ctypes.CDLL("libc.so.6")
    if setting == SETTINGS[1]:
        libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))
        libc.mallopt(M_TOP_PAD, ctypes.c_int(2**30))
    elif setting == SETTINGS[2]:
        sys.path.insert(0, str(ROOT))
        from tlcore.core.runtime import tune_allocator

        assert tune_allocator()


def one_process(setting: str, home: str) -> None:
    """Trains the two runs under `setting` and prints one JSON line."""
    _set(setting)
    sys.path.insert(0, str(ROOT))
    os.environ["TRANSFERLAB_HOME"] = home
    from tlcore.config import RunConfig
    from tlcore.training.train import train

    result = {"setting": setting}
    for strategy in ("feature_extraction", "full"):
        events = []
        started = time.perf_counter()
        config = RunConfig.from_dict({"data": {"source": str(ROOT / "sample_data" / "shapes")}, "epochs": 2,
                                      "freeze": {"strategy": strategy}, "early_stopping": {"patience": 0}})
        train(config, Path(home) / strategy, sink=events.append)
        result[strategy] = time.perf_counter() - started
        result[f"{strategy} epochs"] = [e.data["epoch_seconds"] for e in events if e.kind == "epoch"]
    result["peak MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_process(args.one, args.home)
        return
    print(f"{'allocator':28} {'head-only run s':>16} {'fine-tuning epochs s':>22} {'peak MB':>8}", flush=True)
    for _ in range(args.rounds):
        for setting in SETTINGS:
            home = tempfile.mkdtemp(prefix="tl-bench-allocator-")
            try:
                done = subprocess.run([sys.executable, __file__, "--one", setting, "--home", home],
                                      capture_output=True, text=True, check=True)
                row = json.loads(done.stdout.strip().splitlines()[-1])
            finally:
                shutil.rmtree(home, ignore_errors=True)
            epochs = ", ".join(f"{s:.1f}" for s in row["full epochs"])
            print(f"{setting:28} {row['feature_extraction']:16.1f} {epochs:>22} {row['peak MB']:8d}", flush=True)


if __name__ == "__main__":
    main()
