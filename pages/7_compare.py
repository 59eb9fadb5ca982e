"""Step 7: which setting works best on my data? A grid of settings on one split, repeated over seeds."""

import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import streamlit as st

from pages.common import (augmentation_words, bind, change, experiment, items_word, known_time_estimate,
                          measured_time_estimates, number_bounds, open_store, run_config, run_model_spec,
                          save_experiment, show_sidebar, with_current)
from tlcore.config import LABELLED_MONITORS
from tlcore.spec.adapt_spec import METHODS, NEEDS_TARGET, labelled_overlap_notes
from tlcore.inputs.augment_spec import PRESETS
from tlcore.experiments.compare import (STRATEGY_SET, candidate_methods, cell_summaries, launch_sweep,
                                        progress_rows, progress_words, resume_sweep, running_progress, sweep_rows, verdict)
from tlcore.experiments.timing import comparison_estimate_words, format_duration, timing_words
from tlcore.errors import TransferLabError
from pages.experiment import PICKED_AXES, setting
from pages.state import texts_chosen
from tlcore.text.catalog import DEFAULT_TEXT_MODEL
from tlcore.core.schema import counted
from tlcore.experiments.grid import AXES, Axis, expand, parse_axis, same_in_effect, same_in_effect_words
from tlcore.running.on_ray import RAY_RUNNER, ray_installed, spawn_driver
from tlcore.experiments.report import cells_csv, figures, report_csv, report_html
from tlcore.runs import FINISHED

# What each option of a setting picked from a list means: said under the list, so the chips stay short.
MEANING = {
    "freeze.strategy": lambda k: STRATEGY_SET[k][1] if k in STRATEGY_SET else "",
    "adapt.method": lambda m: METHODS.get(m, ""),
    "augment.preset": lambda p: PRESETS[p][0] if p in PRESETS else "",
}


@st.cache_data(show_spinner="Comparing your labelled target pictures with the other folders...", ttl=60)
def overlap_notes(labelled: str, target: str, evaluated_on: tuple[str, ...]) -> list[str]:
    """Where the few labelled target pictures are also the target or the target test (read again after a minute)."""
    return labelled_overlap_notes(labelled, target, evaluated_on)


def axes_for_the_data() -> list[str]:
    """The settings worth comparing on this kind of data: those its runs read (a setting's declared modalities:
    augmentation presets and adaptation are the pictures', text columns the texts')."""
    kind = "texts" if texts_chosen() else "images"
    return [path for path in AXES if kind in setting(path).leaf.meta.modalities]


def picked_values(path: str) -> list:
    """The values offered for a setting picked from a list; for texts, the text models in place of image models."""
    if path == "model.name" and texts_chosen():
        return [DEFAULT_TEXT_MODEL]
    if texts_chosen():  # texts have no labelled target pictures to choose the best epoch on
        return [v for v in PICKED_AXES[path] if v not in LABELLED_MONITORS]
    return list(PICKED_AXES[path])


def axis_values(path: str, container) -> Axis | None:
    """The values of one varied setting, from a list or typed; None (and an error shown) when they do not parse."""
    label = AXES[path][0]
    if path in PICKED_AXES:
        values = container.multiselect(f"{label[0].upper()}{label[1:]}s to compare" if path != "freeze.strategy"
                                       else "Strategies", with_current(f"app.vary.{path}", picked_values(path)),
                                       format_func=lambda v: str(v).replace("_", " "),
                                       **bind("compare", f"app.vary.{path}"))
        if path == "adapt.method":  # "auto": every method that can act on the freeze plan; the verdict then names
            # the one chosen without the target pictures' labels
            try:
                fitting = list(candidate_methods(experiment().run_config()))
            except TransferLabError:  # settings mid-edit (said where they are set): every method with a target
                fitting = list(PICKED_AXES[path])
            container.button("Every method that fits this freeze plan", key="compare.all_methods",
                             on_click=change, args=({"app.vary.adapt.method": fitting},),
                             help="The comparison's verdict then names the method chosen without your target "
                                  "pictures' labels (with only the head training: AdaBN where it changes the class "
                                  "of more than 8% of them, no adaptation otherwise; measured on 12 shifts, README) "
                                  "among: " + ", ".join(fitting) + ".")
        meanings = [f"**{str(v).replace('_', ' ')}**: {MEANING[path](v)}" for v in values
                    if path in MEANING and MEANING[path](v)]
        if meanings:
            container.caption("  \n".join(meanings))
        return Axis(path, tuple(values)) if values else None
    text = container.text_input(f"Values of {label} (comma-separated)", help="e.g. 1e-3, 3e-4; `none` for no value",
                                **bind("compare", f"app.vary.{path}"))
    try:
        return parse_axis(f"{path}={text}")
    except TransferLabError as exc:
        container.error(str(exc))
        return None


experiment()
store = open_store()
st.title("7 · Compare settings")
st.write("Each run trains on the same split; only the settings you vary differ, and each setting can be repeated "
         "with several seeds (the head's start, the batch order and the augmentation change; the split never does). "
         f"Runs queue and finish one after the other; the verdict pairs them on the same test {items_word()}.")
show_sidebar()
a1, a2 = st.columns(2)
_offered = axes_for_the_data()
what = a1.selectbox("Compare", with_current("app.compare_what", _offered), format_func=lambda p: AXES.get(p, (p,))[0],
                    **bind("compare", "app.compare_what"),
                    help="One setting varied, everything else as on the other pages." + ("" if texts_chosen() else
                         " Adaptation methods keep the freeze plan of the Freeze page and the target pictures of the "
                         "Data page; only the method differs."))
also = a2.selectbox("and also vary (a grid)", with_current("app.compare_also", [""] + [p for p in _offered if p != what]),
                    **bind("compare", "app.compare_also"),
                    format_func=lambda p: AXES.get(p, (p,))[0] if p else "nothing else")
if what not in AXES or (also and (also not in AXES or also == what)):
    st.error("choose settings to compare from the list (and a different one to vary with it)")
    st.stop()
axes = [axis_values(what, st)] + ([axis_values(also, st)] if also else [])  # full width: every chip shows
target_test = "" if texts_chosen() else st.text_input(  # a target domain is the pictures' so far
    "Labelled test folder of the target domain (optional): every run is also evaluated on it",
    placeholder="/home/me/paintings_labelled", **bind("compare", "app.target_test")).strip()
c1, c2, c3, c4 = st.columns(4)
c1.number_input("Epochs per run", help="The same for every run (the experiment's, also shown on the Train page).",
                **number_bounds("epochs", 1, 200), **bind("compare", "epochs"))
c2.number_input("Learning rate (head)", format="%.2e", **number_bounds("optimizer.lr", 1e-7, 10.0),
                **bind("compare", "optimizer.lr"))
c3.selectbox("Batch size", with_current("batch_size", [8, 16, 32, 64, 128, "auto"]), **bind("compare", "batch_size"),
             format_func=lambda b: "auto (largest that fits the GPU)" if b == "auto" else str(b))
seeds = c4.number_input("Seeds per setting", **number_bounds("app.compare_seeds", 1, 10),
                        help="Repeat every setting with seeds 0..N-1: the table then "
                        "shows mean ± standard deviation and the charts one point per seed. 3 is a good start.",
                        **bind("compare", "app.compare_seeds"))
try:
    base = run_config()
    if target_test:
        base = replace(base, evaluate_on=(target_test,))
except (TransferLabError, ValueError) as exc:
    st.error(f"the settings do not make a valid run: {exc}")
    st.stop()
ready = all(axes)
try:
    cells = expand(base, axes, seeds) if ready else []
    needing = [m for a in axes if a and a.path == "adapt.method" for m in a.values if m in NEEDS_TARGET]
    if needing and not base.adapt.target.strip():
        raise TransferLabError(f"{', '.join(needing)} need(s) target pictures", "give their folder on the Data page")
except TransferLabError as exc:
    st.error(str(exc))
    st.stop()
for note in overlap_notes(base.adapt.labelled, base.adapt.target, tuple(base.evaluate_on)):
    st.warning(note[0].upper() + note[1:] + ".")
repeats = same_in_effect(cells)
if repeats:  # identical in effect: said, and run once (launch_sweep leaves the repeats out)
    st.info(same_in_effect_words(repeats) + ".")
    cells = [cell for cell in cells if cell.label not in repeats]
runs = len(cells) * seeds
epochs = "a varied number of epochs"
st.caption(f"{counted(runs, 'run')} of {epochs if 'epochs' in (what, also) else counted(base.epochs, 'epoch')} each "
           f"({counted(len(cells), 'setting')} x {counted(seeds, 'seed')}): {run_model_spec().name} "
           f"on {Path(base.data.source).name}, augmentation {augmentation_words(base)}, split seed "
           f"{base.data.split_seed}. " + (
               f"Freeze plan: {base.freeze.name}; target pictures: "
               f"{Path(base.adapt.target).name or 'none chosen'}." if what == "adapt.method" else
               "Feature extraction is the fastest; full fine-tuning takes the longest."
               if what == "freeze.strategy" else ""))
first_seed = [cell.configs[0] for cell in cells]  # seeds take the time of seed 0
known = [known_time_estimate(c) for c in first_seed]
if first_seed and not all(known) and st.button(
        "Estimate the time", key="compare.estimate",
        help="Builds the model and times a few steps on this machine: once for the model, then the training steps of "
             "each stage the settings train (model, freeze plan, batch and augmentation change what a step costs; "
             "learning rates, schedules and seeds share one measurement)."):
    timing = timing_words(first_seed)
    bar = st.progress(0.0, text=f"{timing} (in a separate process)...")
    started = time.monotonic()
    try:  # shown in this run of the page: a rerun here once lost a click on "Run the comparison" made meanwhile
        known = measured_time_estimates(first_seed, lambda phase, share: bar.progress(
            share, text=f"{timing}: {phase}, {time.monotonic() - started:.0f} s so far"))
        bar.empty()
    except TransferLabError as exc:
        st.error(str(exc))
if first_seed and all(known):
    st.caption(comparison_estimate_words([c.name for c in first_seed], known, seeds))
r1, r2 = st.columns(2)
run_on = r1.radio("Run on", with_current("app.compare_run_on", ["this machine", "Ray"]), horizontal=True,
                  **bind("compare", "app.compare_run_on"),
                  help="Ray: each run is a task on a Ray cluster (a GPU each where it has GPUs), or on a Ray instance "
                       "started here; this page follows the runs either way.")
if run_on == "Ray":
    address = r2.text_input("Ray cluster address (empty: start one here)", placeholder="auto, or ray://head:10001",
                            **bind("compare", "app.ray_address")).strip()
    if not ray_installed():
        st.error("Ray is not installed here: pip install -r requirements-scale.txt")
if st.button("Run the comparison", key="compare.start", type="primary",
             disabled=not cells or (run_on == "Ray" and not ray_installed())):
    queueing = st.progress(0.0, text="Queueing the comparison...")  # the first check imports the model's library
    try:
        on_ray = run_on == "Ray"
        sweep_id = launch_sweep(base, store=store, axes=axes, seeds=seeds, runner=RAY_RUNNER if on_ray else None,
                                on_progress=lambda words, done, total: queueing.progress(
                                    done / total, text=f"Queueing the comparison: {words}"))
        queueing.empty()
        if on_ray:
            spawn_driver(sweep_id, address)
        experiment().remember_sweep(sweep_id)
        save_experiment()
        st.query_params["sweep"] = sweep_id
    except (TransferLabError, ValueError) as exc:
        queueing.empty()
        st.error(str(exc))

mine = experiment().sweeps
others = [s for s in sorted({r.sweep for r in store.list() if r.sweep}, reverse=True) if s not in mine]
sweep = st.query_params.get("sweep") or (mine[-1] if mine else None)
if sweep is None:
    st.info("No comparison in this experiment yet. With the sample data and the offline model, five strategies "
            "take a few minutes.")
    if others:
        st.caption("Comparisons of other experiments (open one with ?sweep=ID): " + ", ".join(others[:10]))
    st.stop()


def _cancel_all(sweep: str) -> None:
    for run in store.list(sweep=sweep):
        if run.status not in FINISHED:
            store.request_cancel(run.id)


def _progress(sweep: str) -> None:
    """How far the comparison is, with the running run's own count; redrawn every second while a run is unfinished
    (at the results' 3 s, each state stood up to 3.7 s)."""
    try:
        rows = progress_rows(store, sweep)  # what the count needs only: it is read every second
    except TransferLabError:
        return  # the results below say why
    share, inside = running_progress(store, rows)  # the running runs' own progress, not only "1 running"
    st.progress(share, text=progress_words(rows) + (f" · {inside}" if inside else ""))


def _results(sweep: str, live: bool) -> None:
    """The comparison's table, charts and verdict; `live`: redrawn every 3 s while any of its runs is unfinished."""
    store.reap_dead()
    try:
        rows = sweep_rows(store, sweep)
    except TransferLabError as exc:
        st.error(str(exc))
        return
    finished = sum(r.status in FINISHED for r in rows)
    if live and finished == len(rows):
        st.rerun()  # the last run just finished: draw the page once more, without the timers
    margin = st.number_input("Equivalence margin (accuracy points)", **number_bounds("app.equivalence_margin", 0.1, 50.0),
                             help="Two settings are called as good as each other only when the 95% interval of "
                                  "their difference lies within this many points either way (an equivalence test). "
                                  "A difference that is merely not significant is 'cannot tell'.",
                             **bind("compare", "app.equivalence_margin"))
    st.info(verdict(rows, margin / 100))

    def shown(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    summaries = cell_summaries(rows)
    if any(len(c.rows) > 1 for c in summaries):
        st.markdown("**Each setting over its seeds**")
        st.dataframe(pd.DataFrame([{
            "setting": c.label, "seeds finished": f"{len(c.done)} of {len(c.rows)}",
            "mean test accuracy": shown(c.mean, ".1%"), "± std (points)": shown(c.std and 100 * c.std, ".1f"),
            "mean seconds": shown(c.wall_seconds, ".0f")} for c in summaries]), hide_index=True,
            key=f"compare.cells.{finished}")
        st.markdown("**Every run**")
    # the results first (a target folder's accuracy was past the right edge at 1400 px), then what they cost
    table = pd.DataFrame([{"setting": r.strategy, "seed": r.seed, "status": r.status, "test accuracy": shown(r.test_accuracy, ".1%"),
                           **{f"accuracy on {name}": shown(r.folders.get(name), ".1%")
                              for name in sorted({n for row in rows for n in row.folders})},
                           **({"target fit (no labels)": shown(r.target_score, ".3f")}
                              if any(row.target_score is not None for row in rows) else {}),
                           "F1": shown(r.macro_f1, ".3f"), "best epoch": shown(r.best_epoch, "d"),
                           "seconds": shown(r.wall_seconds, ".1f"), f"{items_word()}/s": shown(r.images_per_s, ".0f"),
                           "trainable parameters": shown(r.trainable_params, ",d"),
                           "peak memory (MB)": shown(r.peak_memory_mb, ".0f")} for r in rows])
    st.dataframe(table, hide_index=True, key=f"compare.table.{finished}")
    if any(r.target_score is not None for r in rows):
        st.caption("Target fit: how well each run fits the target pictures, measured without their labels "
                   "(information score: confident answers spread over the classes; higher is better, up to "
                   "log(classes)). It compares runs on the same target pictures; a labelled target folder, when you "
                   "give one, is the real test.")
    if any(r.labelled_accuracy is not None for r in rows):
        st.caption("The accuracy on your few labelled target pictures (Data page) is measured on pictures no run "
                   "trained on; with so few it is a rough guide, but it is the target's own labels, so the verdict "
                   "chooses by it first.")
    charts = figures(rows)
    # one chart per row: side by side, their titles and labels are clipped on a narrow window
    st.plotly_chart(charts["curves"], key=f"compare.curves.{finished}.{sum(len(r.val_acc) for r in rows)}")
    st.plotly_chart(charts["time"], key=f"compare.time.{finished}")
    st.plotly_chart(charts["params"], key=f"compare.params.{finished}")
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button("Report (HTML)", report_html(rows, f"Comparison {sweep}", margin=margin / 100),
                       file_name=f"{sweep}.html", mime="text/html", key=f"compare.html.{finished}")
    c2.download_button("Runs (CSV)", report_csv(rows), file_name=f"{sweep}.csv", mime="text/csv",
                       key=f"compare.csv.{finished}")
    c3.download_button("Settings and tests (CSV)", cells_csv(rows, margin / 100), file_name=f"{sweep}-cells.csv", mime="text/csv",
                       key=f"compare.cells_csv.{finished}")
    if any(r.status in ("failed", "cancelled") for r in rows):
        if c4.button("Resume the unfinished ones", key="compare.resume"):
            resume_sweep(store, sweep)
            st.rerun()  # runs are queued again: the live view follows them
    elif finished < len(rows):
        c4.button("Cancel the comparison", key="compare.cancel", on_click=_cancel_all, args=(sweep,))
    for r in rows:
        if r.error and r.status == "failed":
            st.error(f"{r.strategy}: {r.error}")


live_results, still_results = st.fragment(run_every=3)(_results), st.fragment(_results)
_running = any(r.status not in FINISHED for r in store.list(sweep=sweep))
st.subheader(f"Comparison {sweep}")
(st.fragment(run_every=1)(_progress) if _running else _progress)(sweep)
(live_results if _running else still_results)(sweep, _running)  # no refresh once nothing runs
earlier = [s for s in reversed(mine) if s != sweep]
if earlier:
    st.caption("This experiment's earlier comparisons: " + ", ".join(earlier[:10]))
if others:
    st.caption("Comparisons of other experiments: " + ", ".join(others[:10]))
