"""One run on several processes (GPUs, or machines) with torchrun: data-parallel training.

`"distributed": {"nproc_per_node": N}` in a run config (or `train --nproc N`) makes the worker launch
`torchrun --standalone --nproc_per_node N -m tlcore.running.ddp ...` instead of training in its own process.
Every rank builds the same model from the same seed and walks the same epoch order (the project's
exact-resume rule: same seed, same batches); each global batch of `batch_size` pictures is split
between the ranks, and the gradients are summed across ranks after each backward pass, each rank's
loss weighted by its share of the global batch. One step therefore equals a single-process step on
the whole global batch, up to floating-point summation order (BatchNorm aside: each rank normalises
by its own part of the batch unless `sync_bn`, which PyTorch runs on CUDA only).

Gradients are all-reduced explicitly (one flattened buffer per step) instead of through the
DistributedDataParallel wrapper: the wrapper registers the trainable parameters once, and gradual
unfreezing changes them from stage to stage. Every rank applies the same freeze plan at the same
epoch, so all agree on what trains. Only rank 0 writes checkpoints, events and the history; the
worker evaluates the best checkpoint after torchrun returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from tlcore.config import RunConfig
from tlcore.errors import TransferLabError
from tlcore.core.events import Cancelled, Event
from tlcore.core.runtime import tune_allocator
from tlcore.training.train import train

__all__ = ["launch", "main", "EVENTS_FILE", "CANCEL_FILE"]

EVENTS_FILE = "ddp_events.jsonl"  # rank 0 -> the worker, one event per line
CANCEL_FILE = "ddp_cancel"  # the worker -> rank 0: stop at the next agreed step
ERROR_FILE = "ddp_error.json"
EXIT_CANCELLED = 3


# -- the worker's side ----------------------------------------------------------------------------
def launch(config, run_dir: str | Path, sink, should_stop: Callable[[], bool], resume: bool) -> None:
    """Train `config` with torchrun on this machine; events from rank 0 reach `sink` as they are written.

    Raises `Cancelled` when stopped and `TransferLabError` (rank 0's own message) when training failed.

    Args:
        config: the run config (`distributed.nproc_per_node` processes).
        run_dir: the run folder.
        sink: receives rank 0's events.
        should_stop: True cancels the run (every rank stops at the same step).
        resume: continue after the last complete epoch.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (EVENTS_FILE, CANCEL_FILE, ERROR_FILE):
        (run_dir / name).unlink(missing_ok=True)
    config_path = run_dir / "ddp_config.json"
    config_path.write_text(config.to_json())
    n = config.distributed.nproc_per_node
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
            "-m", "tlcore.running.ddp", str(run_dir), str(config_path)] + (["--resume"] if resume else [])
    sink(Event("log", f"distributed training: torchrun with {n} processes on this machine"))
    with (run_dir / "torchrun.log").open("w") as log:
        child = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                 cwd=Path(__file__).resolve().parents[2])
        read = 0
        while True:
            done = child.poll() is not None
            read = _forward(run_dir / EVENTS_FILE, read, sink)
            if done:
                break
            if should_stop() and not (run_dir / CANCEL_FILE).exists():
                (run_dir / CANCEL_FILE).write_text("cancel")
            time.sleep(0.2)
    if child.returncode == 0:
        return
    error = _read_error(run_dir)
    if child.returncode == EXIT_CANCELLED or (error and error.get("cancelled")):
        raise Cancelled(error.get("message", "cancelled") if error else "cancelled")
    if error:
        raise TransferLabError(error["message"])
    tail = (run_dir / "torchrun.log").read_text()[-600:].strip().splitlines()
    raise TransferLabError(f"distributed training stopped (torchrun exit code {child.returncode}): "
                           f"{tail[-1] if tail else 'no output'}", f"see {run_dir / 'torchrun.log'}")


def _forward(path: Path, offset: int, sink) -> int:
    try:
        with path.open() as fh:
            fh.seek(offset)
            text = fh.read()
    except OSError:
        return offset
    complete = text[: text.rfind("\n") + 1]
    for line in complete.splitlines():
        kind, message, data = json.loads(line)
        sink(Event(kind, message, data))
    return offset + len(complete.encode())


def _read_error(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / ERROR_FILE).read_text())
    except (OSError, ValueError):
        return None


# -- each rank ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """`python -m tlcore.running.ddp RUN_DIR CONFIG [--resume]`, started by torchrun once per rank.

    Args:
        argv: the arguments (default: sys.argv[1:]).

    Returns:
        The exit status: 0 done, 1 failed, `EXIT_CANCELLED` cancelled (rank 0 writes the message into the run
        folder for `launch` to report).
    """
    tune_allocator()  # each rank is a training process, as the local worker is
    argv = sys.argv[1:] if argv is None else argv
    run_dir, config_path, resume = Path(argv[0]), Path(argv[1]), "--resume" in argv
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank()
    events = (run_dir / EVENTS_FILE).open("a") if rank == 0 else None

    def sink(event: Event) -> None:
        if events is not None:
            events.write(json.dumps([event.kind, event.message, event.data]) + "\n")
            events.flush()

    def should_stop() -> bool:
        return rank == 0 and (run_dir / CANCEL_FILE).exists()

    code = 0
    try:
        train(RunConfig.load(config_path), run_dir, sink=sink, should_stop=should_stop, resume=resume)
    except Cancelled as exc:
        code = EXIT_CANCELLED
        if rank == 0:
            (run_dir / ERROR_FILE).write_text(json.dumps({"message": str(exc), "cancelled": True}))
    except TransferLabError as exc:
        code = 1
        if rank == 0:
            (run_dir / ERROR_FILE).write_text(json.dumps({"message": str(exc)}))
    finally:
        if events is not None:
            events.close()
        dist.destroy_process_group()
    return code


if __name__ == "__main__":
    sys.exit(main())
