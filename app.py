"""Transfer Lab: `streamlit run app.py`. Navigation only; each step is a page under pages/."""

import streamlit as st

NARROW_PX = 900  # below this the sidebar would leave the pages too little room: it starts closed (its arrow opens it)
# Streamlit closes the sidebar by itself only below its mobile breakpoint (768 px). Once per browser tab, so a
# sidebar the user opens again stays open.
CLOSE_THE_SIDEBAR_WHEN_NARROW = f"""<script>
(() => {{
  if (window.innerWidth >= {NARROW_PX} || sessionStorage.getItem("transferlab.narrow")) return;
  const close = (triesLeft) => {{
    const button = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
    if (button) {{ sessionStorage.setItem("transferlab.narrow", "closed"); button.click(); }}
    else if (triesLeft > 0) setTimeout(() => close(triesLeft - 1), 200);
  }};
  close(50);
}})();
</script>"""

st.set_page_config(page_title="Transfer Lab", layout="wide")
st.html(CLOSE_THE_SIDEBAR_WHEN_NARROW, unsafe_allow_javascript=True)
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
