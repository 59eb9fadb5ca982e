"""`compare`: several settings on one split, repeated over seeds, with a paired verdict."""

from __future__ import annotations

import argparse
import sys

from tlcore.errors import TransferLabError
from tlcore.cli.run_commands import drive_on_ray, runner
from tlcore.cli.shared import EXIT_USER_ERROR, open_store

__all__ = [
    "cmd_compare",
]


def _print_sweep(rows, verdict_text: str) -> None:
    from tlcore.experiments.compare import cell_summaries

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    folders = sorted({name for r in rows for name in r.folders})
    width = max([22] + [len(r.strategy) + 1 for r in rows])
    print(f"{'run':<{width}} {'seed':>4} {'status':<10} {'test acc':>8} {'F1':>6} {'best ep':>7} {'seconds':>8} "
          f"{(rows[0].items if rows else 'items') + '/s':>10} {'trainable':>12} {'peak MB':>8}" + "".join(f" {name[:14]:>14}" for name in folders))
    for r in rows:
        print(f"{r.strategy:<{width}} {r.seed:>4} {r.status:<10} {f(r.test_accuracy, '.3f'):>8} "
              f"{f(r.macro_f1, '.3f'):>6} {f(r.best_epoch, 'd'):>7} {f(r.wall_seconds, '.0f'):>8} "
              f"{f(r.images_per_s, '.0f'):>10} {f(r.trainable_params, ',d'):>12} {f(r.peak_memory_mb, '.0f'):>8}"
              + "".join(f" {f(r.folders.get(name), '.3f'):>14}" for name in folders))
    if folders:
        print("(the last column(s): accuracy on the labelled folder(s) given with --evaluate-on)")
    cells = cell_summaries(rows)
    if any(len(c.rows) > 1 for c in cells):
        print(f"\n{'cell':<{width}} {'seeds':>5} {'mean acc':>8} {'std':>6} {'seconds':>8}")
        for c in cells:
            print(f"{c.label:<{width}} {len(c.done):>5} {f(c.mean, '.3f'):>8} {f(c.std, '.3f'):>6} "
                  f"{f(c.wall_seconds, '.0f'):>8}")
    print(f"verdict: {verdict_text}")


def cmd_compare(args: argparse.Namespace) -> int:
    """`compare CONFIG --vary ...`: a grid of settings over seeds, its table, verdict and report.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from dataclasses import replace

    from tlcore.experiments.compare import (DEFAULT_STRATEGIES, candidate_methods, method_axis, strategy_axis, launch_sweep, resume_sweep,
                                sweep_rows, verdict)
    from tlcore.spec.adapt_spec import labelled_overlap_notes
    from tlcore.experiments.grid import expand, parse_axis, same_in_effect, same_in_effect_words
    from tlcore.experiments.report import write_report
    from tlcore.config import RunConfig
    from tlcore.core.paths import data_home
    from tlcore.running.worker import run_worker

    store = open_store()
    complete = True
    if args.report:
        sweep = args.report
    elif args.resume:
        sweep = args.resume
        again = resume_sweep(store, sweep, runner=runner(args))
        print(f"comparison {sweep}: {len(again)} run(s) queued again")
        if args.ray is not None:  # also the runs the Compare page queued for Ray
            waiting = [r.id for r in sorted(store.list(sweep=sweep), key=lambda r: (r.created, r.id))
                       if r.status == "queued" and r.runner == runner(args)]
            complete = "failed" not in drive_on_ray(store, waiting, args).values()
        else:
            run_worker(store)
            complete = _wait_for_sweep(store, sweep)
    else:
        if not args.config:
            raise TransferLabError("give a run config to compare strategies on, or --report SWEEP_ID",
                                   "e.g. python -m tlcore compare run.json")
        axes = [parse_axis(text) for text in args.vary or []]
        base = RunConfig.load(args.config)
        if args.methods:
            methods = candidate_methods(base) if args.methods.strip() == "auto" else tuple(args.methods.split(","))
            axes.insert(0, method_axis(methods))
        if args.strategies or not axes:
            axes.insert(0, strategy_axis(tuple(args.strategies.split(",")) if args.strategies else DEFAULT_STRATEGIES))
        if args.evaluate_on:
            base = replace(base, evaluate_on=tuple(base.evaluate_on) + tuple(args.evaluate_on))
        on_ray = args.ray is not None
        if on_ray and args.background:
            raise TransferLabError("--background and --ray do not go together", "with --ray this command drives the "
                                   "runs and follows them; leave it running (the Compare page shows them too)")
        repeats = same_in_effect(expand(base, axes, args.seeds))
        if repeats:
            print(f"note: {same_in_effect_words(repeats)}")
        for note in labelled_overlap_notes(base.adapt.labelled, base.adapt.target, base.evaluate_on):
            print(f"warning: {note}")
        sweep = launch_sweep(base, store=store, start=args.background, axes=axes, seeds=args.seeds,
                             runner=runner(args))
        runs = sorted(store.list(sweep=sweep), key=lambda r: (r.created, r.id))
        cells = list(dict.fromkeys(r.name for r in runs))
        print(f"comparison {sweep}: {len(runs)} runs queued ({len(cells)} setting(s) x {args.seeds} seed(s): "
              f"{', '.join(cells)})")
        if args.background:
            print(f"follow it on the Compare page, or later: python -m tlcore compare --report {sweep}")
            return 0
        if on_ray:
            complete = "failed" not in drive_on_ray(store, [r.id for r in runs], args).values()
        else:
            run_worker(store)  # trains them here, one after the other (or waits for the live background worker)
            complete = _wait_for_sweep(store, sweep)
    rows = sweep_rows(store, sweep)
    _print_sweep(rows, verdict(rows, args.margin / 100))
    html_path, csv_path, cells_path = write_report(store, sweep, args.out or data_home() / "reports", args.margin / 100)
    print(f"report: {html_path}\ntable: {csv_path}\ncells: {cells_path}")
    return 0 if complete else EXIT_USER_ERROR


def _wait_for_sweep(store, sweep: str) -> bool:
    from tlcore.experiments.compare import wait_for_sweep

    stranded = wait_for_sweep(store, sweep)
    if stranded:
        print(f"error: the worker stopped during comparison {sweep}; {len(stranded)} run(s) did not start: resume "
              f"with `python -m tlcore compare --resume {sweep}`", file=sys.stderr)
    return not stranded
