"""Which setting works best on my data? Several runs on one split, side by side, repeated over seeds.

A comparison (a "sweep") is a set of ordinary runs that share a sweep id: the cells of a grid
(`tlcore.experiments.grid`: one to three settings varied, e.g. freeze strategy x learning rate), each repeated
over seeds. They queue on the background runner, finish one by one, and can be resumed like any run.
The table, the cell summaries (mean and spread over seeds) and the paired verdict read the run store;
`tlcore.experiments.report` draws them.
"""

from __future__ import annotations

from collections import Counter

import csv
import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tlcore.spec.adapt_spec import METHODS, NEEDS_TARGET, TRAINS_THE_BACKBONE
from tlcore.results.artifacts import PREDICTIONS, read_evaluation, read_folder_evaluations, read_target_score
from tlcore.core.run_files import folder_evaluation_name, read_target_probabilities
from tlcore.config import EarlyStoppingConfig, RunConfig
from tlcore.errors import TransferLabError
from tlcore.experiments.grid import STRATEGY_SET, Axis, expand, same_in_effect
from tlcore.experiments.stats import EQUIVALENCE_MARGIN, PairedComparison, compare_paired, plain_words
from tlcore.core.events import Progress, standing
from tlcore.modality import for_model, resolve_manifest
from tlcore.results.target_score import (BACKBONE_RULE, CONFIRMED, HELD_OUT, LABEL_FREE_RULE, LABEL_FREE_RULES, SELECTION_SCORE,
                                         best_by_target_score, changed_share, rule_words)
from tlcore.runs import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, SUCCEEDED, RunStore

__all__ = ["STRATEGY_SET", "DEFAULT_STRATEGIES", "SweepRow", "CellSummary", "strategy_axis", "method_axis",
           "chosen_without_labels", "chosen_with_few_labels", "choose_by_labelled", "MIN_MORE_RIGHT", "candidate_methods",
           "sweep_configs", "launch_sweep", "resume_sweep", "paired_comparisons", "cell_summaries",
           "sweep_rows", "verdict", "wait_for_sweep", "active_seconds", "progress_words", "running_progress",
           "progress_rows"]

DEFAULT_STRATEGIES = tuple(STRATEGY_SET)


def strategy_axis(strategies: tuple[str, ...] | list[str] = DEFAULT_STRATEGIES) -> Axis:
    """The classic comparison: freeze strategies of `STRATEGY_SET`, nothing else differs."""
    unknown = [s for s in strategies if s not in STRATEGY_SET]
    if unknown or not strategies:
        raise TransferLabError(f"unknown strategy name(s): {', '.join(unknown) or '(none given)'}",
                               f"choose from {', '.join(STRATEGY_SET)}")
    return Axis("freeze.strategy", tuple(strategies))


def method_axis(methods: tuple[str, ...] | list[str]) -> Axis:
    """Domain-adaptation methods on the base's freeze plan."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise TransferLabError(f"unknown adaptation method(s): {', '.join(unknown) or '(none given)'}",
                               f"choose from {', '.join(METHODS)}")
    return Axis("adapt.method", tuple(methods))


def candidate_methods(config: RunConfig) -> tuple[str, ...]:
    """The adaptation methods worth trying on a run (what "auto" tries): no adaptation, then every method that uses
    the target pictures and can act on its freeze plan.

    Args:
        config: the run; where only the head trains in all its epochs (`FreezeConfig.trains_only_head`, the
            definition the run's own check uses), DANN, which trains the backbone, is left out.

    Returns:
        Method names, "none" first.
    """
    head_only = config.freeze.trains_only_head(config.epochs)
    return ("none",) + tuple(m for m in NEEDS_TARGET if not (head_only and m in TRAINS_THE_BACKBONE))


def _trains_only_head(config: dict) -> bool:
    """A stored run's config: only its head trained (an unreadable old config: by its strategy's name)."""
    try:
        parsed = RunConfig.from_dict(config)
    except TransferLabError:
        return (config.get("freeze") or {}).get("strategy") == "feature_extraction"
    return parsed.freeze.trains_only_head(parsed.epochs)


def sweep_configs(base: RunConfig, strategies: tuple[str, ...] | list[str] = DEFAULT_STRATEGIES,
                  methods: tuple[str, ...] | list[str] | None = None, axes: list[Axis] | None = None,
                  seeds: int = 1) -> list[RunConfig]:
    """Every run of the experiment, all pinned to the same split manifest file, seed by seed (all cells of seed 0
    first, so a first answer comes early). `axes` wins over `methods`, which wins over `strategies`.

    Args:
        base: the shared run config.
        strategies: freeze strategies of `STRATEGY_SET` to compare (when neither `methods` nor `axes` is given).
        methods: adaptation methods to compare on the base's freeze plan.
        axes: any settings to vary, as a grid.
        seeds: each setting is repeated with seeds 0..seeds-1.

    Returns:
        One config per run; a cell that would train exactly as an earlier one (`tlcore.experiments.grid.same_in_effect`) is left
        out.

    Raises:
        TransferLabError: an unknown strategy or method, or a combination that is not a valid run.
    """
    axes = axes or [method_axis(methods) if methods else strategy_axis(strategies)]
    cells = expand(base, axes, seeds)
    repeats = same_in_effect(cells)  # run once (said by the CLI and the Compare page before queueing)
    cells = [cell for cell in cells if cell.label not in repeats]
    _, manifest_path = resolve_manifest(base.data)  # made and saved once; every run reads this file
    data = replace(base.data, manifest=str(manifest_path))
    return [replace(cell.configs[seed], data=data) for seed in range(seeds) for cell in cells]


def launch_sweep(base: RunConfig, strategies=DEFAULT_STRATEGIES, store: RunStore | None = None,
                 start: bool = True, methods=None, axes: list[Axis] | None = None, seeds: int = 1,
                 runner: str | None = None, on_progress: Callable[[str, int, int], None] | None = None) -> str:
    """Queue every run of a comparison, all on one split manifest; returns the comparison's id.

    Args:
        base: the shared config (the varied settings are replaced per cell).
        strategies: names from `STRATEGY_SET` (default: all five), when neither `methods` nor `axes` is given.
        methods: instead, domain-adaptation methods (`tlcore.spec.adapt_spec.METHODS`) on the base's freeze plan.
        axes: instead, any grid (`tlcore.experiments.grid.parse_axis("optimizer.lr=1e-3,3e-4")`).
        seeds: repeats of every cell, with seeds 0..seeds-1.
        store: the run store (default: the data folder's).
        start: start the background worker (False: the caller runs `run_worker` itself).
        runner: "ray" queues the runs for a Ray driver (`tlcore.running.on_ray.drive`) instead of the local worker.
        on_progress: told (words, done, total) as each setting is checked and each run queued: the first check
            imports the model's library, seconds in a fresh web server ("checking setting 1 of 4").

    Follow it with `sweep_rows(store, sweep)` and `verdict(rows)`; `tlcore.experiments.report.write_report` writes the report.
    """
    from tlcore.training.preflight import check_before_queueing
    from tlcore.running.worker import submit, with_absolute_paths

    store = store or RunStore()
    say = on_progress or (lambda words, done, total: None)
    configs = sweep_configs(base, strategies, methods, axes, seeds)  # every mistake before anything is queued
    distinct = {json.dumps({**c.to_dict(), "seed": 0, "name": ""}, sort_keys=True): c for c in configs}
    worker = start and runner is None
    steps = len(distinct) + len(configs) + worker  # each distinct setup checked once (seeds repeat it), each run queued
    for i, config in enumerate(distinct.values()):
        say(f"checking setting {i + 1} of {len(distinct)}", i, steps)
        check_before_queueing(with_absolute_paths(config))
    sweep = time.strftime("cmp-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
    for i, config in enumerate(configs):
        say(f"queueing run {i + 1} of {len(configs)}", len(distinct) + i, steps)
        submit(config, store, sweep=sweep, start=False, runner=runner, check=False)
    if worker:
        from tlcore.running.worker import ensure_worker

        say("starting the background worker", steps - 1, steps)
        ensure_worker(store)
    return sweep


def resume_sweep(store: RunStore, sweep: str, runner: str | None = None) -> list[str]:
    """Requeue the sweep's failed and cancelled runs (for the local worker, or for a Ray driver); finished ones are
    kept as they are.

    Args:
        store: the run store.
        sweep: the comparison's id.
        runner: None for the local worker, else the Ray driver's name.

    Returns:
        The ids of the runs queued again.

    Raises:
        TransferLabError: no comparison has this id.
    """
    from tlcore.running.worker import ensure_worker

    runs = store.list(sweep=sweep)
    if not runs:
        raise TransferLabError(f"no comparison with id {sweep}", "see the Compare page or `python -m tlcore runs list`")
    again = [r.id for r in runs if r.status in (FAILED, CANCELLED)]
    for run_id in again:
        store.requeue_for_resume(run_id, runner)
    if again and runner is None:
        ensure_worker(store)
    return again


def wait_for_sweep(store: RunStore, sweep: str, poll_s: float = 1.0) -> list[str]:
    """Block until every run of the sweep has ended; returns the ids of runs that never got to run.

    A worker that dies (SIGKILL, out of memory) ends the wait instead of leaving it hanging: its
    running run is reaped as failed, and runs still queued with no worker left to take them are
    marked failed too, each with the resume hint.

    Args:
        store: the run store.
        sweep: the comparison's id.
        poll_s: seconds between looks at the store.

    Returns:
        The ids of the runs marked failed because no worker was left to run them.
    """
    stranded: list[str] = []
    while True:
        store.reap_dead()
        runs = store.list(sweep=sweep)
        if all(r.status in FINISHED for r in runs):
            return stranded
        queued = [r for r in runs if r.status == QUEUED and r.runner is None]  # a Ray driver takes the others
        if queued and not any(r.status == RUNNING for r in runs) and store.live_worker() is None:
            time.sleep(poll_s)  # a worker between two runs re-checks the queue; give it one more look
            if store.live_worker() is None and store.get(queued[0].id).status == QUEUED:
                for run in queued:
                    if store.finish(run.id, FAILED, "the worker stopped before this run started; resume the "
                                    f"comparison with `python -m tlcore compare --resume {sweep}`", only_if=QUEUED):
                        stranded.append(run.id)  # (one a worker claimed meanwhile goes on)
                continue
        time.sleep(poll_s)


@dataclass(frozen=True)
class SweepRow:
    """One run of a comparison as a table row: its strategy and settings, status, test and validation results."""
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
    seed: int = 0
    target_score: float | None = None  # how well it fits the target pictures, without labels (`target_score`)
    labelled_accuracy: float | None = None  # on the few labelled target pictures it did not train on
    labelled_pictures: int | None = None
    adapt_method: str = "none"  # the run's adaptation method ("none": the baseline a few labels must beat)
    head_only: bool = False  # feature extraction: only the head trains (where the label-free choice held)
    items: str = "pictures"  # what the run classifies, in words ("texts" for a text model)
    target_answers: np.ndarray | None = field(default=None, repr=False, compare=False)  # probabilities on the target


def _runs_of(store: RunStore, sweep: str) -> list:
    """The comparison's runs, oldest first; raises TransferLabError when there is no such comparison."""
    runs = sorted(store.list(sweep=sweep), key=lambda r: (r.created, r.id))
    if not runs:
        raise TransferLabError(f"no comparison with id {sweep}", "see the Compare page or `python -m tlcore runs list`")
    return runs


def sweep_rows(store: RunStore, sweep: str) -> list[SweepRow]:
    """The comparison's runs as table rows, oldest first.

    Args:
        store: the run store; sweep: the comparison id.

    Returns:
        One `SweepRow` per run.

    Raises:
        TransferLabError: no comparison with that id.
    """
    runs = _runs_of(store, sweep)
    rows = []
    for run in runs:
        metrics = store.metrics(run.id)
        few = _labelled_evaluation(run.run_dir, run.config.get("adapt", {}))
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
            wall_seconds=active_seconds(run, seconds),
            images_per_s=images / seconds if metrics and seconds else None,
            trainable_params=max(m["trainable_params"] for m in metrics) if metrics else None,
            peak_memory_mb=max(m["peak_memory_mb"] for m in metrics) if metrics else None,
            val_acc=[m["val_acc"] for m in metrics], val_loss=[m["val_loss"] for m in metrics], error=run.error,
            folders={name: data["accuracy"] for name, data in read_folder_evaluations(run.run_dir).items()},
            correct=_correct_by_picture(run.run_dir) if evaluation else {},
            seed=int(run.config.get("seed", 0)),
            target_score=(read_target_score(run.run_dir) or {}).get(SELECTION_SCORE),
            labelled_accuracy=few.get("accuracy"), labelled_pictures=few.get("n"),
            adapt_method=str(run.config.get("adapt", {}).get("method", "none")),
            head_only=_trains_only_head(run.config),
            items=for_model(str((run.config.get("model") or {}).get("name", ""))).items_word,
            target_answers=read_target_probabilities(run.run_dir),
        ))
    return rows


def progress_rows(store: RunStore, sweep: str) -> list[SweepRow]:
    """The comparison's runs with only what its progress needs (status, whether evaluated, label): read every
    second while it runs, where `sweep_rows` reads each run's predictions and scores (under load the page's
    once-a-second redraw ran 3 s late).

    Args:
        store: the run store; sweep: the comparison id.

    Returns:
        One `SweepRow` per run, oldest first, its results left empty but `test_accuracy`.

    Raises:
        TransferLabError: no comparison with that id.
    """
    runs = _runs_of(store, sweep)
    rows = []
    for run in runs:
        evaluation = read_evaluation(run.run_dir) if run.status in (RUNNING, SUCCEEDED) else None
        rows.append(SweepRow(run.id, run.name, run.status, evaluation["accuracy"] if evaluation else None, None, None,
                             None, run.epochs_done, None, None, None, None, [], [], run.error,
                             items=for_model(str((run.config.get("model") or {}).get("name", ""))).items_word))
    return rows


def _labelled_evaluation(run_dir: str, adapt: dict) -> dict:
    """The run's evaluation on its few labelled target pictures, when it was kept out of training to score it."""
    if not adapt.get("labelled") or adapt.get("labelled_use") != "choose":
        return {}
    return read_folder_evaluations(run_dir).get(folder_evaluation_name(adapt["labelled"]), {})


def _correct_by_picture(run_dir: str) -> dict[str, bool]:
    """Which test pictures the run got right, from its predictions file (empty when it cannot be read)."""
    try:
        with (Path(run_dir) / PREDICTIONS).open(newline="") as fh:
            return {row["path"]: row["label"] == row["predicted"] for row in csv.DictReader(fh)}
    except (OSError, KeyError, csv.Error):
        return {}


@dataclass(frozen=True)
class CellSummary:
    """One cell of the grid over its seeds: the mean and spread people read, and the runs behind them."""

    label: str
    rows: tuple[SweepRow, ...]

    @property
    def done(self) -> list[SweepRow]:
        """The setting's runs that finished with a test accuracy."""
        return [r for r in self.rows if r.test_accuracy is not None]

    @property
    def mean(self) -> float | None:
        """Mean test accuracy over the finished seeds (None before one finishes)."""
        done = self.done
        return statistics.fmean(r.test_accuracy for r in done) if done else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (None below two finished seeds)."""
        done = self.done
        return statistics.stdev(r.test_accuracy for r in done) if len(done) > 1 else None

    @property
    def wall_seconds(self) -> float | None:
        """Mean seconds per finished run, cancelled time not counted."""
        seconds = [r.wall_seconds for r in self.done if r.wall_seconds]
        return statistics.fmean(seconds) if seconds else None

    def accuracy_words(self) -> str:
        """The accuracy in words for the verdict: one run's, or the mean with its spread over seeds."""
        if self.mean is None:
            return "not finished"
        if self.std is None:
            return f"{self.mean:.1%} test accuracy"
        return f"a mean test accuracy of {self.mean:.1%} (± {100 * self.std:.1f} points over {len(self.done)} seeds)"

    def correct_share(self, seeds: set[int]) -> dict[str, float]:
        """Per test picture, the share of these seeds' runs that got it right (pictures all of them scored)."""
        runs = [r for r in self.done if r.seed in seeds and r.correct]
        if not runs:
            return {}
        shared = set.intersection(*(set(r.correct) for r in runs))
        return {p: sum(r.correct[p] for r in runs) / len(runs) for p in shared}


def cell_summaries(rows: list[SweepRow]) -> list[CellSummary]:
    """Rows grouped by cell (the run name), in the order the cells were queued.

    Args:
        rows: the comparison's runs (`sweep_rows`).

    Returns:
        One summary per cell: mean and spread over its seeds.
    """
    cells: dict[str, list[SweepRow]] = {}
    for row in rows:
        cells.setdefault(row.strategy, []).append(row)
    return [CellSummary(label, tuple(sorted(group, key=lambda r: r.seed))) for label, group in cells.items()]


def _ranked(rows: list[SweepRow]) -> list[CellSummary]:
    done = [c for c in cell_summaries(rows) if c.mean is not None]
    return sorted(done, key=lambda c: (-c.mean, c.wall_seconds or 0))


def paired_comparisons(rows: list[SweepRow]) -> list[PairedComparison]:
    """The best cell against each other one, on the test pictures both were scored on, matched seed by seed
    (one seed: McNemar's test; several: a sign-flip test on per-picture shares of seeds right).

    Args:
        rows: the comparison's runs.

    Returns:
        One comparison per other cell (none until two cells have test results).
    """
    ranked = _ranked(rows)
    if len(ranked) < 2:
        return []
    best = ranked[0]
    found = []
    for other in ranked[1:]:
        seeds = {r.seed for r in best.done if r.correct} & {r.seed for r in other.done if r.correct}
        a, b = best.correct_share(seeds), other.correct_share(seeds)
        shared = sorted(set(a) & set(b))
        if shared:
            found.append(compare_paired(best.label, np.array([a[p] for p in shared]), other.label,
                                        np.array([b[p] for p in shared])))
    return found


def active_seconds(run, epoch_seconds: float | None) -> float | None:
    """The seconds a run was working: start to finish for a run done in one go; for a resumed run, or one not
    finished, the sum of its epochs' seconds (the time it sat cancelled or queued between attempts is not work).

    Args:
        run: the store's `Run`.
        epoch_seconds: the sum of its recorded epochs' seconds (None before any epoch).
    """
    if run.status == SUCCEEDED and not run.resume and run.finished and run.started:
        return run.finished - run.started
    return epoch_seconds


def progress_words(rows: list[SweepRow]) -> str:
    """How far a comparison is, in words that agree with the verdict: "5 of 8 runs evaluated; 3 cancelled".

    Args:
        rows: the comparison's runs.

    Returns:
        One line.
    """
    evaluated = sum(r.test_accuracy is not None for r in rows)
    parts = [f"{evaluated} of {len(rows)} runs evaluated"]
    for status in (RUNNING, QUEUED, CANCELLED, FAILED):
        count = sum(r.status == status for r in rows)
        if count:
            parts.append(f"{count} {status}")
    return "; ".join(parts)


def running_progress(store: RunStore, rows: list[SweepRow], now: float | None = None) -> tuple[float, str]:
    """How far the whole comparison is, the running runs counted by their progress inside them, and what each
    running run is doing ("full: epoch 2 of 4, batch 12 of 30", "feature extraction: features of 120 of 350
    pictures"): before, the page said only "k of N runs evaluated; 1 running" for minutes.

    Args:
        store: the run store; rows: the comparison's runs (`sweep_rows`); now: the time now (None: the clock's).

    Returns:
        (share done from 0 to 1, words for the running runs or "").
    """
    now = time.time() if now is None else now
    done, words = float(sum(r.test_accuracy is not None for r in rows)), []
    for row in rows:
        if row.status != RUNNING:
            continue
        if row.test_accuracy is not None:  # scored already, still scoring other folders: counted as evaluated
            words.append(f"{row.strategy}: evaluating")
            continue
        try:
            run = store.get(row.run_id)
            events = store.events(row.run_id, kinds=("progress",), last=1)
        except TransferLabError:
            continue
        step = Progress.from_data(events[0]["data"]) if events else None
        epochs = max(1, run.epochs)
        # a count that stands still (the model being built, a loader's first batch) says for how long
        ended = store.events(row.run_id, kinds=("epoch",), last=1)  # an epoch's end restarts the count too
        still = standing(max([run.started or 0.0] + [e["ts"] for e in events + ended]), now)
        if step is not None and step.phase == "prepare" and run.epochs_done == 0:
            words.append(f"{row.strategy}: {events[0]['message']}{still}")
            share = 0.0
        elif step is not None and step.phase == "features" and run.epochs_done == 0:
            words.append(f"{row.strategy}: features of {step.done} of {step.total} {step.unit or row.items}{still}")
            share = 0.0
        elif step is None and run.epochs_done == 0:  # claimed, nothing said yet: not "epoch 1" before its features
            words.append(f"{row.strategy}: starting{still}")
            share = 0.0
        elif run.epochs_done >= epochs:  # every epoch done: the held-out test split is being scored
            words.append(f"{row.strategy}: evaluating on the held-out test {row.items}{still}")
            share = 1.0
        else:
            within = step is not None and step.phase == "train" and step.epoch == run.epochs_done
            share = (run.epochs_done + (step.share if within else 0.0)) / epochs
            words.append(f"{row.strategy}: epoch {min(run.epochs_done + 1, epochs)} of {epochs}"
                         + (f", batch {step.step} of {step.steps}" if within else "") + still)
        done += min(share, 1.0) * 0.95  # the evaluation after the last epoch is the rest
    if not any(r.status == RUNNING for r in rows) and any(r.status == QUEUED for r in rows):
        words.append(_queued_words(store, rows, now))
    return (min(1.0, done / len(rows)) if rows else 0.0), "; ".join(words)


def _queued_words(store: RunStore, rows: list[SweepRow], now: float) -> str:
    """The wait before the next run is claimed, counted from its queueing or the last run's end, whichever is later
    ("0 of 5 runs evaluated; 5 queued" stood 3 s with nothing moving)."""
    try:
        runs = [store.get(r.run_id) for r in rows]
    except TransferLabError:
        return "waiting for the worker"
    queued = [r.created for r in runs if r.status == QUEUED]
    ended = [r.finished for r in runs if r.finished]
    since = max([min(queued)] + ended)
    return f"waiting for the worker to start the next run: {max(0.0, now - since):.0f} s so far"


def verdict(rows: list[SweepRow], margin: float = EQUIVALENCE_MARGIN) -> str:
    """Who won, by how much, how wide the spread, and how much of it is noise.

    Args:
        rows: the comparison's runs.
        margin: the equivalence margin (a share: 0.02 is 2 points): two settings are called "as good" only when the
            interval of their difference lies within it.

    Returns:
        A few sentences for people (what is still missing, when runs are not finished).
    """
    ranked = _ranked(rows)
    pending = sum(1 for r in rows if r.test_accuracy is None)
    if not ranked:
        return "No run has finished yet."
    best = ranked[0]
    tied = [c.label for c in ranked if c.mean == best.mean]
    text = (f"{best.label} won with {best.accuracy_words()}" if len(tied) == 1 else  # "0.0 points ahead" was a tie
            f"{' and '.join(tied)} tied at the top with {best.accuracy_words()}")
    if len(ranked) > 1:
        second, worst = ranked[1], ranked[-1]
        gap = 100 * (best.mean - second.mean)
        text += (f", {gap:.1f} points ahead of {second.label}" if len(tied) == 1 else "") + (
            f"; the {len(ranked)} settings span {100 * (best.mean - worst.mean):.1f} points ({worst.label} last)")
        paired = paired_comparisons(rows)
        if paired:
            seconds = {c.label: c.wall_seconds for c in ranked}
            items = rows[0].items
            text += (f". Paired on the same {paired[0].n} test {items} ({paired[0].test.replace('picture', items[:-1])}): "
                     + "; ".join(plain_words(c, seconds.get(c.a), seconds.get(c.b), margin, items) for c in paired))
        else:
            images = best.done[0].test_images
            one_image = 100 / images if images else 0
            if one_image and gap < 2 * one_image:
                text += (f". With {images} test {rows[0].items} one of them is {one_image:.1f} points, so the top "
                         "two are within noise")
    fastest = min(ranked, key=lambda c: c.wall_seconds or float("inf"))
    if fastest is not best and fastest.wall_seconds and best.wall_seconds:
        text += (f". {fastest.label} was fastest ({fastest.wall_seconds:.0f} s against {best.wall_seconds:.0f} s) "
                 f"at {fastest.mean:.1%}")
    for folder in sorted({name for row in rows for name in row.folders}):
        on_folder: dict[str, list[float]] = {}
        for row in rows:
            if row.status == SUCCEEDED and folder in row.folders:
                on_folder.setdefault(row.strategy, []).append(row.folders[folder])
        if len(on_folder) > 1:
            means = {label: sum(v) / len(v) for label, v in on_folder.items()}
            top = max(means, key=lambda label: means[label])
            text += f". On the labelled folder {folder}: {top} is best ({means[top]:.1%})"
    few = chosen_with_few_labels(rows)
    if few:
        label, scores, pictures = few
        text += (f". Chosen with your {pictures} labelled target pictures (no run trained on them): {label} ("
                 + ", ".join(f"{name} {value:.1%}" for name, value in sorted(scores.items(), key=lambda kv: -kv[1]))
                 + (f"; a method must get at least {MIN_MORE_RIGHT} more of them right than no adaptation to be "
                    "chosen" if _against_no_adaptation(rows) else "") + ")")
    chosen = chosen_without_labels(rows)
    if chosen:
        text += f". Chosen without target labels: {chosen.label} ({label_free_words(chosen)})"
        if not few and (chosen.rule != LABEL_FREE_RULE or chosen.changed is None
                        or abs(chosen.changed - ADABN_CHANGE) < 0.04):
            text += (". The evidence without labels is weak here; for a surer choice, label 5 target pictures per "
                     "class (the Data page's \"Label a few target pictures here\") and compare again")
    if pending:  # a cancelled or failed run will not finish by waiting: said as what it is
        ended = Counter(r.status for r in rows if r.test_accuracy is None and r.status in (CANCELLED, FAILED))
        waiting = pending - sum(ended.values())
        parts = ([f"{waiting} run{' is' if waiting == 1 else 's are'} not finished yet"] if waiting else []) + [
            f"{n} run{'' if n == 1 else 's'} " + ("failed" if status == FAILED else
                                                  f"{'was' if n == 1 else 'were'} cancelled")
            for status, n in sorted(ended.items())]
        text += ". " + "; ".join(parts)[0].upper() + "; ".join(parts)[1:]
    return text + "."


# With a few labelled target pictures, one more of them right is within noise: a method replaces no adaptation
# only when it gets at least this many more of them right (mean over seeds). Measured in the README: with 10 or
# 20 labelled pictures, choosing on any difference lost more than a point in 43% of draws on one shift, this rule
# in 10%, keeping most of the gain on the others.
MIN_MORE_RIGHT = 2


def choose_by_labelled(scores: dict[str, float], pictures: int, baseline: str | None) -> str:
    """The setting a few labelled target pictures choose: the most accurate on them, except that one must get at
    least `MIN_MORE_RIGHT` more of them right than the baseline (no adaptation) to replace it; ties go to the first
    in `scores`' order.

    Args:
        scores: each setting's accuracy on the labelled pictures, in the comparison's order.
        pictures: how many labelled pictures the accuracies are over.
        baseline: the setting without adaptation, or None when every setting adapts (then the most accurate wins).

    Returns:
        The chosen setting.
    """
    def enough(label: str) -> bool:
        return baseline is None or label == baseline or \
            (scores[label] - scores[baseline]) * pictures >= MIN_MORE_RIGHT - 1e-9
    candidates = {label: value for label, value in scores.items() if enough(label)}
    best = max(candidates.values())
    return next(label for label, value in candidates.items() if value == best)


def chosen_with_few_labels(rows: list[SweepRow]) -> tuple[str, dict[str, float], int] | None:
    """The setting the few labelled target pictures that no run trained on choose (`choose_by_labelled`, means
    over seeds): the most accurate on them, but no adaptation is kept unless a method gets at least
    `MIN_MORE_RIGHT` more of them right; ties go to the first in the comparison's order.

    Args:
        rows: the comparison's runs.

    Returns:
        (the chosen setting, every scored setting's accuracy, how many pictures), or None while fewer than two
        settings are scored.
    """
    scores = _mean_by_setting(rows, lambda row: row.labelled_accuracy)
    if len(scores) < 2:
        return None
    pictures = max(row.labelled_pictures or 0 for row in rows)
    baseline = next((row.strategy for row in rows if row.strategy in scores and row.adapt_method == "none"), None)
    return choose_by_labelled(scores, pictures, baseline), scores, pictures


def _against_no_adaptation(rows: list[SweepRow]) -> bool:
    """Some of the comparison's runs adapt and some do not: the few labels' margin applies."""
    return any(row.adapt_method == "none" for row in rows) and any(row.adapt_method != "none" for row in rows)


@dataclass(frozen=True)
class LabelFreeChoice:
    """What a comparison chose without target labels, and on what.

    Attributes:
        label: the chosen setting; scores: every scored setting's information score (mean over seeds).
        rule: the rule that chose (a name of `LABEL_FREE_RULES`).
        changed: for the AdaBN rule, the share of target pictures whose class AdaBN changed against no adaptation
            (mean over seeds); None otherwise.
    """

    label: str
    scores: dict[str, float]
    rule: str
    changed: float | None = None


def chosen_without_labels(rows: list[SweepRow], rule: str | None = None) -> LabelFreeChoice | None:
    """The setting a label-free rule chooses from the runs' answers on the target pictures, for comparisons whose
    runs were given target pictures: per seed, the rule (`LABEL_FREE_RULES`) chooses among the settings; the
    setting chosen on most seeds wins (ties: the higher mean information score). By default the rule is
    `LABEL_FREE_RULE` where only heads train (measured on the shift suite) and `BACKBONE_RULE` otherwise. Runs
    kept without their answers (older versions) are chosen between by the information score alone.

    Args:
        rows: the comparison's runs.
        rule: a rule's name, to use another.

    Returns:
        The choice, or None while fewer than two settings are scored.
    """
    scores = _mean_by_setting(rows, lambda row: row.target_score)
    if len(scores) < 2:
        return None
    done = [row for row in rows if row.status == SUCCEEDED and row.strategy in scores]
    methods = {row.strategy: row.adapt_method for row in rows}
    nones = [label for label in scores if methods.get(label) == "none"]
    adabns = [label for label in scores if methods.get(label) == "adabn"]
    baseline = nones[0] if nones else None
    adabn = adabns[0] if adabns else None
    if rule is None:
        rule = LABEL_FREE_RULE if all(row.head_only for row in done) else BACKBONE_RULE
        if rule == LABEL_FREE_RULE and not (len(nones) == 1 and len(adabns) == 1):
            # the rule weighs one AdaBN run against the one without adaptation; with another setting varied beside
            # the method (two learning rates...) the pair is not one setting apart
            rule = BACKBONE_RULE
    by_seed: dict[int, dict[str, np.ndarray]] = {}
    for row in done:
        if row.target_answers is not None:
            by_seed.setdefault(row.seed, {})[row.strategy] = row.target_answers
    votes: dict[str, int] = {}
    changed = []
    for answers in by_seed.values():
        if len(answers) == len(scores) and len({a.shape for a in answers.values()}) == 1:  # all, on one set
            chosen = LABEL_FREE_RULES[rule](answers, baseline, methods)
            votes[chosen] = votes.get(chosen, 0) + 1
            if baseline and adabn:
                changed.append(changed_share(answers, adabn, baseline))
    if not votes:
        return LabelFreeChoice(best_by_target_score(scores), scores, "im")
    chosen = max(votes, key=lambda label: (votes[label], scores[label]))
    uses_adabn = rule.startswith("adabn") and baseline and adabn
    return LabelFreeChoice(chosen, scores, rule, float(np.mean(changed)) if uses_adabn and changed else None)


ADABN_CHANGE = 0.08  # the AdaBN rule's threshold: a change near it is weak evidence either way


def label_free_words(choice: LabelFreeChoice) -> str:
    """Why the label-free rule chose what it chose, with the rule's measured record, for the verdict.

    Args:
        choice: what `chosen_without_labels` returned.

    Returns:
        The words, without a final full stop.
    """
    scores = ", ".join(f"{name} {value:.3f}" for name, value in sorted(choice.scores.items(), key=lambda kv: -kv[1]))
    if choice.rule == LABEL_FREE_RULE and choice.changed is not None:
        return (f"{rule_words(choice.rule)}: AdaBN changed {choice.changed:.1%} of them. Chosen leave one shift out "
                f"on the project's {HELD_OUT['shifts']} shifts (head only), this rule gained {HELD_OUT['gain']:+.1f} "
                f"points on average over no adaptation (the best method per shift {HELD_OUT['best']:+.1f}) and lost "
                f"more than a point on {HELD_OUT['losses']} of them, and on {CONFIRMED['losses']} of "
                f"{CONFIRMED['shifts']} shifts made after it was chosen; information score {scores}")
    return (f"{rule_words(choice.rule)}; information score {scores}. This score has lost accuracy: on 3 of the "
            "project's 12 shifts (head only) and on one of two with a backbone that trains (README, domain "
            "adaptation). The project's rule (AdaBN where it changes more than 8% of the answers) applies where only "
            "the head trains and the methods are compared with nothing else varied")


def _mean_by_setting(rows: list[SweepRow], value: Callable[[SweepRow], float | None]) -> dict[str, float]:
    """Each setting's mean of a per-run value over its finished runs that have one (seeds averaged)."""
    by_cell: dict[str, list[float]] = {}
    for row in rows:
        if row.status == SUCCEEDED and value(row) is not None:
            by_cell.setdefault(row.strategy, []).append(value(row))
    return {label: sum(values) / len(values) for label, values in by_cell.items()}
