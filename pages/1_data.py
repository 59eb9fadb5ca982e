"""Step 1: choose a data set, check it, and split it once for every later run."""

import pandas as pd
import plotly.express as px
import streamlit as st

from pages.common import MAX_UPLOAD_MB, SAMPLE_DATA, sample_grid, save_upload, show_sidebar, state
from tlcore.data import default_manifest_path, make_split, scan
from tlcore.errors import TransferLabError

s = state()
st.title("1 · Data")
st.write("Point to a folder with one sub-folder per class (or train/val/test folders), or upload a zip of one.")

kind = st.radio("Data set", ["Bundled sample data", "Folder on this computer", "Upload a zip"], key="data.kind", horizontal=True)
if kind == "Bundled sample data":
    source = str(SAMPLE_DATA)
elif kind == "Folder on this computer":
    source = st.text_input("Folder path", key="data.folder", placeholder="/home/me/photos").strip()
else:
    upload = st.file_uploader("Zip of the data set", type=["zip"], key="data.upload", max_upload_size=MAX_UPLOAD_MB)
    source = str(save_upload(upload.file_id, upload.name, upload.getvalue())) if upload else ""
if not source:
    st.info("Choose a data set to continue.")
    st.stop()

if st.button("Scan", key="data.scan", type="primary") or s["data.report"] is None or s["data.source"] != source:
    try:
        with st.spinner("Reading every file..."):
            s["data.report"], s["data.source"], s["data.manifest_path"] = scan(source), source, None
    except TransferLabError as exc:
        s["data.report"] = None
        st.error(str(exc))
        st.stop()
report = s["data.report"]
show_sidebar()

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

st.subheader("Split")
st.caption("The same seed always gives the same split; every run and comparison reuses it.")
c1, c2, c3 = st.columns(3)
seed = c1.number_input("Seed", min_value=0, step=1, key="data.seed")
val = c2.slider("Validation share", 0.05, 0.4, step=0.05, key="data.val")
test = c3.slider("Test share", 0.05, 0.4, step=0.05, key="data.test", disabled=report.layout == "presplit")
if st.button("Make split", key="data.make_split"):
    try:
        manifest = make_split(report, seed=int(seed), val=val, test=test)
        s["data.manifest_path"] = str(manifest.save(default_manifest_path(report, int(seed))))
    except TransferLabError as exc:
        st.error(str(exc))
        st.stop()
if s["data.manifest_path"]:
    from tlcore.data import SplitManifest

    manifest = SplitManifest.load(s["data.manifest_path"])
    st.success(f"Split {manifest.id} saved to {s['data.manifest_path']}")
    st.dataframe(pd.DataFrame(manifest.counts()), key="data.split_table")
    for note in manifest.notes:
        st.info(note)
