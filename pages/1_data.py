"""Step 1: choose a data set, check it, and split it once for every later run."""

from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from pages.common import (
    MAX_UPLOAD_MB, SAMPLE_DATA, SAMPLE_TEXTS, bind, change, choice, data_report, experiment, follow_the_data,
    forget_report, labelling_folder, number_bounds, picture_pairs, show_picture,
    sample_grid, save_upload, scan_any, show_sidebar, target_pictures, labelled_target_pictures,
)
from tlcore.spec.adapt_spec import LABELLED_USES, check_labelled_classes
from tlcore.config import LABELLED_MONITORS
from tlcore.data import SplitManifest, default_manifest_path, make_split
from tlcore.errors import TransferLabError
from tlcore.data.labelling import GOAL_PER_CLASS, LabelBook
from tlcore.text.data import TEXT_LAYOUT, is_text_source

experiment()
st.title("1 · Data")
st.write("Point to a folder with one sub-folder per class (or train/val/test folders), or upload a zip of one. "
         "For texts: a CSV, TSV or JSONL file with a text column and a label column, or class folders of .txt files.")


def _labelled(book: LabelBook, action: str, picture=None, label: str | None = None) -> None:
    """A click (or its key): label, skip or undo. Once every class has a label the book becomes the run's labelled
    pictures (a run that chooses by them needs every class); an undo that leaves a class empty takes it back."""
    try:
        if action == "label":
            book.label(picture, label)
        elif action == "skip":
            book.skip(picture)
        else:
            book.undo()
    except TransferLabError as exc:  # shown at the top of the page
        st.session_state["data.label_error"] = str(exc)
    every_class = all(n > 0 for n in book.counts().values())
    if every_class and choice("adapt.labelled") != str(book.folder):
        change({"adapt.labelled": str(book.folder)})
    elif not every_class and choice("adapt.labelled") == str(book.folder):
        change({"adapt.labelled": ""})
    labelled_target_pictures.clear()


def label_target_pictures(book: LabelBook, target_set) -> None:
    """Name a few target pictures one click (or key) each: they become the labelled target pictures."""
    counts = book.counts()
    done = sum(counts.values())
    with st.expander(f"Label a few target pictures here ({done} labelled; the goal: {GOAL_PER_CLASS} per class)",
                     expanded=done > 0):
        st.caption("With a few labelled target pictures a comparison chooses the adaptation method by them, which "
                   f"has been far safer than choosing without labels (README). Click a class, or press its number; "
                   f"S skips an unclear picture, U undoes the last click. They are kept in {book.folder}, which "
                   "becomes your labelled target pictures below once every class has one.")
        if st.session_state.get("data.label_error"):
            st.error(st.session_state.pop("data.label_error"))
        goal = GOAL_PER_CLASS * len(book.classes)
        st.progress(min(1.0, sum(min(n, GOAL_PER_CLASS) for n in counts.values()) / goal),
                    text=", ".join(f"{c} {n} of {GOAL_PER_CLASS}" for c, n in counts.items()))
        upcoming = book.next_pictures(target_set.paths, target_set.sha256, 1)
        if not upcoming:
            st.info("Every target picture is labelled or skipped.")
        else:
            picture = upcoming[0]
            left, right = st.columns([2, 3])
            show_picture(left, picture)
            right.caption(f"{picture.name}: which class is it?")
            for index, label in enumerate(book.classes):
                right.button(f"{label}" + (f"  ({index + 1})" if index < 9 else ""), key=f"data.label.{index}",
                             shortcut=str(index + 1) if index < 9 else None, on_click=_labelled,
                             args=(book, "label", picture, label), width="stretch")
            right.button("Skip (S)", key="data.label.skip", shortcut="S", on_click=_labelled,
                         args=(book, "skip", picture))
        if done or book.seen():
            st.button("Undo the last click (U)", key="data.label.undo", shortcut="U", on_click=_labelled,
                      args=(book, "undo"))
        if book.goal_reached():
            st.success(f"{GOAL_PER_CLASS} or more per class: a comparison of adaptation methods now chooses with them.")


kind = st.radio("Data set", ["Bundled sample data", "Bundled sample texts", "Folder on this computer", "Upload a zip"],
                horizontal=True, **bind("data", "app.data_kind"))
if kind == "Bundled sample data":
    source = str(SAMPLE_DATA)
elif kind == "Bundled sample texts":
    source = str(SAMPLE_TEXTS)
elif kind == "Folder on this computer":
    source = st.text_input("Folder path (or a text file: .csv, .tsv, .jsonl)", placeholder="/home/me/photos",
                           **bind("data", "app.folder")).strip()
else:
    upload = st.file_uploader("Zip of the data set", type=["zip"], key="data.upload", max_upload_size=MAX_UPLOAD_MB)
    source = str(save_upload(upload.file_id, upload.name, upload.getvalue())) if upload else ""
    if not source and choice("data.source").endswith(".zip"):  # after a reload: the zip chosen before
        source = choice("data.source")
if not source:
    show_sidebar()
    st.info("Choose a data set to continue: the sample data, a folder path, or a zip.")
    st.stop()

if source != choice("data.source"):  # the user chose another data set; its split belongs to the old one
    change({"data.source": source, "data.manifest": None})
    follow_the_data()  # texts or pictures: the settings the app chose follow them
if st.button("Scan again", key="data.scan", help="Read every file again (after you changed the folder)."):
    forget_report()
if is_text_source(source) and Path(source).is_file():  # drawn before reading: a column not found is set here
    c1, c2 = st.columns(2)
    c1.text_input("Text column", help="Found by name when empty (text, review, message...).",
                  **bind("data", "data.text_column", shown=lambda v: v or "", stored=lambda v: v.strip() or None,
                         then=forget_report))
    c2.text_input("Label column", help="Found by name when empty (label, category, sentiment...).",
                  **bind("data", "data.label_column", shown=lambda v: v or "", stored=lambda v: v.strip() or None,
                         then=forget_report))
try:
    report = data_report() or scan_any(source)
except TransferLabError as exc:
    show_sidebar()
    st.error(str(exc))
    st.stop()
show_sidebar()

if report.layout == TEXT_LAYOUT:
    left, middle, right = st.columns(3)
    left.metric("Classes", len(report.classes))
    middle.metric("Usable texts", len(report.images))
    right.metric("Skipped rows", len(report.skipped))
    if report.text_column:
        st.caption(f"Using the column '{report.text_column}' for the texts and '{report.label_column}' for the labels.")
    for error in report.errors:
        st.error(error)
    for warning in report.warnings:
        st.warning(warning)
    counts = pd.DataFrame({"class": list(report.counts), "texts": list(report.counts.values())})
    st.plotly_chart(px.bar(counts, x="class", y="texts", title="Texts per class"), key="data.counts_chart")
    if report.lengths:
        st.plotly_chart(px.histogram(pd.DataFrame({"words": report.lengths}), x="words", nbins=30,
                                     title="Length of the texts (words)"), key="data.lengths_chart")
    if report.skipped:
        st.subheader("Skipped rows")
        st.dataframe(pd.DataFrame([{"where": where, "why": why} for where, why in report.skipped]), hide_index=True)
    if report.duplicates:
        st.caption(f"{len(report.duplicates)} group(s) of duplicate texts (same words, ignoring case and spacing): "
                   "each group is dealt to one split, so no copy leaks into the test set.")
    with st.expander("Sample texts", expanded=True):
        st.dataframe(pd.DataFrame([{"class": r.label, "text": r.text[:300], "where": r.path}
                                   for label in report.classes for r in
                                   [x for x in report.images if x.label == label][:3]]), hide_index=True)
    if not report.ok:
        st.stop()
else:
    left, middle, right = st.columns(3)
    left.metric("Classes", len(report.classes))
    middle.metric("Usable images", len(report.images))
    right.metric("Skipped files", len(report.skipped))
    for error in report.errors:
        st.error(error)
    for warning in report.warnings:
        st.warning(warning)

    counts = pd.DataFrame({"class": list(report.counts), "images": list(report.counts.values())})
    st.plotly_chart(px.bar(counts, x="class", y="images", title="Images per class"), key="data.counts_chart")
    if report.skipped:
        st.subheader("Skipped files")
        st.dataframe(pd.DataFrame([{"file": f.path, "why": f.detail} for f in report.skipped]), hide_index=True)
    if report.suspects:
        st.subheader("Kept, but worth a look")
        st.dataframe(pd.DataFrame([{"file": f.path, "why": f.reason} for f in report.suspects]), hide_index=True)
    with st.expander("Sample pictures", expanded=True):
        sample_grid(report)
    if not report.ok:
        st.stop()

    st.subheader("Target domain (optional)")
    st.caption("For domain adaptation: pictures from where the model will be used (paintings instead of photos, a new "
               "camera, another season), without labels: sub-folder names are ignored. Choose the method on the Train "
               "page; evaluate on a labelled folder of that domain on the Evaluate page.")
    target = st.text_input("Folder or zip of target pictures", placeholder="/home/me/paintings",
                           **bind("data", "adapt.target", stored=str.strip)).strip()
    if target:
        try:
            target_set = target_pictures(target)
        except TransferLabError as exc:
            st.error(str(exc))
        else:
            st.write(f"{len(target_set.paths)} readable target pictures" + (
                f" ({target_set.skipped} could not be read)" if target_set.skipped else ""))
            left, right = st.columns(2)
            left.caption("Your labelled pictures (source)")
            right.caption("Target pictures (no labels)")
            source_paths = [Path(report.root) / r.path for r in report.images[:: max(1, len(report.images) // 6)]][:6]
            picture_pairs(left, source_paths)
            picture_pairs(right, target_set.paths[:: max(1, len(target_set.paths) // 6)][:6])
            label_target_pictures(LabelBook(labelling_folder(), list(report.classes)), target_set)
        labelled = st.text_input(
            "A few labelled target pictures (optional)", placeholder="/home/me/paintings_labelled",
            help="A folder or zip with one sub-folder per class (named as your classes), e.g. 5 pictures each. Keep "
                 "them apart from any labelled folder you will test on.",
            **bind("data", "adapt.labelled", stored=str.strip)).strip()
        if labelled:
            st.radio("Use them to", list(LABELLED_USES), format_func=LABELLED_USES.get,
                     **bind("data", "adapt.labelled_use"))
            chosen_by = choice("early_stopping.metric")
            if choice("adapt.labelled_use") == "choose":
                st.caption("Each run can also keep the epoch that does best on them: 'Best epoch chosen by' on the "
                           "Train page.")
            elif chosen_by in LABELLED_MONITORS:
                st.warning(f"The Train page chooses the best epoch on these pictures ({chosen_by}); a run that trains "
                           "on them cannot be scored on them: choose 'validation loss' there, or use them to choose.")
            if choice("adapt.labelled_use") == "train":
                st.number_input("Their share of each training epoch", step=0.05, format="%.2f",
                                help="A handful among hundreds would barely count: they are repeated (and augmented "
                                     "anew each time) to make up this share. 0: each once.",
                                **number_bounds("adapt.labelled_share", 0.0, 0.9),
                                **bind("data", "adapt.labelled_share"))
            try:
                few = labelled_target_pictures(labelled, tuple(report.classes))
            except TransferLabError as exc:
                st.error(str(exc))
            else:
                per_class = {c: sum(1 for _p, label, _h in few if report.classes[label] == c) for c in report.classes}
                st.write(f"{len(few)} labelled target pictures: " + ", ".join(f"{c} {n}" for c, n in per_class.items()))
                try:
                    check_labelled_classes(few, list(report.classes), choice("adapt.labelled_use"), labelled)
                except TransferLabError as exc:  # a run would stop on it: said here first
                    st.error(str(exc))

def _forget_split() -> None:
    """The split settings changed: the split made before belongs to the old ones."""
    change({"data.manifest": None})


st.subheader("Split")
st.caption("The same seed always gives the same split; every run and comparison reuses it. Making it here is "
           "optional: a run makes the split of these settings itself when it starts.")
c1, c2, c3 = st.columns(3)
c1.number_input("Seed", step=1, **number_bounds("data.split_seed", 0, 2**31 - 1),
                **bind("data", "data.split_seed", then=_forget_split))
c2.slider("Validation share", step=0.05, **number_bounds("data.val", 0.05, 0.4),
          **bind("data", "data.val", then=_forget_split))
c3.slider("Test share", step=0.05, disabled=report.layout == "presplit", **number_bounds("data.test", 0.05, 0.4),
                 **bind("data", "data.test", then=_forget_split))
if st.button("Make split", key="data.make_split"):
    try:
        manifest = make_split(report, seed=choice("data.split_seed"), val=choice("data.val"), test=choice("data.test"))
        change({"data.manifest": str(manifest.save(default_manifest_path(report, choice("data.split_seed"))))})
    except TransferLabError as exc:
        st.error(str(exc))
        st.stop()
if choice("data.manifest"):
    try:
        manifest = SplitManifest.load(choice("data.manifest"))
    except TransferLabError as exc:
        st.warning(f"the saved split cannot be used ({exc}); make it again")
        st.stop()
    st.success(f"Split {manifest.id} saved to {choice('data.manifest')}")
    st.dataframe(pd.DataFrame(manifest.counts()), key="data.split_table")
    for note in manifest.notes:
        st.info(note)
