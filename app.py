"""Transfer Lab: `streamlit run app.py`. Navigation only; each step is a page under pages/."""

import streamlit as st

st.set_page_config(page_title="Transfer Lab", layout="wide")
navigation = st.navigation([
    st.Page("pages/1_data.py", title="1 · Data", default=True),
])
navigation.run()
