"""The background runner: a separate process that takes queued runs one at a time and trains them.

The Streamlit server never trains: it submits a run and starts this worker when none
is running (`python -m tlcore worker`, in its own session so a closed browser tab or
a restarted server does not stop it). One worker per data folder, so
runs queue instead of fighting over the GPU (or the CPU): a worker registers in the run
store and a second one stands down while the first is alive.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch

from tlcore.config import RunConfig
from tlcore.errors import TransferLabError
from tlcore.results.artifacts import BEST, EVALUATION, LAST, PREDICTIONS, STATE, TRAINING_MARK
from tlcore.results.target_score import score_target
from tlcore.results.evaluate import evaluate_folder, evaluate_run, score_labelled_target
from tlcore.core.paths import data_home
from tlcore.training.preflight import check_before_queueing, model_for_the_data
from tlcore.modality import for_model, of_config
from tlcore.core.run_files import append_event, write_run_record
from tlcore.runs import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Run, RunStore, StoreError
from tlcore.results.tracking import RunTracker
from tlcore.core.events import Cancelled, Event
from tlcore.training.train import train
from tlcore.core.paths import user_path

__all__ = ["execute", "run_to_end", "record_results", "run_worker", "ensure_worker", "submit", "worker_running", "with_absolute_paths"]

HEARTBEAT_EVERY_S = 5.0
IDLE_POLL_S = 0.5
WORKER_LINGER_S = 60.0  # a background worker waits this long for the next run before it exits
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def worker_running(store: RunStore | None = None) -> bool:
    """A worker is alive or starting for this data folder.

    Args:
        store: the run store (default: the data folder's).

    Returns:
        True when one is.
    """
    return (store or RunStore()).live_worker() is not None


def run_to_end(config: RunConfig, run_dir: str | Path, sink, should_stop, resume: bool = False):
    """Train, then evaluate on the test split and on `evaluate_on` folders; never raises.

    Returns (status, error, evaluation or None). Used by the local worker and by a Ray task alike.

    Args:
        config: the run config.
        run_dir: the run folder.
        sink: receives every event.
        should_stop: True cancels.
        resume: continue after the last complete epoch.

    Returns:
        (status, error message or None, evaluation or None).
    """
    try:
        if config.distributed.nproc_per_node > 1:  # torchrun trains; rank 0 wrote the checkpoints evaluated here
            from tlcore.running.ddp import launch

            launch(config, run_dir, sink, should_stop, resume)
        else:
            train(config, run_dir, sink=sink, should_stop=should_stop, resume=resume)
        evaluation = evaluate_run(run_dir)
        sink(Event("log", f"test accuracy {evaluation.accuracy:.3f} (balanced {evaluation.balanced_accuracy:.3f}) "
                          f"on {evaluation.n} held-out {of_config(config).items_word}",
                          {"test_accuracy": evaluation.accuracy}))
        for folder in config.evaluate_on:
            try:
                other, _ = evaluate_folder(run_dir, folder)
                sink(Event("log", f"accuracy {other.accuracy:.3f} on {other.n} pictures of {folder}",
                           {"folder": folder, "accuracy": other.accuracy}))
            except TransferLabError as exc:  # the run itself is fine: say so, keep it
                sink(Event("warning", f"could not evaluate on {folder}: {exc}"))
        if config.adapt.labelled_kept_apart:  # not trained on: a fair score
            try:
                few, _ = score_labelled_target(run_dir, config)
                sink(Event("log", f"accuracy {few.accuracy:.3f} on the {few.n} labelled target pictures (not trained "
                                  "on; comparisons choose by it)", {"labelled_target_accuracy": few.accuracy}))
            except TransferLabError as exc:
                sink(Event("warning", f"could not score the labelled target pictures: {exc}"))
        if config.adapt.target.strip():  # how well it fits the target pictures, without their labels
            try:
                fit = score_target(run_dir)
                sink(Event("log", f"on {fit.pictures} target pictures (no labels used): information score "
                                  f"{fit.im:.3f}, neighbourhood density {fit.snd:.3f}, mean confidence "
                                  f"{fit.mean_confidence:.2f}", {"target_im": fit.im, "target_snd": fit.snd}))
            except TransferLabError as exc:
                sink(Event("warning", f"could not score the target pictures: {exc}"))
        return SUCCEEDED, None, evaluation
    except Cancelled as exc:
        kept = ("the last complete epoch is kept and the run can be resumed" if (Path(run_dir) / STATE).is_file()
                else "no epoch had completed, so nothing is kept: it can be started again")
        return CANCELLED, f"{exc}; {kept}", None
    except TransferLabError as exc:
        return FAILED, str(exc), None
    except torch.OutOfMemoryError:
        return FAILED, "out of memory: lower the batch size or the input size, or choose a smaller model", None
    except Exception as exc:  # noqa: BLE001 - a bug must still end as a failed run with a reason, not a dead worker
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / "error.log").write_text(traceback.format_exc())
        return FAILED, f"unexpected error: {type(exc).__name__}: {exc} (details in error.log in the run folder)", None


def record_results(store: RunStore, run: Run, evaluation, tracker: RunTracker | None) -> None:
    """The finished run's files in the store (and its test results in TensorBoard/MLflow).

    Args:
        store: the run store.
        run: the run.
        evaluation: its test evaluation, or None.
        tracker: its TensorBoard/MLflow logger, if any.
    """
    for kind, name in (("best", BEST), ("last", LAST), ("evaluation", EVALUATION), ("predictions", PREDICTIONS)):
        store.add_artifact(run.id, kind, Path(run.run_dir) / name)
    if tracker is not None and evaluation is not None:
        tracker.evaluated(evaluation, [Path(run.run_dir) / name for name in (EVALUATION, PREDICTIONS, BEST)])


def execute(store: RunStore, run: Run, *, on_event=None) -> str:
    """Train one claimed run to its end, recording everything; returns its final status. Never raises.

    Args:
        store: the run store.
        run: the run, already claimed.
        on_event: also hears every event (the CLI prints them).

    Returns:
        "succeeded", "failed" or "cancelled".
    """
    stop_beating = threading.Event()

    tracker: RunTracker | None = None
    store_trouble: set[str] = set()  # what the store could not do, each said once
    notes_said = [len(store.notes)]

    def store_trouble_said(exc: StoreError, doing: str) -> None:
        """The store's trouble is not the run's: said once for each thing it could not do, in the run folder (which
        keeps the run's events)."""
        if doing not in store_trouble:
            store_trouble.add(doing)
            append_event(run.run_dir, {"ts": time.time(), "kind": "warning", "data": {},
                                       "message": f"the run store could not {doing} ({exc}); the run goes on and "
                                                  f"its folder keeps its events"})

    def beat() -> None:
        while not stop_beating.wait(HEARTBEAT_EVERY_S):
            try:
                store.heartbeat(run.id)
            except StoreError as exc:  # the next beat tries again (a dead beat would get the run taken for dead)
                store_trouble_said(exc, "record that the run is alive")

    def cancel_asked() -> bool:
        try:
            return store.cancel_requested(run.id)
        except StoreError as exc:  # asked again at the next step; before, the run failed with the store's error
            store_trouble_said(exc, "say whether the run was cancelled")
            return False

    def say_store_notes() -> None:  # the store rebuilt under the run (runs.sqlite deleted or damaged): in its log
        while notes_said[0] < len(store.notes):  # counted before it is said: a note the saying adds is said once
            note = store.notes[notes_said[0]]
            notes_said[0] += 1
            sink(Event("warning", f"while this run trained, {note}; no epoch or event of the run was lost"))

    def sink(event: Event) -> None:
        now = time.time()
        if event.kind != "progress":  # in the run folder too, as it happens: a rebuilt store loses none of them
            append_event(run.run_dir, {"ts": now, "kind": event.kind, "message": event.message, "data": event.data})
        try:
            store.add_event(run.id, event.kind, event.message, event.data, ts=now)
        except StoreError as exc:  # the store's trouble is not the run's: it trains on, its folder keeps the events
            store_trouble_said(exc, "record an event")
        if len(store.notes) > notes_said[0]:
            say_store_notes()
        if event.kind == "epoch" and tracker is not None:
            tracker.epoch(event.data)
        if on_event:
            on_event(event)

    threading.Thread(target=beat, daemon=True).start()
    status, error = FAILED, None
    mark = Path(run.run_dir) / TRAINING_MARK
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text(str(os.getpid()))
        write_run_record(run.run_dir, state=RUNNING, sweep=run.sweep, runner=run.runner, created=run.created)
        config = RunConfig.from_dict(run.config)
        tracker = RunTracker(run.id, run.name, run.sweep, run.config, run.run_dir,
                             warn=lambda text: sink(Event("warning", text)))
        status, error, evaluation = run_to_end(config, run.run_dir, sink,
                                               cancel_asked, run.resume)
        if status == SUCCEEDED:
            record_results(store, run, evaluation, tracker)
    except TransferLabError as exc:  # the config itself (a run queued by an older version)
        error = str(exc)
    finally:
        stop_beating.set()
        mark.unlink(missing_ok=True)
        if tracker is not None:
            tracker.close(status)
    try:
        if error:
            store.add_event(run.id, "error" if status == FAILED else "log", error)
        recorded = _finish(store, run, status, error)
        if not recorded:  # taken for dead and resumed elsewhere meanwhile
            holder = store.get(run.id)
            store.add_event(run.id, "warning", f"a process that was taken for dead ended this run as {status}; "
                                               f"not recorded, since process {holder.pid} holds the run now")
    except StoreError as exc:  # the run's end is in its folder: a rebuilt store reads it there; the worker goes on
        write_run_record(run.run_dir, state=status)
        store_trouble_said(exc, f"record that the run {status}")
    return status


FINISH_TRIES = 3  # a run's end is recorded again after a store error (a moment's trouble: the store being rebuilt)
FINISH_PAUSE_S = 1.0


def _finish(store: RunStore, run: Run, status: str, error: str | None) -> bool:
    """`store.finish` for the worker's own run, tried again after a store error, a second apart.

    Returns:
        What `finish` returned.

    Raises:
        StoreError: every try failed.
    """
    for attempt in range(FINISH_TRIES):
        try:
            return store.finish(run.id, status, error, pid=os.getpid())
        except StoreError:
            if attempt == FINISH_TRIES - 1:
                raise
            time.sleep(FINISH_PAUSE_S)
    raise AssertionError("unreachable")


_WARM_UP_FAILED: set[str] = set()  # models whose libraries failed to import: not tried again on every poll


def _warm_up_for_the_queue(store: RunStore) -> None:
    """The libraries the queued runs' kinds import (timm and the augmentations for pictures, transformers for
    texts), imported before a run is claimed: a run's clock then starts where its time estimate does (which leaves
    out these first imports), and the wait says "waiting for the worker to start" meanwhile, with its count."""
    models = set()
    for run in store.list(status=QUEUED):
        model = run.config.get("model") if run.runner is None and isinstance(run.config, dict) else None
        if isinstance(model, dict) and isinstance(model.get("name"), str):  # else: said when the run is claimed
            models.add(model["name"])
    for name in sorted(models - _WARM_UP_FAILED):
        try:
            for_model(name).warm_up()
        except Exception:  # noqa: BLE001 - a library that cannot be imported here: the run says so when it builds
            _WARM_UP_FAILED.add(name)  # its model (and fails with a reason); the worker must not die before that


def run_worker(store: RunStore | None = None, *, linger: float = 0.0) -> int:
    """Drain the queue; exits when it has been empty for `linger` seconds. Returns the number of runs executed
    (0 if another worker is live).

    The worker registers in the run store (a dead one is forgotten by its pid); after
    deregistering it looks at the queue once more, so a run queued while it was
    finishing is never left waiting for a worker that has gone. Lingering keeps torch
    imported, so the next "Start training" begins at once instead of after a new start-up.
    """
    store = store or RunStore()
    pid, done = os.getpid(), 0
    while store.register_worker(pid):
        try:
            store.reap_dead()
            idle_since = time.monotonic()
            while True:
                _warm_up_for_the_queue(store)
                run = store.claim_next(pid)
                if run is not None:
                    execute(store, run)
                    done += 1
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= linger:
                    break
                else:
                    time.sleep(IDLE_POLL_S)
        finally:
            store.unregister_worker(pid)
        if not any(r.runner is None for r in store.list(status=QUEUED)):  # runs queued for Ray are not ours
            break
    return done


def spawn_detached(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """`python -m tlcore ARGS` in its own session (a closed tab or a restarted server does not stop it), its
    output appended to `log_path`; reaped by a thread so it never lingers as a zombie. Returns its pid.

    Args:
        args: the command's arguments; log_path: where its output goes; env: variables added to its environment.
    """
    with log_path.open("a") as log:  # the child keeps its own copy of the descriptor
        child = subprocess.Popen([sys.executable, "-m", "tlcore", *args], cwd=PROJECT_ROOT, stdout=log, stderr=log,
                                 stdin=subprocess.DEVNULL, start_new_session=True, env={**os.environ, **(env or {})})
    threading.Thread(target=child.wait, daemon=True, name=f"reap-{args[0]}-{child.pid}").start()
    return child.pid


def _spawn_worker(env: dict[str, str]) -> int:
    return spawn_detached(["worker"], data_home() / "worker.log", env)


def ensure_worker(store: RunStore | None = None) -> bool:
    """Start a background worker unless one is alive or starting; True if this call started it.

    Args:
        store: the run store (default: the data folder's).

    Returns:
        True when this call started one.
    """
    return (store or RunStore()).start_worker_once(_spawn_worker) is not None


def _absolute(path: str) -> str:
    candidate = user_path(path)
    if not candidate.is_absolute():
        candidate = Path.cwd() / candidate if (Path.cwd() / candidate).exists() else PROJECT_ROOT / candidate
    if candidate.is_symlink():  # kept by its own name: `z.csv -> /dev/zero` is still the CSV the user named, and
        return str(candidate.parent.resolve() / candidate.name)  # its reader says what it points at
    return str(candidate.resolve())


def with_absolute_paths(config: RunConfig) -> RunConfig:
    """The worker runs elsewhere: data, manifest and weights paths must not depend on the current folder.

    Args:
        config: the run config.

    Returns:
        The config with absolute paths.
    """
    manifest = _absolute(config.data.manifest) if config.data.manifest else None
    weights = config.model.weights
    if weights not in ("auto", "random", ""):
        weights = _absolute(weights)
    return replace(config, data=replace(config.data, source=_absolute(config.data.source), manifest=manifest),
                   model=replace(config.model, weights=weights))


def submit(config: RunConfig, store: RunStore | None = None, *, sweep: str | None = None, start: bool = True,
           runner: str | None = None, check: bool = True) -> Run:
    """Queue a run (its data path made absolute, so the worker finds it) and make sure a worker will take it.

    Args:
        config: the run; store: the run store (default: the data folder's); sweep: the comparison it belongs to;
        start: start the background worker if none is alive; runner: "ray" makes the run wait for a Ray driver
        (`tlcore.running.on_ray.drive`) instead of the local worker; check: refuse a run that cannot start (False: the
        caller checked it, as `launch_sweep` does for all its runs before queueing any).

    Returns:
        The queued run.

    Raises:
        TransferLabError: the run cannot start (weights, adaptation target, method against model or plan).
    """
    store = store or RunStore()
    config = with_absolute_paths(config)
    config, _ = model_for_the_data(config)  # stored as it will run: text data gets a text model
    if check:  # a run that cannot start is refused now, not 40 s later in the worker, and is not listed
        check_before_queueing(config)
    run = store.create(config, sweep=sweep, runner=runner)
    if start and runner is None:
        ensure_worker(store)
    return run
