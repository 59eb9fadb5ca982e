"""Step 3: choose how training pictures are varied, and see it on your own pictures."""

import json
from pathlib import Path

import numpy as np
import streamlit as st

from pages.common import (
    SAMPLE_DATA, augment_spec, bind, change, choice, data_report, experiment, model_overview, model_spec, num_classes,
    show_sidebar, texts_chosen, with_current,
)
from tlcore.augment import PRESETS, eval_pipeline, make_grid, model_view, preset, preview
from tlcore.data import load_rgb, scan
from tlcore.errors import TransferLabError
from tlcore.models import Preprocessing

experiment()
st.title("3 · Augment")
if texts_chosen():
    show_sidebar()
    st.info("Your data is texts: text runs train on the texts as they are. Augmentation for texts (token dropout, "
            "swapped or deleted words) is not built yet, so nothing here changes a text run; the picture presets "
            "below apply to picture data.")
    st.stop()
st.write("Augmentation shows the model slightly different versions of each training picture every epoch: "
         "the cheapest protection against overfitting a small data set. Validation and test pictures are never augmented.")

name = st.radio("Preset", with_current("augment.preset", list(PRESETS)), horizontal=True,
                **bind("augment", "augment.preset"))
st.caption(PRESETS[name][0])
with st.expander("Edit the steps (albumentations JSON)"):
    st.caption("Each step is an albumentations transform with its parameters and probability p. Leave empty to use the preset.")
    st.text_area("Steps", height=200, placeholder=json.dumps(preset(name).to_dict(), indent=1),
                 **bind("augment", "app.augment_json"))
try:
    spec = augment_spec()
    overview = model_overview(json.dumps(model_spec().to_dict()), num_classes())
except TransferLabError as exc:  # the user's steps: JSON that does not parse, or a step albumentations refuses
    st.error(str(exc))
    st.stop()
show_sidebar()
st.write("Steps: " + (", ".join(f"{t['__class_fullname__']} (p={t.get('p', 0.5)})" for t in spec.transforms) or "none"))

report = data_report() or scan(SAMPLE_DATA)
paths = [r.path for r in report.images]
picked = st.selectbox("Picture", paths, key="augment.picture")
if st.button("Re-roll", key="augment.reroll"):
    change({"app.augment_seed": choice("app.augment_seed") + 1})
prep = Preprocessing(**overview.preprocessing)
image = np.asarray(load_rgb(Path(report.root) / picked))
grid = make_grid(preview(image, spec, prep, n=8, seed=choice("app.augment_seed")), columns=4)
st.image(grid, caption=f"8 augmented versions (seed {choice('app.augment_seed')}), at the model's input size")
seen = model_view(eval_pipeline(prep)(image=image)["image"], prep)
st.image(seen, caption=f"What the model sees at evaluation: resized, centre-cropped to {prep.input_size[1]} px, "
                       f"normalised (shown de-normalised)", width=prep.input_size[2])
