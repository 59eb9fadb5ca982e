"""Step 2: choose a pretrained model; its input size and normalisation come with it."""

import json
import time

import pandas as pd
import streamlit as st

from pages.common import (bind, choice, experiment, model_overview, model_spec, normalise_words, num_classes,
                          has_weights, rank_in_a_child_process, resize_words, run_config, run_model_spec, show_sidebar,
                          texts_chosen, with_current)
from tlcore.errors import TransferLabError
from tlcore.models import RECOMMENDED, ModelSpec, search
from tlcore.experiments.rank import RANDOM_SUFFIX, ModelScore, ranked
from tlcore.text.model import text_facts


def show_ranking(asked: list[str], items: str) -> bool:
    """Shows the experiment's last ranking (kept there: a reload or a restart shows it again), and what it ranked
    when that differs from `asked`; `items` names what was read ("images", "texts").

    Returns:
        True when a ranking is shown and only one of its models could be scored (a baseline would help).
    """
    shown = experiment().results.get("ranking")
    if not shown:
        return False
    if shown["asked"] != asked:
        st.caption("The last ranking, of " + ", ".join(shown["asked"]) + ":")
    try:
        scores = ranked([ModelScore(**s) for s in shown["scores"]])
    except (TypeError, ValueError):  # a ranking edited in the experiment's file
        st.caption("The kept ranking cannot be read: rank the models again.")
        return False
    def speed(s: ModelScore) -> str:  # a model that could not be scored has no speed, cached or not
        if s.error is not None:
            return "-"
        return "features cached" if s.images_per_s is None else str(round(s.images_per_s))

    st.dataframe(pd.DataFrame([{
        "rank": str(i) if s.error is None else "-", "model": s.label,
        "LogME": "-" if s.logme is None else f"{s.logme:.3f}",
        "probe accuracy": "-" if s.probe_accuracy is None else f"{s.probe_accuracy:.1%}",
        "seconds": "-" if s.error is not None else f"{s.seconds:.1f}",
        f"{items}/s here": speed(s),
        "parameters (M)": None if s.params_millions is None else round(s.params_millions, 1),
        "note": s.error or ""} for i, s in enumerate(scores, 1)]), hide_index=True, key="model.ranking")
    return sum(s.error is None for s in scores) == 1


experiment()
st.title("2 · Model")
if texts_chosen():  # a text encoder from Hugging Face transformers, not an ImageNet model
    show_sidebar()
    spec = run_model_spec()
    try:
        facts = text_facts(spec.name)
    except TransferLabError as exc:
        st.error(str(exc))
        st.stop()
    st.write("Your data is texts: runs fine-tune a pretrained text encoder (a BERT-family transformer) with a new "
             "head on the mean of its token outputs.")
    st.success(f"{facts.name}: {facts.weights}")
    st.dataframe(pd.DataFrame([{"transformer layers": facts.layers, "hidden size": facts.hidden,
                                "parameters (M)": round(facts.params / 1e6, 1),
                                "max tokens per text": facts.max_length, "vocabulary (word pieces)": facts.vocabulary}]),
                 hide_index=True, key="model.text_facts")
    st.caption("Texts longer than the runs' maximum are cut (the Data page counts them). Other encoders: a local "
               "model folder in the Hugging Face layout, as the run config's model.name. From the command line: "
               f"`python -m tlcore models show {facts.name}`. Choose which layers stay frozen on the Freeze page.")
    st.subheader("What pretraining brings to your texts")
    st.write("Before any training: the encoder's frozen features of your training texts, against the same "
             "architecture with random weights, scored by LogME (how well a linear model on them explains your "
             "labels) and by a quick logistic probe on the validation split. Higher is better for both.")
    pair = [facts.name, facts.name + RANDOM_SUFFIX]
    if st.button("Rank the encoder against its random twin", key="model.rank_text"):
        try:
            rank_in_a_child_process(run_config(), pair)
        except (TransferLabError, ValueError) as exc:
            st.error(str(exc))
    show_ranking(pair, "texts")
    st.caption("From the command line: `python -m tlcore models rank --data YOUR_FILE` (the same two).")
    st.stop()
st.write("Start from a model trained on ImageNet. Smaller models train faster; larger ones often transfer better.")

query = st.text_input("Search all of timm's pretrained models", placeholder="resnet, convnext, vit...",
                      **bind("model", "app.model_search"))
searching, search_started = st.empty(), time.monotonic()


def search_progress(done: int, total: int) -> None:
    """A model's first card counts its parameters (then they are kept): past half a second, say how far it got."""
    if time.monotonic() - search_started > 0.5:
        searching.progress(done / total, text=f"Reading the models' facts (the first time only): {done} of {total}")


try:
    cards = search(query, limit=40, on_card=search_progress)
except TransferLabError as exc:
    st.error(str(exc))
    st.stop()
searching.empty()
if not cards:
    st.warning(f"No model matches '{query}'.")
    st.stop()
cards = sorted(cards, key=lambda c: not c.offline_weights)  # what can train here, now, first (stable otherwise)
RESIZE_HELP = ("How a picture is resized for this model: its shorter side to input / crop with this interpolation "
               "(224 / 0.875 = 256), then the centre input x input is cut out. Applied for you.")
NORMALISE_HELP = ("Pixel values minus the mean, divided by the std, per colour channel: as in the model's own "
                  "training. Applied for you.")
table = pd.DataFrame([{
    "model": c.name, "family": c.family, "parameters (M)": round(c.params_millions, 1),
    "input": "x".join(map(str, c.input_size[1:])), "resize": resize_words(c.interpolation, c.crop_pct),
    "normalise": normalise_words(c.mean, c.std),
    "weights": "ready offline" if c.offline_weights else "needs a weights file",
    "recommended": c.name in RECOMMENDED,
} for c in cards])
st.dataframe(table, hide_index=True, key="model.table", column_config={
    "resize": st.column_config.TextColumn(help=RESIZE_HELP),
    "normalise": st.column_config.TextColumn(help=NORMALISE_HELP),
    "input": st.column_config.TextColumn(help="Height x width of the pictures the model takes."),
})

st.selectbox("Model", with_current("model.name", [c.name for c in cards]), **bind("model", "model.name"))
with st.expander("Weights"):
    st.text_input("Weights file (.safetensors or .pth), if this model has no offline weights",
                  **bind("model", "model.weights", shown=lambda w: "" if w in ("auto", "random") else w,
                         stored=lambda text: text.strip() or "auto", widget="weights_file"))
    st.checkbox("Allow downloading weights from the Hugging Face hub", **bind("model", "model.allow_download"))
    st.checkbox("Random initialisation (no pretrained weights: much worse on small data)",
                **bind("model", "model.weights", shown=lambda w: w == "random",
                       stored=lambda random: "random" if random else "auto", widget="random_init"))

show_sidebar()
try:
    overview = model_overview(json.dumps(model_spec().to_dict()), num_classes())
except TransferLabError as exc:
    st.error(str(exc))  # the ranking below still helps choose another model
else:
    (st.success if overview.pretrained else st.warning)(f"{overview.label}: {overview.weights}")
    p = overview.preprocessing
    st.markdown(f"Input {p['input_size'][1]}x{p['input_size'][2]}, resize "
                f"{resize_words(p['interpolation'], p['crop_pct'])}, normalise {normalise_words(p['mean'], p['std'])}: "
                "applied for you.", help=f"{RESIZE_HELP} {NORMALISE_HELP} This model: mean {p['mean']}, std {p['std']}.")
    st.caption(f"{len(overview.groups)} layer groups from stem to head; choose which stay frozen on the Freeze page.")

st.subheader("Rank models for my data")
st.write("Before any training: each model's frozen features of your training pictures, scored by LogME (how well "
         "a linear model on them explains your labels) and by a quick logistic probe on the validation split. "
         "Higher is better for both; the features are cached, so the first feature-extraction run starts faster.")
st.caption("What the ranking has been measured to predict (bench/rank_predicts.py: three offline backbones and "
           "their random twins): for head-only training, LogME's order matched the test accuracies on 4 data sets "
           "(Kendall's tau 0.74 on average) and its top pick was the most accurate in 4 of 4; for fine-tuning the "
           "whole model it put every pretrained model above every random one, but did not tell which pretrained "
           "one fine-tunes best (its top pick was the best in 0 of 2 short runs).")
here = [c.name for c in cards if c.offline_weights]
options = with_current("app.rank_models", list(dict.fromkeys(here + list(RECOMMENDED) + [choice("model.name")])))
candidates = st.multiselect("Models to rank", options, **bind("model", "app.rank_models"),
                            format_func=lambda n: n + ("" if has_weights(json.dumps(ModelSpec(name=n).to_dict())) else " (needs weights)"))
baseline = st.checkbox("Add the same architectures with random weights (shows what pretraining brings)",
                       **bind("model", "app.rank_baseline"))
asked = candidates + ([f"{n}{RANDOM_SUFFIX}" for n in candidates] if baseline else [])
if st.button("Rank models for my data", key="model.rank", disabled=not candidates):
    try:
        rank_in_a_child_process(run_config(), asked)
    except (TransferLabError, ValueError) as exc:
        st.error(str(exc))
if show_ranking(asked, "images"):
    st.caption("Only one model could be scored here: tick the random-weights baseline, or give other models' "
               "weights files, to compare.")
