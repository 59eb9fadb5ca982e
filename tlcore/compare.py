"""Which layers should I freeze? Several freeze strategies on one split, one seed, one budget, side by side.

A sweep is a set of ordinary runs that share a sweep id and differ only in their
freeze plan; they queue on the background runner, finish one by one, and can be
resumed like any run. The table, the verdict and the report read the run store.
"""

from __future__ import annotations

import csv
import html
import io
import json
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import plotly.graph_objects as go

from tlcore.config import RunConfig
from tlcore.errors import TransferLabError
from tlcore.runs import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, SUCCEEDED, RunStore
from tlcore.train import resolve_manifest

__all__ = ["STRATEGY_SET", "DEFAULT_STRATEGIES", "SweepRow", "sweep_configs", "launch_sweep", "resume_sweep",
           "sweep_rows", "verdict", "report_html", "report_csv", "write_report"]

# name -> (freeze settings, one line for people). The same optimizer, lr, epochs and augmentation for all.
STRATEGY_SET: dict[str, tuple[dict, str]] = {
    "feature_extraction": ({"strategy": "feature_extraction"}, "head only, backbone frozen"),
    "freeze_first_half": ({"strategy": "freeze_first_k"}, "first half of the groups frozen"),
    "gradual": ({"strategy": "gradual", "every": 1}, "head first, one more group every epoch"),
    "full_discriminative": ({"strategy": "full", "lr_spread": 10}, "everything trains, stem 10x slower than head"),
    "full": ({"strategy": "full"}, "everything trains at one learning rate"),
}
DEFAULT_STRATEGIES = tuple(STRATEGY_SET)


def sweep_configs(base: RunConfig, strategies: tuple[str, ...] | list[str] = DEFAULT_STRATEGIES) -> list[RunConfig]:
    """One config per strategy, pinned to the same split manifest file; nothing else differs."""
    unknown = [s for s in strategies if s not in STRATEGY_SET]
    if unknown or not strategies:
        raise TransferLabError(f"unknown strategy name(s): {', '.join(unknown) or '(none given)'}",
                               f"choose from {', '.join(STRATEGY_SET)}")
    _, manifest_path = resolve_manifest(base)  # made and saved once; every run reads this file
    data = replace(base.data, manifest=str(manifest_path))
    return [replace(base, name=name, data=data, freeze=dict(STRATEGY_SET[name][0])) for name in strategies]


def launch_sweep(base: RunConfig, strategies=DEFAULT_STRATEGIES, store: RunStore | None = None,
                 start: bool = True) -> str:
    from tlcore.worker import submit

    store = store or RunStore()
    sweep = time.strftime("cmp-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
    for config in sweep_configs(base, strategies):
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


def sweep_rows(store: RunStore, sweep: str) -> list[SweepRow]:
    runs = sorted(store.list(sweep=sweep), key=lambda r: (r.created, r.id))
    if not runs:
        raise TransferLabError(f"no comparison with id {sweep}", "see the Compare page or `python -m tlcore runs list`")
    rows = []
    for run in runs:
        metrics = store.metrics(run.id)
        evaluation_path = Path(run.run_dir) / "evaluation.json"
        evaluation = json.loads(evaluation_path.read_text()) if evaluation_path.exists() else None
        monitor = run.config.get("early_stopping", {}).get("metric", "val_loss")
        best = (min if monitor == "val_loss" else max)(metrics, key=lambda m: m[monitor])["epoch"] + 1 if metrics else None
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
        ))
    return rows


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
        one_image = 100 / best.test_images if best.test_images else 0
        if one_image and gap < 2 * one_image:
            text += (f". With {best.test_images} test images one picture is {one_image:.1f} points, so the top two "
                     "are within noise")
    fastest = min(done, key=lambda r: r.wall_seconds or float("inf"))
    if fastest is not best and fastest.wall_seconds and best.wall_seconds:
        text += (f". {fastest.strategy} was fastest ({fastest.wall_seconds:.0f} s against {best.wall_seconds:.0f} s) "
                 f"at {fastest.test_accuracy:.1%}")
    if pending:
        text += f". {pending} strateg{'y is' if pending == 1 else 'ies are'} not finished yet"
    return text + "."


_COLUMNS = ("strategy", "status", "test_accuracy", "macro_f1", "best_epoch", "epochs_done", "wall_seconds",
            "images_per_s", "trainable_params", "peak_memory_mb", "run_id")


def report_csv(rows: list[SweepRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_COLUMNS)
    for r in rows:
        writer.writerow(["" if getattr(r, c) is None else getattr(r, c) for c in _COLUMNS])
    return out.getvalue()


def figures(rows: list[SweepRow]) -> dict[str, go.Figure]:
    curves = go.Figure()
    for r in rows:
        curves.add_trace(go.Scatter(x=list(range(1, len(r.val_acc) + 1)), y=r.val_acc, mode="lines+markers",
                                    name=r.strategy))
    curves.update_layout(title="Validation accuracy per epoch", xaxis_title="epoch", yaxis_title="val accuracy")
    done = [r for r in rows if r.test_accuracy is not None]
    time_plot = go.Figure(go.Scatter(x=[r.wall_seconds for r in done], y=[r.test_accuracy for r in done],
                                     text=[r.strategy for r in done], mode="markers+text", textposition="top center"))
    time_plot.update_layout(title="Test accuracy against training time", xaxis_title="seconds",
                            yaxis_title="test accuracy")
    params_plot = go.Figure(go.Scatter(x=[r.trainable_params for r in done], y=[r.test_accuracy for r in done],
                                       text=[r.strategy for r in done], mode="markers+text",
                                       textposition="top center"))
    params_plot.update_layout(title="Test accuracy against trainable parameters", xaxis_type="log",
                              xaxis_title="trainable parameters", yaxis_title="test accuracy")
    return {"curves": curves, "time": time_plot, "params": params_plot}


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def report_html(rows: list[SweepRow], title: str, config: dict | None = None) -> str:
    """One self-contained page: plotly's script inline once, every run in the table, the verdict on top."""
    charts = []
    for i, figure in enumerate(figures(rows).values()):
        figure.update_layout(height=420)
        charts.append(figure.to_html(full_html=False, include_plotlyjs=(i == 0)))
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in _COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(getattr(r, c)))}</td>" for c in _COLUMNS) + "</tr>"
                   for r in rows)
    settings = f"<h2>Shared settings</h2><pre>{html.escape(json.dumps(config, indent=1))}</pre>" if config else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p><b>Verdict:</b> {html.escape(verdict(rows))}</p>
<table><tr>{head}</tr>{body}</table>
{''.join(charts)}
{settings}
<p>Made by Transfer Lab on {time.strftime('%Y-%m-%d %H:%M')}. Every strategy used the same split, seed,
augmentation, optimizer and epoch budget; test accuracy is measured on held-out pictures that neither trained
a model nor chose its best epoch.</p>
</body></html>"""


def write_report(store: RunStore, sweep: str, out_dir: str | Path) -> tuple[Path, Path]:
    rows = sweep_rows(store, sweep)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    first = store.list(sweep=sweep)[-1].config
    shared = {k: v for k, v in first.items() if k not in ("name", "freeze")}
    html_path, csv_path = out_dir / f"{sweep}.html", out_dir / f"{sweep}.csv"
    html_path.write_text(report_html(rows, f"Freeze strategies compared ({sweep})", shared))
    csv_path.write_text(report_csv(rows))
    return html_path, csv_path
