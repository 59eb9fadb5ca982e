"""Step 6: the held-out test set's verdict on a finished run, its mistakes, and predictions on new pictures."""

import html
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from pages.common import TlcoreJob, experiment, experiment_runs_first, job_folder, open_store, show_sidebar
from tlcore.experiments.run_labels import run_label
from tlcore.data import load_rgb
from tlcore.data.images import ImageReadError, decode_image
from tlcore.errors import TransferLabError
from tlcore.inputs.augment import eval_pipeline, model_view
from tlcore.spec.adapt_spec import uses_adabn
from tlcore.results.artifacts import ADAPTED, BEST, EVALUATION, read_folder_evaluations, read_target_score
from tlcore.results.evaluate import Evaluation, evaluate_run
from tlcore.results.explain import grad_cam, overlay
from tlcore.results.export import export_run, export_steps
from tlcore.core.paths import data_home
from tlcore.results.predict import Predictor
from tlcore.runs import SUCCEEDED
from tlcore.text.data import read_texts
from tlcore.core.events import Progress
from tlcore.modality import for_model
from tlcore.text.catalog import is_text_model
from tlcore.results.text_predict import TextPredictor

experiment()
store = open_store()
st.title("6 · Evaluate")
show_sidebar()
finished = store.list(status=SUCCEEDED)
if not finished:
    st.info("No finished run yet: train one on the Train page.")
    st.stop()
finished = experiment_runs_first(finished)
labels = {r.id: f"{r.id}  {run_label(r.config, experiment().config)}" + (
    "" if experiment().owns(r.id, r.sweep) else "  (another experiment)") for r in finished}
mine = [r for r in experiment().runs if r in labels]  # the last run trained on the Train page, else the newest own
default = mine[-1] if mine else finished[0].id
run_id = st.selectbox("Run", list(labels), index=list(labels).index(default), format_func=labels.get, key="evaluate.run")
run = store.get(run_id)
path = Path(run.run_dir) / EVALUATION
try:
    evaluation = Evaluation.from_dict(json.loads(path.read_text())) if path.exists() else evaluate_run(run.run_dir)
except TransferLabError as exc:
    st.error(str(exc))
    st.stop()

modality = for_model(str(run.config.get("model", {}).get("name", "")))
text_run = is_text_model(run.config.get("model", {}).get("name", ""))
things = modality.items_word
st.caption(f"On {evaluation.n} held-out test {things} that never trained the model nor chose its best epoch.")
m1, m2 = st.columns(2)
m1.metric("Test accuracy", f"{evaluation.accuracy:.1%}")
m2.metric("Balanced accuracy", f"{evaluation.balanced_accuracy:.1%}", help="Mean recall over classes.")


def show_per_class(result: Evaluation, key: str) -> None:
    """Per-class precision, recall and F1, then the confusion matrix, one under the other (side by side, a narrow
    window squeezes the matrix to a stamp)."""
    st.dataframe(pd.DataFrame([{"class": c.label, "precision": 100 * c.precision, "recall": 100 * c.recall,
                                "F1": 100 * c.f1, f"{things}": c.support} for c in result.per_class]),
                 hide_index=True, key=f"{key}.per_class",
                 column_config={k: st.column_config.NumberColumn(format="%.1f%%") for k in ("precision", "recall", "F1")})
    heatmap = px.imshow(np.array(result.confusion), x=result.classes, y=result.classes, text_auto=True,
                        color_continuous_scale="Blues", labels={"x": "predicted", "y": "true"},
                        title="Confusion matrix")
    heatmap.update_layout(height=max(320, 60 * len(result.classes) + 160))
    st.plotly_chart(heatmap, key=f"{key}.confusion")


show_per_class(evaluation, "evaluate")
fit = read_target_score(run.run_dir)
if fit:
    shares = ", ".join(f"{c} {share:.0%}" for c, share in fit.get("predicted_shares", {}).items())
    st.caption(f"On its {fit['pictures']} target pictures, without their labels: information score {fit['im']:.3f} "
               f"(up to {np.log(len(evaluation.classes)):.3f}: confident answers spread over the classes), mean "
               f"confidence {fit['mean_confidence']:.0%}, answers {shares}. Compare adaptation methods on the Compare "
               "page to let this score choose; a labelled target folder below is the real test.")

_OTHER = {"texts": ("On another file of texts", "Another labelled file of texts (CSV, TSV or JSONL, with the run's "
                    "text and label columns) or folder of class folders of .txt files: texts from elsewhere, or new "
                    "ones. Each result is kept with the run under the file's name.",
                    "Labelled file or folder", "/home/me/more_tickets.csv", "Evaluate on these texts"),
          "pictures": ("On another folder", "Another labelled folder (or zip) with the run's classes as "
                       "sub-folders: another domain (paintings, a new camera), or new pictures. Each result is kept "
                       "with the run under the folder's name.", "Labelled folder or zip", "/home/me/paintings",
                       "Evaluate on this folder")}
_title, _about, _label, _example, _button = _OTHER.get(things, _OTHER["pictures"])
st.subheader(_title)
st.caption(_about)
other = st.text_input(_label, placeholder=_example, key="evaluate.other_folder")
if st.button(_button, key="evaluate.other", disabled=not other.strip()):
    folder = job_folder("evaluate")
    job = TlcoreJob(["evaluate", run.id, "--data", other.strip(), "--json", "--progress",
                     str(folder / "progress.jsonl")], folder)
    bar = st.progress(0.0, text=f"Evaluating run {run.id} on {Path(other.strip()).name}: starting a separate "
                                "process (it imports PyTorch first)...")
    while job.running:
        steps = job.lines("progress.jsonl")
        if steps:
            step = Progress.from_data(json.loads(steps[-1]))
            if step is not None:
                counted = f" {step.done} of {step.total} {things}" if step.total > 1 else "..."
                bar.progress(step.share, text=f"Evaluating run {run.id} on {Path(other.strip()).name}: "
                                              f"{step.phase}{counted}")
        time.sleep(0.3)
    bar.empty()
    if job.error():
        st.error(job.error())
others = read_folder_evaluations(run.run_dir)
if others:
    rows = [{"data": f"{run.name}: its own test split", things: evaluation.n, "accuracy": 100 * evaluation.accuracy,
             "balanced accuracy": 100 * evaluation.balanced_accuracy}]
    rows += [{"data": f"{name} ({data.get('source', '')})", things: data["n"], "accuracy": 100 * data["accuracy"],
              "balanced accuracy": 100 * data["balanced_accuracy"]} for name, data in others.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"evaluate.others.{run.id}.{len(others)}", column_config={
        k: st.column_config.NumberColumn(format="%.1f%%") for k in ("accuracy", "balanced accuracy")})
    if uses_adabn(run.config.get("adapt", {}).get("method", "none")):
        st.caption("AdaBN run: each folder is classified with BatchNorm statistics measured on its own pictures "
                   "(no labels used), as AdaBN does for a new domain.")
    shown = st.selectbox("Per class and confusion matrix on", list(others), key=f"evaluate.other_details.{run.id}",
                         format_func=lambda name: f"{name} ({others[name].get('source', '')})")
    try:
        show_per_class(Evaluation.from_dict(others[shown]), f"evaluate.other.{run.id}.{shown}")
    except (KeyError, TypeError) as exc:  # written by an older version without the details
        st.caption(f"{shown}: no per-class results kept ({exc}); evaluate on the folder again")

def _export_section(weights: str, text: bool) -> None:
    """Export the selected run with these weights (a folder and a zip to download), step by step."""
    st.subheader("Export")
    st.caption("safetensors weights, the tokenizer and ONNX (checked to give the same predictions, at two text "
               "lengths), config and model card." if text else
               "safetensors weights, TorchScript and ONNX (each checked to give the same predictions), config and "
               "model card.")
    # tied to the selected run and weights, never to the last one exported
    export_folder = data_home() / "exports" / (run.id + ("-adapted" if weights == ADAPTED else ""))
    export_zip = export_folder.with_suffix(".zip")
    if st.button("Export this model", key="evaluate.export"):
        try:
            steps = export_steps(modality=modality) + ["zip for download"]
            bar = st.progress(0.0)

            def show_step(done: int, total: int, step: str) -> None:
                bar.progress(done / len(steps), text=f"Exporting, step {done + 1} of {len(steps)}: {step}...")

            report = export_run(run.run_dir, export_folder, checkpoint=weights, on_step=show_step)
            show_step(len(steps) - 1, len(steps), steps[-1])
            shutil.make_archive(str(export_folder), "zip", report.folder)
            bar.empty()
            st.success(f"Exported to {report.folder} (max logit difference "
                       + ", ".join(f"{k} {v:.1e}" for k, v in report.max_abs_diff.items()) + ")")
        except TransferLabError as exc:
            st.error(str(exc))
    if export_zip.is_file() and export_folder.is_dir():
        st.download_button(f"Download the export of run {run.id}" + (" (adapted weights)" if weights == ADAPTED else "")
                           + " (zip)", export_zip.read_bytes(),
                           file_name=export_zip.name, key="evaluate.download_export")
        st.code(f"python -m tlcore predict {export_folder} " + ('"a text"' if text else "picture.jpg"), language="bash")


if text_run:  # the mistakes as texts, a text to try, and no picture tools
    @st.cache_resource(max_entries=4, show_spinner="Loading the model...")
    def _text_predictor(run_dir: str, checkpoint_stamp: tuple) -> TextPredictor:
        """One loaded text model per run and checkpoint version."""
        return TextPredictor.from_run(run_dir)

    def _short(text: str) -> str:
        return text if len(text) <= 90 else text[:87] + "..."

    def _show_explanation(run_dir: str, text: str, label: str, said: str) -> None:
        """The text with each word shaded by how much the class loses without it: green for, red against."""
        best = Path(run_dir) / BEST
        with st.spinner(f"Trying the text without each of its words ({len(text.split())} passes)..."):
            why = _text_predictor(run_dir, (best.stat().st_mtime_ns, best.stat().st_size)).explain(text, label)
        top = max((abs(w) for _, w in why.words), default=0) or 1.0
        shaded = " ".join(
            f'<span title="{100 * w:+.1f} points" style="padding:1px 2px;border-radius:3px;background:'
            f'rgba({"0,150,60" if w > 0 else "210,40,40"},{min(abs(w) / top, 1) * 0.6:.2f})">{html.escape(word)}</span>'
            for word, w in why.words)
        st.markdown(f"Why {said} ({why.probability:.0%}): green words speak for it, red against it; hover a word "
                    "for the points the class loses without it.")
        st.html(f'<div style="line-height:1.9">{shaded}</div>')
        supporting, _ = why.strongest(3)
        if supporting:
            st.caption("Strongest: " + ", ".join(f"{w!r} {100 * v:+.1f} points" for w, v in supporting) +
                       ". Occlusion: each word taken out alone, the text classified again.")

    st.subheader("Worst mistakes")
    if not evaluation.worst:
        st.write("No test text was misclassified.")
    else:
        data = run.config.get("data", {})
        try:
            report = read_texts(data.get("source", ""), text_column=data.get("text_column"),
                                label_column=data.get("label_column"))
            texts = {str(Path(report.root) / r.path): r.text for r in report.images}
        except TransferLabError as exc:
            texts = {}
            st.caption(f"the texts cannot be shown: {exc}")
        st.dataframe(pd.DataFrame([{"text": texts.get(m["path"], m["path"]), "label": m["label"],
                                    "taken for": m["predicted"], "confidence": f"{m['confidence']:.0%}"}
                                   for m in evaluation.worst[:12]]), hide_index=True, key="evaluate.text_mistakes")
        explainable = [m for m in evaluation.worst[:12] if m["path"] in texts]
        if explainable:
            picked = st.selectbox("Explain a mistake", range(len(explainable)), index=None,
                                  format_func=lambda i: _short(texts[explainable[i]["path"]]),
                                  placeholder="Choose a text to see which words led the model astray",
                                  key="evaluate.explain_mistake")
            if picked is not None:
                mistake = explainable[picked]
                _show_explanation(run.run_dir, texts[mistake["path"]], mistake["predicted"],
                                  f"taken for **{mistake['predicted']}** (it is **{mistake['label']}**)")
    st.subheader("Try it on a text")
    tried = st.text_area("A text", key="evaluate.text", placeholder="Type or paste a text to classify")
    if tried.strip():
        best = Path(run.run_dir) / BEST
        try:
            found = _text_predictor(run.run_dir, (best.stat().st_mtime_ns, best.stat().st_size)).predict([tried],
                                                                                                     topk=5)[0]
        except TransferLabError as exc:
            st.error(str(exc))
        else:
            st.dataframe(pd.DataFrame([{"class": c, "probability": f"{p:.1%}"} for c, p in found]), hide_index=True,
                         key="evaluate.text_predictions")
            _show_explanation(run.run_dir, tried, found[0][0], f"**{found[0][0]}**")
    st.caption(f"From the command line: `python -m tlcore predict {run.id} \"a text\" --explain` (or a .txt or CSV file).")
    _export_section(BEST, text=True)
    st.stop()

show_cam = st.checkbox("Show where the model looks (Grad-CAM)", key="evaluate.cam",
                       help="Warm colours: the regions that pushed the model towards its answer.")
@st.cache_resource(max_entries=4, show_spinner="Loading the model...")
def _predictor(run_dir: str, checkpoint_stamp: tuple, checkpoint: str = BEST) -> Predictor:
    """One loaded model per run and checkpoint version: Grad-CAM and predictions after the first are fast."""
    return Predictor.from_run(run_dir, checkpoint)


try:
    best = Path(run.run_dir) / BEST
    stamp = (best.stat().st_mtime_ns, best.stat().st_size) if best.exists() else ()
    predictor = _predictor(run.run_dir, stamp)
except TransferLabError as exc:
    st.error(str(exc))
    st.stop()


def with_cam(predictor: Predictor, image: np.ndarray) -> np.ndarray:
    """The picture's Grad-CAM overlay at the model's input size."""
    heat, _ = grad_cam(predictor.model, predictor.groups(), predictor.preprocessing, image)
    shown = model_view(eval_pipeline(predictor.preprocessing)(image=image)["image"], predictor.preprocessing)
    return overlay(shown, heat)


@st.cache_data(max_entries=240, show_spinner=False)
def _mistake_view(run_dir: str, checkpoint_stamp: tuple, path: str, cam: bool) -> np.ndarray:
    """A test picture, or its Grad-CAM overlay, once per run and checkpoint version (a rerun pays nothing)."""
    image = np.asarray(load_rgb(path))
    return with_cam(_predictor(run_dir, checkpoint_stamp), image) if cam else image


st.subheader("Worst mistakes")
if not evaluation.worst:
    st.write("No test picture was misclassified.")
mistakes = evaluation.worst[:12]
bar = st.progress(0.0) if show_cam and mistakes else None
views: list[np.ndarray | ImageReadError] = []
for index, mistake in enumerate(mistakes):
    if bar:  # the first overlay pays Grad-CAM's start (seconds), each one after a fraction of a second
        bar.progress(index / len(mistakes), text=f"Grad-CAM: picture {index + 1} of {len(mistakes)}...")
    try:
        views.append(_mistake_view(run.run_dir, stamp, mistake["path"], show_cam))
    except ImageReadError as exc:
        views.append(exc)
if bar:
    bar.empty()
columns = st.columns(4)
for column, mistake, view in zip(columns * 3, mistakes, views):
    if isinstance(view, ImageReadError):
        column.caption(f"{mistake['path']}: {view}")
    else:
        column.image(view, caption=f"{mistake['label']} taken for {mistake['predicted']} "
                                   f"({mistake['confidence']:.0%})")

st.subheader("Try it on a picture")
weights = BEST
if (Path(run.run_dir) / ADAPTED).exists():  # an AdaBN run: its weights with the target pictures' statistics too
    weights = st.radio("Weights for new pictures and the export", [BEST, ADAPTED], horizontal=True,
                       key=f"evaluate.weights.{run.id}",
                       format_func=lambda w: "best epoch (source statistics)" if w == BEST else
                       "adapted to the target pictures (AdaBN statistics)",
                       help="Adapted: the same weights, BatchNorm normalising by the statistics of the target "
                            "pictures given for training. Use them for pictures of that domain.")
    if weights == ADAPTED:
        adapted = Path(run.run_dir) / ADAPTED
        predictor = _predictor(run.run_dir, (adapted.stat().st_mtime_ns, adapted.stat().st_size), ADAPTED)
upload = st.file_uploader("A picture", type=["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "gif"],
                          key="evaluate.upload")
image = None
if upload is not None:
    try:
        image, _ = decode_image(upload.getvalue())
        predictions = predictor.predict(np.asarray(image), topk=5)
    except ImageReadError as exc:  # advice for an upload, not for a file in a data folder
        st.error(f"{upload.name} cannot be read as a picture ({exc.problem}): upload a JPEG, PNG, BMP, WebP, TIFF "
                 "or GIF file")
        image = None
    except TransferLabError as exc:
        st.error(f"{upload.name}: {exc}")
        image = None
if image is not None:
    left, right = st.columns([1, 2])
    left.image(with_cam(predictor, np.asarray(image)) if show_cam else image, caption=upload.name)
    right.dataframe(pd.DataFrame([{"class": c, "probability": f"{p:.1%}"} for c, p in predictions]), hide_index=True,
                    key="evaluate.predictions")

_export_section(weights, text=False)
