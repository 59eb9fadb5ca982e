"""A comparison for people: the table as CSV, the charts, and one self-contained HTML page.

Kept apart from `tlcore.experiments.compare` (experiments as data: expand, launch, collect, verdict), so the
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

from tlcore.experiments.compare import SweepRow, cell_summaries, paired_comparisons, sweep_rows, verdict
from tlcore.runs import RunStore
from tlcore.experiments.stats import EQUIVALENCE_MARGIN

__all__ = ["report_csv", "cells_csv", "figures", "report_html", "write_report", "varied_settings"]


_COLUMNS = ("strategy", "seed", "status", "test_accuracy", "macro_f1", "best_epoch", "epochs_done", "wall_seconds",
            "images_per_s", "trainable_params", "peak_memory_mb", "run_id")
_HEADERS = {"strategy": "setting"}  # the run's name: its cell of the grid


def _items(rows: list[SweepRow]) -> str:
    """What the comparison's runs classify, in words ("pictures", "texts")."""
    return rows[0].items if rows else "pictures"


def _header(column: str, items: str) -> str:
    """A column's name in the CSV: the run's own items, not always pictures ("texts_per_s")."""
    return {"images_per_s": f"{items}_per_s"}.get(column, _HEADERS.get(column, column))


def report_csv(rows: list[SweepRow]) -> str:
    """Every run, one line each, with its seed.

    Args:
        rows: the comparison's runs.

    Returns:
        CSV text.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    folders = sorted({name for r in rows for name in r.folders})
    writer.writerow([_header(c, _items(rows)) for c in _COLUMNS] + [f"accuracy_on_{name}" for name in folders])
    for r in rows:
        writer.writerow(["" if getattr(r, c) is None else getattr(r, c) for c in _COLUMNS]
                        + [r.folders.get(name, "") for name in folders])
    return out.getvalue()


def _cell_lines(rows: list[SweepRow]) -> list[dict]:
    """Each cell's mean and spread over seeds, and the best cell's paired test against it."""
    paired = {c.b: c for c in paired_comparisons(rows)}
    lines = []
    for cell in cell_summaries(rows):
        c = paired.get(cell.label)
        lines.append({
            "setting": cell.label, "seeds_finished": len(cell.done), "runs": len(cell.rows),
            "mean_test_accuracy": cell.mean, "std_test_accuracy": cell.std, "mean_seconds": cell.wall_seconds,
            "best_minus_this": c.difference if c else None, "interval_low": c.low if c else None,
            "interval_high": c.high if c else None, "p_value": c.p_value if c else None,
            f"test_{_items(rows)}": c.n if c else None, "paired_test": c.test if c else "",
        })
    return lines


def cells_csv(rows: list[SweepRow], margin: float = EQUIVALENCE_MARGIN) -> str:
    """One line per cell: mean ± std over seeds, and the paired test of the best cell against it.

    Args:
        rows: the comparison's runs.

    Returns:
        CSV text.
    """
    lines = _cell_lines(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(lines[0]) if lines else ["setting"])
    writer.writeheader()
    for line in lines:
        writer.writerow({k: "" if v is None else v for k, v in line.items()})
    out.write(f"# verdict: {verdict(rows, margin)}\n")
    return out.getvalue()


def varied_settings(configs: list[dict]) -> list[str]:
    """The dotted settings that differ between the runs (what the experiment compared).

    Args:
        configs: the runs' configs, as plain data.

    Returns:
        Dotted names, e.g. ["freeze.strategy", "optimizer.lr"].
    """
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and k != "augment":
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True)
        return out

    flats = [flat(c) for c in configs]
    keys = sorted({k for f in flats for k in f})
    return [k for k in keys if k != "name" and len({f.get(k) for f in flats}) > 1]


def _share_range(values: list[float]) -> list[float] | None:
    """`_padded` for accuracies: never below 0% or above 100% (one point gave an axis from -50% to 150%)."""
    padded = _padded(values)
    return None if padded is None else [max(padded[0], -0.02), min(padded[1], 1.02)]


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
    """One point per run; with several seeds, the seeds small and each cell's mean as a labelled diamond."""
    import statistics

    seeded = len({r.seed for r in done}) > 1
    by_cell: dict[str, list[int]] = {}
    for i, r in enumerate(done):
        by_cell.setdefault(r.strategy, []).append(i)
    if not seeded:
        figure = go.Figure(go.Scatter(x=x, y=[r.test_accuracy for r in done], text=[r.strategy.replace("_", " ")
                                      for r in done], mode="markers+text", textposition="top center",
                                      cliponaxis=False))
    else:
        figure = go.Figure(go.Scatter(x=x, y=[r.test_accuracy for r in done], mode="markers", name="one seed",
                                      text=[f"{r.strategy} (seed {r.seed})" for r in done], opacity=0.5,
                                      marker=dict(size=7)))
        cells = [(label, [i for i in idx if x[i] is not None]) for label, idx in by_cell.items()]
        cells = [(label, idx) for label, idx in cells if idx]
        figure.add_trace(go.Scatter(
            x=[statistics.fmean(x[i] for i in idx) for _, idx in cells],
            y=[statistics.fmean(done[i].test_accuracy for i in idx) for _, idx in cells],
            text=[label.replace("_", " ") for label, _ in cells], mode="markers+text", textposition="top center",
            name="mean over seeds", marker=dict(symbol="diamond", size=12), cliponaxis=False))
        figure.update_layout(legend=_LEGEND_BELOW)
    figure.update_layout(title=title, xaxis_title=x_title, yaxis_title="test accuracy", margin=dict(t=60, r=30),
                         xaxis=dict(type="log" if log else "linear", range=_padded(x, log)),
                         yaxis=dict(range=_share_range([r.test_accuracy for r in done]), tickformat=".0%"))
    if not done:  # plotly's empty axes (-1 to 6, -100% to 400%) said nothing true: say what is coming
        _waiting(figure, "No run has been evaluated yet: a point appears as each run finishes")
    return figure


def _waiting(figure: go.Figure, words: str) -> None:
    """An empty chart with plain axes (accuracy 0 to 100%) and one line saying what it will show."""
    figure.update_layout(xaxis=dict(range=[0, 1], showticklabels=False), yaxis=dict(range=[0, 1], tickformat=".0%"),
                         annotations=[dict(text=words, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)])


def figures(rows: list[SweepRow]) -> dict[str, go.Figure]:
    """The comparison's plotly figures: validation curves, test accuracy per strategy, time against accuracy.

    Args:
        rows: the comparison's rows.

    Returns:
        Figures by name.
    """
    curves = go.Figure()
    for r in rows:
        seeded = any(other.seed for other in rows)
        curves.add_trace(go.Scatter(x=list(range(1, len(r.val_acc) + 1)), y=r.val_acc, mode="lines+markers",
                                    name=r.strategy.replace("_", " ") + (f" (seed {r.seed})" if seeded else "")))
    curves.update_layout(title="Validation accuracy per epoch", xaxis_title="epoch", yaxis_title="val accuracy",
                         legend=_LEGEND_BELOW, margin=dict(t=60, r=30), yaxis_tickformat=".0%", xaxis_dtick=1,
                         # one epoch's point gave plotly's own axis, 0% to 150%
                         yaxis_range=_share_range([v for r in rows for v in r.val_acc]))
    if not any(r.val_acc for r in rows):
        _waiting(curves, "No epoch has finished yet: each run's curve grows here epoch by epoch")
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


def report_html(rows: list[SweepRow], title: str, config: dict | None = None,
                margin: float = EQUIVALENCE_MARGIN) -> str:
    """One self-contained page: plotly's script inline once, every run in the table, the verdict on top.

    Args:
        rows: the comparison's runs.
        title: the page's title.
        config: the shared config, shown at the end.

    Returns:
        The HTML text.
    """
    charts = []
    for i, figure in enumerate(figures(rows).values()):
        figure.update_layout(height=420)
        charts.append(figure.to_html(full_html=False, include_plotlyjs=(i == 0)))
    head = "".join(f"<th>{_header(c, _items(rows)).replace('_', ' ')}</th>" for c in _COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(getattr(r, c)))}</td>" for c in _COLUMNS) + "</tr>"
                   for r in rows)
    lines = _cell_lines(rows)
    cells = ""
    if lines:
        cell_head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in lines[0] if k != "paired_test")
        cell_body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for k, v in line.items()
                                             if k != "paired_test") + "</tr>" for line in lines)
        tests = "; ".join(sorted({line["paired_test"] for line in lines if line["paired_test"]}))
        tests = tests or "none yet (fewer than two settings finished)"
        cells = (f"<h2>Settings (mean and standard deviation over seeds)</h2><table><tr>{cell_head}</tr>{cell_body}"
                 f"</table><p>Paired test: {html.escape(tests)}. The interval is for the best setting's accuracy "
                 "minus this one's.</p>")
    settings = f"<h2>Shared settings</h2><pre>{html.escape(json.dumps(config, indent=1))}</pre>" if config else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p><b>Verdict:</b> {html.escape(verdict(rows, margin))}</p>
{cells}
<h2>Every run</h2>
<table><tr>{head}</tr>{body}</table>
{''.join(charts)}
{settings}
<p>Made by Transfer Lab on {time.strftime('%Y-%m-%d %H:%M')}. Every run used the same split; runs differ only
in the settings compared and their seed (head initialisation, batch order, augmentation). Test accuracy is
measured on held-out {_items(rows)} that neither trained a model nor chose its best epoch.</p>
</body></html>"""


def write_report(store: RunStore, sweep: str, out_dir: str | Path,
                 margin: float = EQUIVALENCE_MARGIN) -> tuple[Path, Path, Path]:
    """Write the comparison's report files.

    Args:
        store: the run store; sweep: the comparison id; out_dir: the folder (created if needed).
        margin: the verdict's equivalence margin (a share).

    Returns:
        The paths of `<sweep>.html` (self-contained page), `<sweep>.csv` (every run) and `<sweep>-cells.csv`
        (settings, paired tests, verdict).

    Raises:
        TransferLabError: no comparison with that id.
    """
    rows = sweep_rows(store, sweep)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    configs = [r.config for r in store.list(sweep=sweep)]
    varied = varied_settings(configs)
    shared = {k: v for k, v in configs[-1].items() if k not in ("name", "seed") and k not in varied}
    shared["varied"] = varied
    html_path, csv_path = out_dir / f"{sweep}.html", out_dir / f"{sweep}.csv"
    html_path.write_text(report_html(rows, f"Comparison {sweep}: {', '.join(v for v in varied) or 'one setting'}",
                                     shared, margin))
    csv_path.write_text(report_csv(rows))
    cells_path = out_dir / f"{sweep}-cells.csv"
    cells_path.write_text(cells_csv(rows, margin))
    return html_path, csv_path, cells_path
