"""A comparison for people: the table as CSV, the charts, and one self-contained HTML page.

Kept apart from `tlcore.compare` (experiments as data: expand, launch, collect, verdict), so the
engine never imports plotly and statistics can grow here without touching how runs are launched.
"""

from __future__ import annotations

import csv
import html
import io
import json
import time
from pathlib import Path

import plotly.graph_objects as go

from tlcore.compare import SweepRow, sweep_rows, verdict
from tlcore.runs import RunStore

__all__ = ["report_csv", "figures", "report_html", "write_report"]


_COLUMNS = ("strategy", "status", "test_accuracy", "macro_f1", "best_epoch", "epochs_done", "wall_seconds",
            "images_per_s", "trainable_params", "peak_memory_mb", "run_id")


def report_csv(rows: list[SweepRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    folders = sorted({name for r in rows for name in r.folders})
    writer.writerow(_COLUMNS + tuple(f"accuracy_on_{name}" for name in folders))
    for r in rows:
        writer.writerow(["" if getattr(r, c) is None else getattr(r, c) for c in _COLUMNS]
                        + [r.folders.get(name, "") for name in folders])
    return out.getvalue()


_LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.3, xanchor="left", x=0)  # never over the lines


def _padded(values: list[float], log: bool = False) -> list[float] | None:
    """An axis range with room for the labels beside the first and last points (plotly clips them otherwise)."""
    import math

    values = [math.log10(v) if log else v for v in values if v is not None and (v > 0 or not log)]
    if not values:
        return None
    low, high = min(values), max(values)
    pad = (high - low) * 0.2 or (0.5 if log else max(abs(high) * 0.2, 1.0))
    return [low - pad, high + pad]


def _points(done: list[SweepRow], x: list[float], title: str, x_title: str, log: bool = False) -> go.Figure:
    figure = go.Figure(go.Scatter(x=x, y=[r.test_accuracy for r in done], text=[r.strategy.replace("_", " ")
                                  for r in done], mode="markers+text", textposition="top center",
                                  cliponaxis=False))
    figure.update_layout(title=title, xaxis_title=x_title, yaxis_title="test accuracy", margin=dict(t=60, r=30),
                         xaxis=dict(type="log" if log else "linear", range=_padded(x, log)),
                         yaxis=dict(range=_padded([r.test_accuracy for r in done]), tickformat=".0%"))
    return figure


def figures(rows: list[SweepRow]) -> dict[str, go.Figure]:
    curves = go.Figure()
    for r in rows:
        curves.add_trace(go.Scatter(x=list(range(1, len(r.val_acc) + 1)), y=r.val_acc, mode="lines+markers",
                                    name=r.strategy.replace("_", " ")))
    curves.update_layout(title="Validation accuracy per epoch", xaxis_title="epoch", yaxis_title="val accuracy",
                         legend=_LEGEND_BELOW, margin=dict(t=60, r=30), yaxis_tickformat=".0%", xaxis_dtick=1)
    done = [r for r in rows if r.test_accuracy is not None]
    return {"curves": curves,
            "time": _points(done, [r.wall_seconds for r in done], "Test accuracy against training time", "seconds"),
            "params": _points(done, [r.trainable_params for r in done], "Test accuracy against trainable parameters",
                              "trainable parameters", log=True)}


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
