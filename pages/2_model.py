"""Step 2: choose a pretrained model; its input size and normalisation come with it."""

import json

import pandas as pd
import streamlit as st

from pages.common import bind, choice, experiment, model_overview, model_spec, num_classes, show_sidebar
from tlcore.errors import TransferLabError
from tlcore.models import RECOMMENDED, search

experiment()
st.title("2 · Model")
st.write("Start from a model trained on ImageNet. Smaller models train faster; larger ones often transfer better.")

query = st.text_input("Search all of timm's pretrained models", placeholder="resnet, convnext, vit...",
                      **bind("model.search"))
try:
    cards = search(query, limit=40)
except TransferLabError as exc:
    st.error(str(exc))
    st.stop()
if not cards:
    st.warning(f"No model matches '{query}'.")
    st.stop()
cards = sorted(cards, key=lambda c: not c.offline_weights)  # what can train here, now, first (stable otherwise)
table = pd.DataFrame([{
    "model": c.name, "family": c.family, "parameters (M)": round(c.params_millions, 1),
    "input": "x".join(map(str, c.input_size[1:])),
    "weights": "ready offline" if c.offline_weights else "needs a weights file",
    "recommended": c.name in RECOMMENDED,
} for c in cards])
st.dataframe(table, hide_index=True, key="model.table")

names = [c.name for c in cards]
if choice("model.name") not in names:
    names.insert(0, choice("model.name"))
st.selectbox("Model", names, **bind("model.name"))
with st.expander("Weights"):
    st.text_input("Weights file (.safetensors or .pth), if this model has no offline weights",
                  **bind("model.weights_file"))
    st.checkbox("Allow downloading weights from the Hugging Face hub", **bind("model.allow_download"))
    st.checkbox("Random initialisation (no pretrained weights: much worse on small data)", **bind("model.random_init"))

try:
    overview = model_overview(json.dumps(model_spec().to_dict()), num_classes())
except TransferLabError as exc:
    st.error(str(exc))
    st.stop()
show_sidebar()
(st.success if overview.pretrained else st.warning)(f"{overview.label}: {overview.weights}")
p = overview.preprocessing
st.write(f"Input {p['input_size'][1]}x{p['input_size'][2]} ({p['interpolation']}, crop {p['crop_pct']}), "
         f"normalised with mean {p['mean']} and std {p['std']}: applied for you.")
st.caption(f"{len(overview.groups)} layer groups from stem to head; choose which stay frozen on the Freeze page.")
