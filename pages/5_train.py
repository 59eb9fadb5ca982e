"""Step 5: train in the background and watch it live; the run outlives the page."""

import json
import os
import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
import streamlit as st

from pages.common import (
    SAMPLE_DATA, TlcoreJob, bind, change, choice, experiment, experiment_runs_first, gpu_speed_notes, known_time_estimate,
    measured_epoch_seconds, measured_time_estimates, new_experiment, number_bounds, open_store, run_config,
    items_word, run_model_spec, save_experiment, setting_widget, settings_not_shown, show_sidebar, texts_chosen,
    with_current,
)
from tlcore.spec.adapt_spec import DEFAULT_WEIGHTS, HEAD_ONLY_WEIGHTS, METHODS, NEEDS_TARGET, AdaptConfig
from tlcore.config import LABELLED_MONITORS, MONITORS, RunConfig
from pages.experiment import Experiment, setting
from tlcore.experiments.run_labels import run_label
from tlcore.core.schema import counted
from tlcore.core.events import Progress, standing
from tlcore.modality import for_model
from tlcore.results.artifacts import STATE
from tlcore.errors import TransferLabError
from tlcore.running.worker import ensure_worker, submit

s = st.session_state
experiment()


def _use_lr(lr: float) -> None:
    change({"optimizer.lr": lr})


def _open_settings(run_id: str) -> None:
    """A finished run's settings as a new experiment, to change one thing and run again."""
    opened = Experiment.from_config(RunConfig.from_dict(store.get(run_id).config))
    if Path(opened.get("data.source")).resolve() != SAMPLE_DATA.resolve():
        opened.set("app.data_kind", "Folder on this computer")
        opened.set("app.folder", opened.get("data.source"))
    new_experiment(opened)


store = open_store()
st.title("5 · Train")
show_sidebar()

c1, c2, c3 = st.columns(3)
setting_widget("train", "epochs", c1)
setting_widget("train", "batch_size", c2,
               format_func=lambda b: "auto (largest that fits the GPU)" if b == "auto" else str(b))
setting_widget("train", "optimizer.lr", c3)
setting_widget("train", "optimizer.weight_decay", c1)
setting_widget("train", "schedule.name", c2)
setting_widget("train", "early_stopping.patience", c3)
setting_widget("train", "optimizer.name", c1)
_CHOSEN_BY = {"val_loss": "validation loss", "val_acc": "validation accuracy",
              "labelled_loss": "loss on your labelled target pictures",
              "labelled_acc": "accuracy on your labelled target pictures"}
_kept_apart = AdaptConfig(labelled=choice("adapt.labelled"), labelled_use=choice("adapt.labelled_use"))
c2.selectbox("Best epoch chosen by", with_current("early_stopping.metric", list(MONITORS)
                                                  if _kept_apart.labelled_kept_apart else
                                                  [m for m in MONITORS if m not in LABELLED_MONITORS]),
             format_func=lambda m: _CHOSEN_BY.get(m, m),
             help="Which epoch's weights are kept (and what early stopping watches)." + ("" if texts_chosen() else
                  " With a few labelled target pictures (Data page, used to choose), every epoch is scored on them "
                  "and the one that does best on the target can be kept, rather than the one best on your validation "
                  "split."),
             **bind("train", "early_stopping.metric"))
_following = {path: value for path, value in choice("app.recommended").items() if choice(path) == value
              and value != setting(path).default}
if _following:  # said on the page: values the app chose because of the data and the strategy
    _why = [reason for path in _following for m, trains, value, reason in setting(path).leaf.meta.recommended
            if value == _following[path]]
    st.caption("For " + ("texts" if texts_chosen() else "pictures") + " with this freeze plan: "
               + ", ".join(f"{setting(path).leaf.meta.label.lower()} {value:g}" for path, value in _following.items())
               + (f" (the field's usual: {_why[0]})" if _why else "") + ". Change them to choose your own.")
_DRAWN = {"epochs", "batch_size", "optimizer.lr", "optimizer.weight_decay", "schedule.name", "early_stopping.patience",
          "optimizer.name", "early_stopping.metric", "decoded_cache", "augment_on", "compile"}
with st.expander("All settings"):
    st.caption("Every other setting of the run, each with its own help; the defaults suit most runs. The same "
               "names work in a config file and in `--vary` (e.g. optimizer.label_smoothing).")
    _texts, _strategy = texts_chosen(), choice("freeze.strategy")
    for _group, _title in (("train", "Training"), ("runtime", "Running")):
        _paths = settings_not_shown(_group, _DRAWN, _texts, _strategy)
        if _paths:
            st.markdown(f"**{_title}**")
            _columns = st.columns(3)
            for _index, _path in enumerate(_paths):
                setting_widget("train", _path, _columns[_index % 3])


def _adaptation_settings() -> None:
    """The domain-adaptation method and its weight (pictures only: a text run refuses a method)."""
    st.caption("When the pictures the model will meet look different from your labelled ones (paintings instead of "
               "photos, a new camera). The target pictures are chosen on the Data page.")
    method = st.selectbox("Method", with_current("adapt.method", list(METHODS)),
                          help="Which one helps depends on the data: compare them.", **bind("train", "adapt.method"))
    st.caption(METHODS[method])
    if method != "none":
        head_only = f", {HEAD_ONLY_WEIGHTS[method]:g} when only the head trains" if method in HEAD_ONLY_WEIGHTS else ""
        st.number_input(f"Weight of the method's loss (empty: its default, {DEFAULT_WEIGHTS.get(method, 0):g}"
                        f"{head_only})", format="%.4f", **number_bounds("adapt.weight", 0.0, 100.0),
                        **bind("train", "adapt.weight"),
                        disabled=method == "adabn")
    if method in NEEDS_TARGET and not choice("adapt.target").strip():
        st.warning(f"{method} needs target pictures: give their folder on the Data page (Target domain).")


if texts_chosen():
    st.caption("Domain adaptation (to a target domain unlike the labelled data) is for pictures so far.")
else:
    with st.expander("Domain adaptation" + ("" if choice("adapt.method") == "none" else f": {choice('adapt.method')}"),
                     expanded=choice("adapt.method") != "none"):
        _adaptation_settings()
with st.expander("GPU speed"):
    g1, g2, g3 = st.columns(3)
    if texts_chosen():  # texts are tokenized once, in memory: no pictures to decode or to augment on a GPU
        st.caption("What makes a run fast on a GPU: for texts, compiling the model. 'auto' turns it on when the run "
                   "has a CUDA GPU; on this kind of machine it changes nothing.")
    else:
        st.caption("What makes a run fast on a GPU, where decoding JPEGs on the CPU would leave the GPU waiting. "
                   "'auto' turns each on when the run has a CUDA GPU; on this kind of machine it changes nothing.")
        setting_widget("train", "decoded_cache", g1, label="Decoded-image cache",
                       help="Each picture decoded once, at the size the model needs, into one file the runs read (no "
                            "JPEG decoding per epoch). Built on a run's first use, with progress in its log; "
                            "`python -m tlcore data cache PATH --model NAME` builds it ahead.")
        setting_widget("train", "augment_on", g2,
                       help="device: whole batches augmented on the GPU from the cache (flips, quarter turns, "
                            "zoom/shift/rotation, random resized crop, colour, blur). Presets with noise, cut-out or "
                            "HSV shifts stay on the CPU, and the run says so.",
                       format_func=lambda v: {"device": "the GPU", "cpu": "the CPU"}.get(v, v))
    setting_widget("train", "compile", g3, label="Compile the model (torch.compile)",
                   help="Faster steps after a compile of a minute or so at the start; if compiling fails the run goes "
                        "on without it and says so.")
    for note in ([] if texts_chosen() else gpu_speed_notes()):
        st.caption(note)
try:
    config = run_config()
except (TransferLabError, ValueError) as exc:
    st.error(f"the settings do not make a valid run: {exc}")
    st.stop()



_LR_CANCELLED = "The learning-rate test was cancelled: the settings are as they were."


def _start_lr_find(config: RunConfig) -> None:
    job = s.get("train.lr_job")
    if job is None or not job.running:
        s["train.lr_job"] = TlcoreJob.start("lr-find", [config], "--progress", "{folder}/progress.jsonl",
                                              "--out", "{folder}/curve.json")
        s.pop("train.lr_curve", None)
        s.pop("train.lr_error", None)


@st.fragment(run_every=1)
def lr_find_progress(job: TlcoreJob) -> None:
    """The finder's steps as they happen; a Cancel; the curve and its suggestion once done."""
    steps = [json.loads(line) for line in job.lines("progress.jsonl")]  # none yet: the file is not there
    if job.running:
        total = steps[-1]["steps"] if steps else 1
        st.progress(len(steps) / total, text=f"Learning-rate test: step {len(steps)} of {total}" if steps else
                    "Learning-rate test: building the model (in a separate process)...")
        if steps:
            st.line_chart(pd.DataFrame(steps).set_index("lr")["loss"], height=200, x_label="learning rate",
                          y_label="loss (smoothed)")
        st.button("Cancel the learning-rate test", key="train.lr_cancel", on_click=job.cancel)
        return
    s.pop("train.lr_job", None)
    if job.error():
        s["train.lr_error"] = _LR_CANCELLED if job.error() == "cancelled" else job.error()
    else:
        s["train.lr_curve"] = json.loads((job.folder / "curve.json").read_text())
    st.rerun(scope="app")


st.button("Find a learning rate", key="train.lr_find", help="A short test that raises the lr step by step.",
          on_click=_start_lr_find, args=(config,), disabled=s.get("train.lr_job") is not None)
if s.get("train.lr_job") is not None:
    lr_find_progress(s["train.lr_job"])
if s.get("train.lr_error"):  # your own cancel is news, not an error
    (st.info if s["train.lr_error"] == _LR_CANCELLED else st.error)(s["train.lr_error"])
if s.get("train.lr_curve"):
    curve = s["train.lr_curve"]
    figure = go.Figure(go.Scatter(x=curve["lrs"], y=curve["losses"], mode="lines"))
    figure.add_vline(x=curve["suggestion"], line_dash="dash")
    figure.update_layout(xaxis_type="log", xaxis_title="learning rate", yaxis_title="loss", height=280,
                         title=f"Suggested: {curve['suggestion']:.1e} (steepest fall of the loss)")
    st.plotly_chart(figure, key="train.lr_chart")
    # A callback runs before the widgets are drawn, the only moment a widget's value may be set.
    st.button(f"Use {curve['suggestion']:.1e}", key="train.use_lr", on_click=_use_lr, args=(float(curve["suggestion"]),))

try:
    for_model(config.model.name).check_model(config.model)  # the run's kind of model: its weights are here
    cannot_start = None
except TransferLabError as exc:
    cannot_start = str(exc)
    st.error(f"This model cannot train on this machine yet: {cannot_start}. Choose another model on the Model page.")
measured = measured_epoch_seconds(store, config)
estimate = known_time_estimate(config)
if measured:
    seconds, source_run, start = measured
    st.caption(f"About {seconds:.1f} s per epoch on this machine (run {source_run}, same data, model and strategy): "
               f"{counted(config.epochs, 'epoch')} take about {seconds * config.epochs:.0f} s, plus the start" + (
                   f" (that run took {start:.0f} s besides its epochs: building the model, and for a head-only run "
                   "extracting features, which later runs on the same pictures read from the cache)."
                   if start is not None else "."))
elif estimate:
    st.caption(f"Estimated: {estimate.describe()}.")
elif st.button("Estimate the time", key="train.estimate", disabled=cannot_start is not None,
               help="Builds the model and times a few training steps on this machine (seconds to a minute)."):
    words = "Timing a few training steps on this machine (in a separate process)"
    bar, started = st.progress(0.0, text=f"{words}..."), time.monotonic()

    def show_time(phase: str, share: float) -> None:
        bar.progress(share, text=f"{words}: {phase}, {time.monotonic() - started:.0f} s so far, usually under 30 s")
    try:
        estimate = measured_time_estimates([config], show_time)[0]
        st.caption(f"Estimated: {estimate.describe()}.")
    except TransferLabError as exc:
        st.error(str(exc))
    bar.empty()
if st.button("Start training", key="train.start", type="primary", disabled=cannot_start is not None):
    try:
        run = submit(config, store)
        experiment().remember_run(run.id)
        save_experiment()
        st.query_params["run"] = run.id
    except TransferLabError as exc:
        st.error(str(exc))

# A refresh loses session state but not the URL; coming back later shows the newest run.
runs = experiment_runs_first(store.list())
mine = experiment().runs
run_id = st.query_params.get("run") or (mine[-1] if mine else None)


def earlier_runs(exclude: str | None) -> None:
    """The store's other runs, this experiment's first, each labelled by what it ran."""
    others = [r for r in runs if r.id != exclude][:10]
    if others:
        with st.expander("Earlier runs (this experiment's first)"):
            st.dataframe(pd.DataFrame([{"id": r.id, "run": run_label(r.config, experiment().config),
                                        "experiment": "this one" if r.id in experiment().runs else "another",
                                        "status": r.status, "epochs": f"{r.epochs_done}/{r.epochs}"}
                                       for r in others]), hide_index=True)


if run_id is None:
    if cannot_start is None:
        st.info(f"No run in this experiment yet: Start training runs {run_model_spec().name} "
                f"({config.freeze.name}) for {counted(config.epochs, 'epoch')} on "
                f"{Path(config.data.source).name}.")
    earlier_runs(None)
    st.stop()


@st.fragment(run_every=1)
def live(run_id: str) -> None:
    store.reap_dead()
    try:
        if st.session_state.get("train.cancel"):  # this redraw's click, said below at once, not at the next redraw
            store.request_cancel(run_id)
        run = store.get(run_id)
    except TransferLabError as exc:
        st.error(str(exc))
        return
    stopping = run.status == "running" and store.cancel_requested(run.id)
    status = "cancelling (at the next step)" if stopping else run.status
    st.subheader(f"Run {run.id}: {run.name}")
    st.caption(run_label(run.config, experiment().config) + ("" if experiment().owns(run.id, run.sweep) else
                                                              " (a run of another experiment)"))
    metrics = store.metrics(run.id)
    progress = store.events(run.id, kinds=("progress",), last=1)
    step = Progress.from_data(progress[0]["data"]) if progress else None
    # a count that stands still (a model being built, a loader's first batch, a slow step) says for how long
    # counted from the last thing the run said: a resumed run's old events aside, an epoch's end included
    said = max([run.started or 0.0] + [e["ts"] for e in progress + store.events(run.id, kinds=("epoch",), last=1)])
    still = standing(said, time.time()) if run.status == "running" else ""
    items = for_model(str(run.config.get("model", {}).get("name", ""))).items_word  # the run's own, not the page's
    if step and step.phase == "prepare" and run.epochs_done == 0 and run.status == "running":
        # before anything trains: reading and splitting the data (half a minute for a million texts)
        st.progress(step.share, text=f"{status}: {progress[0]['message']}{still}, before training")
    elif step and step.phase == "features" and run.epochs_done == 0 and run.status == "running":
        # before epoch 1 can start, a head-only run reads every picture once through the frozen backbone
        st.progress(step.share, text=f"{status}: features of {step.done} of {step.total} {step.unit or items}{still} "
                    f"(once; then {'the epoch trains' if run.epochs == 1 else f'the {run.epochs} epochs train'} the "
                    "head on them)")
    else:
        within = step is not None and step.phase == "train" and step.epoch == run.epochs_done
        done = run.epochs_done + (step.share if within and run.status == "running" else 0)  # as the words say
        where = (f"epoch {run.epochs_done + 1} of {run.epochs}, batch {step.step} of {step.steps}"
                 if within and run.status == "running" else f"{run.epochs_done} of {counted(run.epochs, 'epoch')} done")
        if run.status == "running" and run.epochs_done >= run.epochs:  # the last epoch ended: the test split is next
            where += f"; evaluating on the held-out test {items}"
        st.progress(min(1.0, done / max(1, run.epochs)), text=f"{status}: {where}{still}")
    if run.error:
        (st.error if run.status == "failed" else st.info)(run.error)
    for warning in store.events(run.id, kinds=("warning",)):
        st.warning(warning["message"])
    if metrics:
        frame = pd.DataFrame(metrics)
        frame["epoch"] += 1
        figure = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
        for column, (row, col), colour in (("train_loss", (1, 1), "#e76f51"), ("val_loss", (1, 1), "#2a9d8f"),
                                           ("labelled_loss", (1, 1), "#6a4c93"), ("train_acc", (1, 2), "#e76f51"),
                                           ("val_acc", (1, 2), "#2a9d8f"), ("labelled_acc", (1, 2), "#6a4c93")):
            if column not in frame:  # the labelled target pictures: only when they choose the best epoch
                continue
            figure.add_trace(go.Scatter(x=frame["epoch"], y=frame[column], name=column.rsplit("_", 1)[0].replace(
                                            "labelled", "labelled target"),
                                        line_color=colour, showlegend=col == 1), row=row, col=col)
        figure.update_layout(height=320, margin=dict(t=40))
        figure.update_xaxes(dtick=1, title_text="epoch")
        st.plotly_chart(figure, key=f"train.curves.{run.id}.{len(metrics)}")
        last = metrics[-1]
        st.caption(f"{last['images_per_s']:.0f} {items_word()}/s, peak memory {last['peak_memory_mb']:.0f} MB, "
                   f"{last['trainable_params']:,} trainable parameters")
    if run.status in ("queued", "running"):
        st.button("Cancel", key="train.cancel", disabled=stopping)  # its click is acted on at the top
        if run.status == "queued":
            ensure_worker(store)  # starts one only if none is alive or starting
            ahead = [r.id for r in store.list(status="running")]
            waited = f"{max(0.0, time.time() - run.created):.0f} s so far"  # the count of this wait
            st.info(f"waiting behind run {ahead[0]} ({waited})" if ahead else
                    f"waiting for the worker to start: {waited} (it imports PyTorch first; up to a minute on a busy "
                    "machine)")
    elif run.status in ("failed", "cancelled"):
        has_checkpoint = (Path(run.run_dir) / STATE).is_file()
        label = "Resume from the last checkpoint" if has_checkpoint else "Start it again (it has no checkpoint yet)"
        if st.button(label, key="train.resume"):
            store.requeue_for_resume(run.id)
            ensure_worker(store)
    else:
        st.success("Finished: see the Evaluate page for test-set results.")
    st.button("Open this run's settings as a new experiment", key="train.open_settings", on_click=_open_settings,
              args=(run.id,), help="Every choice of this run back on every page, to change one thing and run again.")
    st.caption(f"Every run is also in TensorBoard: `tensorboard --logdir {store.runs_dir}`"
               + (f"; and in MLflow at {os.environ['MLFLOW_TRACKING_URI']}" if os.environ.get("MLFLOW_TRACKING_URI")
                  else " (set MLFLOW_TRACKING_URI before starting the app to log runs to MLflow too)") + ".")
    with st.expander("Log"):
        for event in store.events(run.id, kinds=("log", "stage", "epoch", "warning", "error")):
            st.text(f"{time.strftime('%H:%M:%S', time.localtime(event['ts']))}  {event['message']}")


live(run_id)
earlier_runs(run_id)
