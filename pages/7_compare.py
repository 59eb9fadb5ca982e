"""Step 7: which layers to freeze? Several strategies on the same split, seed and budget, side by side."""

from dataclasses import replace
from pathlib import Path

import pandas as pd
import streamlit as st

from pages.common import (bind, choice, experiment, known_time_estimate, measured_time_estimates, open_store, remember,
                          run_config, show_sidebar)
from tlcore.adapt import METHODS, NEEDS_TARGET
from tlcore.compare import (STRATEGY_SET, launch_sweep, method_configs, resume_sweep, strategy_configs, sweep_rows,
                            verdict)
from tlcore.estimate import format_duration
from tlcore.errors import TransferLabError
from tlcore.report import figures, report_csv, report_html
from tlcore.runs import FINISHED

experiment()
store = open_store()
st.title("7 · Compare freeze strategies or adaptation methods")
st.write("Each run trains the same model on the same split, with the same seed, augmentation, learning rate and "
         "number of epochs; only what is frozen (or only the adaptation method) differs. Runs queue and finish one "
         "after the other.")
show_sidebar()
what = st.radio("Compare", ["freeze strategies", "adaptation methods"], horizontal=True, **bind("compare.what"),
                help="Adaptation methods: each run keeps the freeze plan of the Freeze page and the target pictures "
                     "of the Data page; only the domain-adaptation method differs.")
if what == "freeze strategies":
    chosen = st.multiselect("Strategies", list(STRATEGY_SET), format_func=lambda k: f"{k.replace('_', ' ')}: "
                            f"{STRATEGY_SET[k][1]}", **bind("compare.strategies"))
    methods = None
else:
    chosen = methods = st.multiselect("Adaptation methods", list(METHODS), **bind("compare.methods"),
                                      format_func=lambda m: f"{m}: {METHODS[m][:70]}...")
target_test = st.text_input("Labelled test folder of the target domain (optional): every run is also evaluated "
                            "on it", placeholder="/home/me/paintings_labelled", **bind("compare.target_test")).strip()
c1, c2, c3 = st.columns(3)
c1.number_input("Epochs per strategy", 1, 200, help="The same for every strategy (also the Train page's).",
                **bind("train.epochs"))
c2.number_input("Learning rate (head)", 1e-6, 1.0, format="%.5f", **bind("train.lr"))
c3.selectbox("Batch size", [8, 16, 32, 64, 128], **bind("train.batch_size"))
try:
    base = run_config()
    if target_test:
        base = replace(base, evaluate_on=(target_test,))
except (TransferLabError, ValueError) as exc:
    st.error(f"the settings do not make a valid run: {exc}")
    st.stop()
st.caption(f"{len(chosen)} run(s) of {base.epochs} epoch(s) each: {base.model.name} on "
           f"{Path(base.data.source).name}, augmentation {base.augment.preset or 'custom'}, split seed "
           f"{base.data.split_seed}. " + (
               f"Freeze plan: {base.freeze.get('strategy', 'custom')}; target pictures: "
               f"{Path(base.adapt.target).name or 'none chosen'}." if methods else
               "Feature extraction is the fastest; full fine-tuning takes the longest."))
try:
    configs = (method_configs(base, methods) if methods else strategy_configs(base, chosen)) if chosen else []
    if methods and any(m in NEEDS_TARGET for m in methods) and not base.adapt.target.strip():
        raise TransferLabError("these methods need target pictures", "give their folder on the Data page")
except TransferLabError as exc:
    st.error(str(exc))
    st.stop()
known = [known_time_estimate(c) for c in configs]
if configs and all(known):
    total = sum(e.total_s for e in known)
    st.caption(f"Estimated time: about {format_duration(total)} in all, one run after the other ("
               + ", ".join(f"{c.name.replace('_', ' ')} {format_duration(e.total_s)}"
                           for c, e in zip(configs, known)) + f"; {known[0].basis}).")
elif configs and st.button("Estimate the time", key="compare.estimate",
                           help="Builds the model and times a few steps of each strategy on this machine."):
    bar = st.progress(0.0, text="Timing a few steps of each strategy (in a separate process)...")
    try:
        measured_time_estimates(configs, lambda done, total: bar.progress(
            done / total, text=f"Timing a few steps of each strategy: {done} of {total} measured"))
        st.rerun()
    except TransferLabError as exc:
        st.error(str(exc))
if st.button("Run the comparison", key="compare.start", type="primary", disabled=not chosen):
    try:
        remember("compare.sweep", launch_sweep(base, chosen, store, methods=methods))
        st.query_params["sweep"] = choice("compare.sweep")
    except (TransferLabError, ValueError) as exc:
        st.error(str(exc))

sweeps = sorted({r.sweep for r in store.list() if r.sweep}, reverse=True)
sweep = st.query_params.get("sweep") or choice("compare.sweep") or (sweeps[0] if sweeps else None)
if sweep is None:
    st.info("No comparison yet. With the sample data and the offline model, five strategies take a few minutes.")
    st.stop()


def _cancel_all(sweep: str) -> None:
    for run in store.list(sweep=sweep):
        if run.status not in FINISHED:
            store.request_cancel(run.id)


@st.fragment(run_every=3)
def results(sweep: str) -> None:
    store.reap_dead()
    try:
        rows = sweep_rows(store, sweep)
    except TransferLabError as exc:
        st.error(str(exc))
        return
    finished = sum(r.status in FINISHED for r in rows)
    st.subheader(f"Comparison {sweep}")
    st.progress(finished / len(rows), text=f"{finished} of {len(rows)} strategies finished")
    st.info(verdict(rows))
    def shown(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    table = pd.DataFrame([{"strategy": r.strategy, "status": r.status, "test accuracy": shown(r.test_accuracy, ".1%"),
                           "F1": shown(r.macro_f1, ".3f"), "best epoch": shown(r.best_epoch, "d"),
                           "seconds": shown(r.wall_seconds, ".1f"), "images/s": shown(r.images_per_s, ".0f"),
                           "trainable parameters": shown(r.trainable_params, ",d"),
                           "peak memory (MB)": shown(r.peak_memory_mb, ".0f"),
                           **{f"accuracy on {name}": shown(r.folders.get(name), ".1%")
                              for name in sorted({n for row in rows for n in row.folders})}} for r in rows])
    st.dataframe(table, hide_index=True, key=f"compare.table.{finished}")
    charts = figures(rows)
    # one chart per row: side by side, their titles and labels are clipped on a narrow window
    st.plotly_chart(charts["curves"], key=f"compare.curves.{finished}.{sum(len(r.val_acc) for r in rows)}")
    st.plotly_chart(charts["time"], key=f"compare.time.{finished}")
    st.plotly_chart(charts["params"], key=f"compare.params.{finished}")
    c1, c2, c3 = st.columns(3)
    c1.download_button("Report (HTML)", report_html(rows, f"Freeze strategies compared ({sweep})"),
                       file_name=f"{sweep}.html", mime="text/html", key=f"compare.html.{finished}")
    c2.download_button("Table (CSV)", report_csv(rows), file_name=f"{sweep}.csv", mime="text/csv",
                       key=f"compare.csv.{finished}")
    if any(r.status in ("failed", "cancelled") for r in rows):
        if c3.button("Resume the unfinished ones", key="compare.resume"):
            resume_sweep(store, sweep)
    elif finished < len(rows):
        c3.button("Cancel the comparison", key="compare.cancel", on_click=_cancel_all, args=(sweep,))
    for r in rows:
        if r.error and r.status == "failed":
            st.error(f"{r.strategy}: {r.error}")


results(sweep)
if len(sweeps) > 1:
    st.caption("Earlier comparisons: " + ", ".join(sweeps[:10]))
