"""Which layers should I freeze? Several freeze strategies on one split, one seed, one budget, side by side.

A sweep is a set of ordinary runs that share a sweep id and differ only in their
freeze plan (or only in their domain-adaptation method); they queue on the background runner, finish one by one, and can be
resumed like any run. The table and the verdict read the run store; `tlcore.report` draws them.
"""

from __future__ import annotations

import csv
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tlcore.adapt import METHODS
from tlcore.artifacts import PREDICTIONS, read_evaluation, read_folder_evaluations
from tlcore.config import EarlyStoppingConfig, RunConfig
from tlcore.data import resolve_manifest
from tlcore.errors import TransferLabError
from tlcore.stats import TEST_NAME, PairedComparison, compare_paired, plain_words
from tlcore.runs import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, SUCCEEDED, RunStore

__all__ = ["STRATEGY_SET", "DEFAULT_STRATEGIES", "SweepRow", "strategy_configs", "method_configs", "sweep_configs",
           "launch_sweep", "resume_sweep", "paired_comparisons",
           "sweep_rows", "verdict", "wait_for_sweep"]

# name -> (freeze settings, one line for people). The same optimizer, lr, epochs and augmentation for all.
STRATEGY_SET: dict[str, tuple[dict, str]] = {
    "feature_extraction": ({"strategy": "feature_extraction"}, "head only, backbone frozen"),
    "freeze_first_half": ({"strategy": "freeze_first_k"}, "first half of the groups frozen"),
    "gradual": ({"strategy": "gradual", "every": 1}, "head first, one more group every epoch"),
    "full_discriminative": ({"strategy": "full", "lr_spread": 10}, "everything trains, stem 10x slower than head"),
    "full": ({"strategy": "full"}, "everything trains at one learning rate"),
}
DEFAULT_STRATEGIES = tuple(STRATEGY_SET)


def strategy_configs(base: RunConfig, strategies: tuple[str, ...] | list[str] = DEFAULT_STRATEGIES) -> list[RunConfig]:
    """One config per strategy; nothing else differs (the split is not pinned yet: see `sweep_configs`)."""
    unknown = [s for s in strategies if s not in STRATEGY_SET]
    if unknown or not strategies:
        raise TransferLabError(f"unknown strategy name(s): {', '.join(unknown) or '(none given)'}",
                               f"choose from {', '.join(STRATEGY_SET)}")
    return [replace(base, name=name, freeze=dict(STRATEGY_SET[name][0])) for name in strategies]


def method_configs(base: RunConfig, methods: tuple[str, ...] | list[str]) -> list[RunConfig]:
    """One config per domain-adaptation method; the freeze plan and everything else stay the base's."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise TransferLabError(f"unknown adaptation method(s): {', '.join(unknown) or '(none given)'}",
                               f"choose from {', '.join(METHODS)}")
    return [replace(base, name=f"adapt {m}", adapt=replace(base.adapt, method=m)) for m in methods]


def sweep_configs(base: RunConfig, strategies: tuple[str, ...] | list[str] = DEFAULT_STRATEGIES,
                  methods: tuple[str, ...] | list[str] | None = None) -> list[RunConfig]:
    """One config per strategy (or per adaptation method), pinned to the same split manifest file; nothing
    else differs."""
    configs = method_configs(base, methods) if methods else strategy_configs(base, strategies)
    _, manifest_path = resolve_manifest(base.data)  # made and saved once; every run reads this file
    data = replace(base.data, manifest=str(manifest_path))
    return [replace(c, data=data) for c in configs]


def launch_sweep(base: RunConfig, strategies=DEFAULT_STRATEGIES, store: RunStore | None = None,
                 start: bool = True, methods=None) -> str:
    """Queue one run per strategy of `STRATEGY_SET`, all on one split manifest; returns the comparison's id.

    Args:
        base: the shared config (its freeze setting is replaced per strategy).
        strategies: names from `STRATEGY_SET` (default: all five).
        methods: instead, domain-adaptation methods (`tlcore.adapt.METHODS`) on the base's freeze plan.
        store: the run store (default: the data folder's).
        start: start the background worker (False: the caller runs `run_worker` itself).

    Follow it with `sweep_rows(store, sweep)` and `verdict(rows)`; `tlcore.report.write_report` writes the report.
    """
    from tlcore.worker import submit

    store = store or RunStore()
    sweep = time.strftime("cmp-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
    for config in sweep_configs(base, strategies, methods):
        submit(config, store, sweep=sweep, start=False)
    if start:
        from tlcore.worker import ensure_worker

        ensure_worker(store)
    return sweep


def resume_sweep(store: RunStore, sweep: str) -> list[str]:
    """Requeue the sweep's failed and cancelled runs; finished ones are kept as they are."""
    from tlcore.worker import ensure_worker

    again = [r.id for r in store.list(sweep=sweep) if r.status in (FAILED, CANCELLED)]
    for run_id in again:
        store.requeue_for_resume(run_id)
    if again:
        ensure_worker(store)
    return again


def wait_for_sweep(store: RunStore, sweep: str, poll_s: float = 1.0) -> list[str]:
    """Block until every run of the sweep has ended; returns the ids of runs that never got to run.

    A worker that dies (SIGKILL, out of memory) ends the wait instead of leaving it hanging: its
    running run is reaped as failed, and runs still queued with no worker left to take them are
    marked failed too, each with the resume hint.
    """
    stranded: list[str] = []
    while True:
        store.reap_dead()
        runs = store.list(sweep=sweep)
        if all(r.status in FINISHED for r in runs):
            return stranded
        queued = [r for r in runs if r.status == QUEUED]
        if queued and not any(r.status == RUNNING for r in runs) and store.live_worker() is None:
            time.sleep(poll_s)  # a worker between two runs re-checks the queue; give it one more look
            if store.live_worker() is None and store.get(queued[0].id).status == QUEUED:
                for run in queued:
                    store.finish(run.id, FAILED, "the worker stopped before this run started; resume the comparison "
                                                 f"with `python -m tlcore compare --resume {sweep}`")
                    stranded.append(run.id)
                continue
        time.sleep(poll_s)


@dataclass(frozen=True)
class SweepRow:
    run_id: str
    strategy: str
    status: str
    test_accuracy: float | None
    macro_f1: float | None
    test_images: int | None
    best_epoch: int | None  # 1-based
    epochs_done: int
    wall_seconds: float | None
    images_per_s: float | None
    trainable_params: int | None
    peak_memory_mb: float | None
    val_acc: list[float]
    val_loss: list[float]
    error: str | None
    folders: dict[str, float] = field(default_factory=dict)  # accuracy on other labelled folders, by name
    correct: dict[str, bool] = field(default_factory=dict, repr=False)  # test picture -> predicted right


def sweep_rows(store: RunStore, sweep: str) -> list[SweepRow]:
    runs = sorted(store.list(sweep=sweep), key=lambda r: (r.created, r.id))
    if not runs:
        raise TransferLabError(f"no comparison with id {sweep}", "see the Compare page or `python -m tlcore runs list`")
    rows = []
    for run in runs:
        metrics = store.metrics(run.id)
        evaluation = read_evaluation(run.run_dir)
        rule = EarlyStoppingConfig(**run.config.get("early_stopping", {}))  # the rule training used, min_delta too
        best_epoch = rule.best_epoch(metrics)
        best = None if best_epoch is None else best_epoch + 1
        seconds = sum(m["epoch_seconds"] for m in metrics) if metrics else None
        images = sum(m["images_per_s"] * m["epoch_seconds"] for m in metrics) if metrics else None
        rows.append(SweepRow(
            run_id=run.id, strategy=run.name, status=run.status,
            test_accuracy=evaluation["accuracy"] if evaluation else None,
            macro_f1=(sum(c["f1"] for c in evaluation["per_class"]) / len(evaluation["per_class"])) if evaluation else None,
            test_images=evaluation["n"] if evaluation else None,
            best_epoch=best, epochs_done=run.epochs_done,
            wall_seconds=(run.finished - run.started) if run.finished and run.started and run.status == SUCCEEDED else seconds,
            images_per_s=images / seconds if metrics and seconds else None,
            trainable_params=max(m["trainable_params"] for m in metrics) if metrics else None,
            peak_memory_mb=max(m["peak_memory_mb"] for m in metrics) if metrics else None,
            val_acc=[m["val_acc"] for m in metrics], val_loss=[m["val_loss"] for m in metrics], error=run.error,
            folders={name: data["accuracy"] for name, data in read_folder_evaluations(run.run_dir).items()},
            correct=_correct_by_picture(run.run_dir) if evaluation else {},
        ))
    return rows


def _correct_by_picture(run_dir: str) -> dict[str, bool]:
    """Which test pictures the run got right, from its predictions file (empty when it cannot be read)."""
    try:
        with (Path(run_dir) / PREDICTIONS).open(newline="") as fh:
            return {row["path"]: row["label"] == row["predicted"] for row in csv.DictReader(fh)}
    except (OSError, KeyError, csv.Error):
        return {}


def paired_comparisons(rows: list[SweepRow]) -> list[PairedComparison]:
    """The best finished run against each other one, on the test pictures both were scored on."""
    done = sorted((r for r in rows if r.test_accuracy is not None and r.correct),
                  key=lambda r: (-r.test_accuracy, r.wall_seconds or 0))
    if len(done) < 2:
        return []
    best = done[0]
    found = []
    for other in done[1:]:
        shared = sorted(set(best.correct) & set(other.correct))
        if shared:
            found.append(compare_paired(best.strategy, np.array([best.correct[p] for p in shared]), other.strategy,
                                        np.array([other.correct[p] for p in shared])))
    return found


def verdict(rows: list[SweepRow]) -> str:
    """Who won, by how much, how wide the spread, and how much of it is noise."""
    done = sorted((r for r in rows if r.test_accuracy is not None), key=lambda r: (-r.test_accuracy, r.wall_seconds or 0))
    pending = len(rows) - len(done)
    if not done:
        return "No strategy has finished yet."
    best = done[0]
    text = f"{best.strategy} won with {best.test_accuracy:.1%} test accuracy"
    if len(done) > 1:
        second, worst = done[1], done[-1]
        gap = 100 * (best.test_accuracy - second.test_accuracy)
        text += (f", {gap:.1f} points ahead of {second.strategy}; the {len(done)} strategies span "
                 f"{100 * (best.test_accuracy - worst.test_accuracy):.1f} points ({worst.strategy} last)")
        paired = paired_comparisons(rows)
        if paired:
            seconds = {r.strategy: r.wall_seconds for r in done}
            text += (f". Paired on the same {paired[0].n} test pictures ({TEST_NAME}): "
                     + "; ".join(plain_words(c, seconds.get(c.a), seconds.get(c.b)) for c in paired))
        else:
            one_image = 100 / best.test_images if best.test_images else 0
            if one_image and gap < 2 * one_image:
                text += (f". With {best.test_images} test images one picture is {one_image:.1f} points, so the top "
                         "two are within noise")
    fastest = min(done, key=lambda r: r.wall_seconds or float("inf"))
    if fastest is not best and fastest.wall_seconds and best.wall_seconds:
        text += (f". {fastest.strategy} was fastest ({fastest.wall_seconds:.0f} s against {best.wall_seconds:.0f} s) "
                 f"at {fastest.test_accuracy:.1%}")
    if pending:
        text += f". {pending} strateg{'y is' if pending == 1 else 'ies are'} not finished yet"
    return text + "."
