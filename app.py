"""Transfer Lab: `streamlit run app.py`. Navigation only; each step is a page under pages/."""

import streamlit as st

st.set_page_config(page_title="Transfer Lab", layout="wide")
navigation = st.navigation([
    st.Page("pages/1_data.py", title="1 · Data", default=True),
    st.Page("pages/2_model.py", title="2 · Model"),
    st.Page("pages/3_augment.py", title="3 · Augment"),
    st.Page("pages/4_freeze.py", title="4 · Freeze"),
    st.Page("pages/5_train.py", title="5 · Train"),
    st.Page("pages/6_evaluate.py", title="6 · Evaluate"),
    st.Page("pages/7_compare.py", title="7 · Compare"),
])
navigation.run()
