"""`train`, `worker`, `runs list/show/cancel/resume`, `lr-find` and `estimate`: runs and their store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tlcore.core.events import Progress
from tlcore.errors import TransferLabError
from tlcore.cli.shared import EXIT_USER_ERROR, open_store, slow_phases

__all__ = [
    "drive_on_ray",
    "cmd_train",
    "cmd_worker",
    "runner",
    "cmd_runs_list",
    "cmd_runs_show",
    "cmd_runs_cancel",
    "cmd_runs_resume",
    "cmd_lr_find",
    "cmd_estimate",
]


def _progress_printer():
    """A one-line progress bar for `train`, then one line per epoch and per warning."""
    def show(event) -> None:
        if event.kind == "progress":
            d = Progress.from_data(event.data)
            if d is None:
                return
            if d.phase == "prepare":  # reading and splitting the data: a line each, before any bar
                print(f"\r{' ' * 60}\r{event.message}", flush=True)
                return
            name, step, steps = (("features", d.done, d.total) if d.phase != "train" else
                                 (f"epoch {(d.epoch or 0) + 1}", d.step, d.steps))
            done = int(30 * step / max(1, steps))
            print(f"\r  {name} [{'#' * done}{'.' * (30 - done)}] {step}/{steps}", end="", flush=True)
        else:
            prefix = "warning: " if event.kind == "warning" else ""
            print(f"\r{' ' * 60}\r{prefix}{event.message}", flush=True)
    return show


def drive_on_ray(store, run_ids: list[str], args: argparse.Namespace) -> dict[str, str]:
    """The runs on Ray, their log lines printed as they come; returns run id -> status.

    Args:
        store: the run store.
        run_ids: the queued runs.
        args: the command's --ray options.

    Returns:
        The final status of each run, by id.
    """
    from tlcore.running.on_ray import drive

    def show(run, kind: str, message: str) -> None:
        if kind != "progress":
            print(f"{run.name}: {'warning: ' if kind == 'warning' else ''}{message}", flush=True)

    return drive(store, run_ids, args.ray or None, data_mode=args.ray_data, cpus_per_run=args.ray_cpus_per_run,
                 on_event=show)


def cmd_train(args: argparse.Namespace) -> int:
    """`train CONFIG`: one run in the foreground (or queued with --background, or on Ray).

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    import os

    from tlcore.config import RunConfig
    from tlcore.running.worker import ensure_worker, execute, submit

    config = RunConfig.load(args.config)
    if args.nproc:
        config = RunConfig.from_dict({**config.to_dict(), "distributed": {**config.to_dict()["distributed"],
                                                                          "nproc_per_node": args.nproc}})
    store = open_store()
    if args.ray is not None:
        run = submit(config, store, runner=runner(args))
        print(f"run {run.id} ({run.name}) goes to Ray; the run store here follows it")
        status = drive_on_ray(store, [run.id], args).get(run.id, "failed")
        final = store.get(run.id)
        print(f"run {run.id}: {status}" + (f": {final.error}" if final.error else ""))
        return 0 if status == "succeeded" else EXIT_USER_ERROR
    if args.background:
        run = submit(config, store)
        print(f"queued run {run.id}; follow it with `python -m tlcore runs show {run.id}`")
        return 0
    if not store.register_worker(os.getpid()):  # one run at a time per data folder, foreground or not
        busy = [r.id for r in store.list(status="running")]
        raise TransferLabError(f"another run is training in this data folder ({busy[0] if busy else 'starting'})",
                               "queue this one with --background (it starts when that one ends), or wait")
    try:
        run = submit(config, store, start=False)
        store.start_in_process(run.id, os.getpid())
        print(f"run {run.id} ({run.name}), folder {run.run_dir}")
        try:
            status = execute(store, store.get(run.id), on_event=_progress_printer())
        except KeyboardInterrupt:  # pragma: no cover - interactive
            store.finish(run.id, "cancelled", "interrupted from the keyboard")
            raise
    finally:
        store.unregister_worker(os.getpid())
    if store.list(status="queued"):
        ensure_worker(store)  # runs queued meanwhile were waiting for this one
    final = store.get(run.id)
    print(f"run {run.id}: {status}" + (f": {final.error}" if final.error else ""))
    return 0 if status == "succeeded" else EXIT_USER_ERROR


def cmd_worker(args: argparse.Namespace) -> int:
    """`worker`: the background runner; runs queued runs one at a time, then lingers.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    import os
    import time

    from tlcore.running.worker import WORKER_LINGER_S, run_worker

    time.sleep(float(os.environ.get("TRANSFERLAB_TEST_WORKER_START_DELAY_S", "0")))  # tests: a slow start-up
    done = run_worker(linger=float(os.environ.get("TRANSFERLAB_WORKER_LINGER_S", WORKER_LINGER_S)))
    print(f"worker finished: {done} run(s)")
    return 0


def runner(args: argparse.Namespace) -> str | None:
    """The store's runner for what this command queues: a Ray driver's with --ray, else the local worker's.

    Args:
        args: the command's parsed options.

    Returns:
        The runner's name, or None for the local worker.
    """
    if args.ray is None:
        return None
    from tlcore.running.on_ray import RAY_RUNNER

    return RAY_RUNNER


def _fmt_time(ts: float | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def cmd_runs_list(args: argparse.Namespace) -> int:
    """`runs list`: every run of the data folder, newest first.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    store = open_store()
    store.reap_dead()
    runs = store.list(status=args.status)
    if not runs:
        print("no runs yet: start one with `python -m tlcore train CONFIG.json`")
        return 0
    print(f"{'id':<22} {'status':<10} {'epochs':>7} {'best val acc':>12} {'test acc':>8}  {'created':<16}  name")
    for run in runs:
        metrics = store.metrics(run.id)
        best = max((m["val_acc"] for m in metrics), default=None)
        test = _test_accuracy(run)
        print(f"{run.id:<22} {run.status:<10} {run.epochs_done:>3}/{run.epochs:<3} "
              f"{'-' if best is None else f'{best:.3f}':>12} {'-' if test is None else f'{test:.3f}':>8}  "
              f"{_fmt_time(run.created):<16}  {run.name}")
    return 0


def _test_accuracy(run) -> float | None:
    from tlcore.core.run_files import read_evaluation

    evaluation = read_evaluation(run.run_dir)
    return evaluation.get("accuracy") if evaluation else None


def cmd_runs_show(args: argparse.Namespace) -> int:
    """`runs show ID`: a run's epochs, events and errors.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    store = open_store()
    store.reap_dead()
    run = store.get(args.run_id)
    print(f"run {run.id}: {run.name}\nstatus: {run.status}" + (f" ({run.error})" if run.error else ""))
    print(f"folder: {run.run_dir}\ncreated {_fmt_time(run.created)}, started {_fmt_time(run.started)}, "
          f"finished {_fmt_time(run.finished)}")
    events = store.events(run.id, kinds=("warning", "error", "stage", "log"))
    # the run's own unit, as its start said it (the store never loads a modality: that would import torch)
    unit = next((e["data"]["speed_unit"] for e in events if isinstance(e.get("data"), dict)
                 and isinstance(e["data"].get("speed_unit"), str)), "img/s")[:12]
    width = max(7, len(unit))
    print(f"{'epoch':>5} {'train loss':>10} {'train acc':>9} {'val loss':>9} {'val acc':>8} {unit:>{width}} {'s':>6}")
    for m in store.metrics(run.id):
        print(f"{m['epoch'] + 1:>5} {m['train_loss']:>10.4f} {m['train_acc']:>9.3f} {m['val_loss']:>9.4f} "
              f"{m['val_acc']:>8.3f} {m['images_per_s']:>{width}.1f} {m['epoch_seconds']:>6.1f}")
    for event in events:
        print(f"  [{event['kind']}] {event['message']}")
    if args.config:
        print(json.dumps(run.config, indent=2))
    return 0


def cmd_runs_cancel(args: argparse.Namespace) -> int:
    """`runs cancel ID`: stop a queued or running run.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    run = open_store().request_cancel(args.run_id)
    print(f"run {run.id}: {'cancelled' if run.status == 'cancelled' else 'will stop at its next step'}")
    return 0


def cmd_runs_resume(args: argparse.Namespace) -> int:
    """`runs resume ID`: continue a failed or cancelled run from its last complete epoch.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from tlcore.running.worker import ensure_worker

    if args.ray is not None:
        store = open_store()
        run = store.requeue_for_resume(args.run_id, runner(args))
        print(f"run {run.id} resumes on Ray from its last checkpoint (epoch {run.epochs_done})")
        status = drive_on_ray(store, [run.id], args).get(run.id, "failed")
        print(f"run {run.id}: {status}" + (f": {store.get(run.id).error}" if store.get(run.id).error else ""))
        return 0 if status == "succeeded" else EXIT_USER_ERROR
    run = open_store().requeue_for_resume(args.run_id)
    ensure_worker()
    print(f"run {run.id} queued to resume from its last checkpoint (epoch {run.epochs_done})")
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    """`lr-find CONFIG`: the learning-rate range test and its suggestion.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from tlcore.config import RunConfig
    from tlcore.training.lr_find import lr_find

    def progress(step: int, steps: int, lr: float, loss: float) -> None:
        with open(args.progress, "a") as fh:  # one JSON line per step, for a page that follows it
            fh.write(json.dumps({"step": step, "steps": steps, "lr": lr, "loss": loss}) + "\n")

    curve = lr_find(RunConfig.load(args.config), steps=args.steps, on_step=progress if args.progress else
                    lambda *a: None)
    for lr, loss in list(zip(curve.lrs, curve.losses))[:: max(1, len(curve.lrs) // 15)]:
        print(f"  lr {lr:9.2e}  loss {loss:.4f}")
    print(f"suggested learning rate: {curve.suggestion:.2e}")
    if args.out:
        Path(args.out).write_text(json.dumps(curve.to_dict()))
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    """`estimate CONFIG...`: each run's time, from a few steps measured here.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from tlcore.config import RunConfig
    from tlcore.experiments.estimate import estimate_times, measuring_phases

    configs = [RunConfig.load(path) for path in args.config]  # all checked before the first is measured

    def show(index: int, estimate) -> None:
        line = json.dumps(estimate.to_dict()) if args.json else f"{args.config[index]}: {estimate.describe()}"
        print(line, flush=True)  # one line per config as it is known: a page follows them

    phases = measuring_phases(configs)
    with slow_phases(phases) as say:  # a phase that lasts over a second is said on stderr, with its count

        def phase(words: str, done: int, total: int) -> None:
            say(words)
            if args.progress:
                with open(args.progress, "a") as fh:  # one JSON line per phase, for a page that follows it
                    fh.write(json.dumps(Progress("estimate", done, total).to_data() | {"words": words}) + "\n")
        estimate_times(configs, on_each=show, on_phase=phase)
    return 0
