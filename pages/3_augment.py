"""Step 3: choose how training pictures are varied, and see it on your own pictures."""

import json
from pathlib import Path

import numpy as np
import streamlit as st

from pages.common import (
    SAMPLE_DATA, augment_spec, bind, change, choice, data_report, experiment, model_overview, model_spec, num_classes,
    number_bounds, show_sidebar, texts_chosen, with_current,
)
from tlcore.inputs.augment import PRESETS, eval_pipeline, make_grid, model_view, preset, preview
from tlcore.data import load_rgb, scan
from tlcore.errors import TransferLabError
from tlcore.models import Preprocessing
from tlcore.text.augment import TEXT_AUGMENT_PRESETS, TextAugment, TextAugmenter


def text_augment_page() -> None:
    """Texts: how much each epoch changes the training texts, and the change shown on the user's own texts."""
    st.write("Each epoch the training texts can change a little, so the model cannot lean on single words: the "
             "cheapest protection against overfitting a small set of texts. Validation and test texts never change.")
    presets = st.columns(len(TEXT_AUGMENT_PRESETS))
    current = {field: float(choice(f"text_augment.{field}")) for field in TextAugment().to_dict()}
    chosen = next((name for name, spec in TEXT_AUGMENT_PRESETS.items() if spec.to_dict() == current), None)
    for column, (name, spec) in zip(presets, TEXT_AUGMENT_PRESETS.items()):
        if column.button(f"{name.capitalize()}" + (" (chosen)" if name == chosen else ""),
                         key=f"augment.text_preset.{name}", use_container_width=True,
                         type="primary" if name == chosen else "secondary"):
            change({f"text_augment.{field}": value for field, value in spec.to_dict().items()})
            st.rerun()
    left, middle, right = st.columns(3)
    helps = {"word_dropout": ("Word dropout", "Each word becomes the unknown token with this probability."),
             "swap": ("Swapped words", "This share of each text's words trades places with another word."),
             "deletion": ("Deleted words", "Each word is left out with this probability (one always stays).")}
    for column, (field, (label, help_text)) in zip((left, middle, right), helps.items()):
        column.number_input(label, step=0.05, format="%.2f", help=help_text,
                            **number_bounds(f"text_augment.{field}", 0.0, 0.5),
                            **bind("augment", f"text_augment.{field}"))
    spec = TextAugment(**{field: float(choice(f"text_augment.{field}")) for field in helps})
    if not spec.active:
        st.caption("No augmentation: every epoch sees the texts as they are (and head-only runs embed them once).")
    else:
        st.caption("Head-only runs embed the changed texts every epoch, so they take longer than without.")
    report = data_report()
    texts = [r.text for r in report.images[:: max(1, len(report.images) // 4)][:4]] if report else []
    if not texts:
        return
    st.subheader("Preview on your texts")
    seed = st.session_state.setdefault("augment.text_seed", 0)
    if st.button("New draws", key="augment.text_reroll"):
        st.session_state["augment.text_seed"] = seed = seed + 3
    rows = []
    for index, text in enumerate(texts):
        rows.append({"text": text, "version": "as it is"})
        for draw in range(3):
            augmenter = TextAugmenter(spec, "[UNK]")
            augmenter.set_random_seed(seed + draw)
            rows.append({"text": augmenter(text, index), "version": f"epoch draw {draw + 1}"})
    st.dataframe(rows, hide_index=True, key=f"augment.text_preview.{seed}")

experiment()
st.title("3 · Augment")
if texts_chosen():
    show_sidebar()
    text_augment_page()
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
