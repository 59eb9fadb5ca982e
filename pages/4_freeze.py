"""Step 4: see the model as blocks from stem to head and choose which stay frozen."""

import json

import plotly.graph_objects as go
import streamlit as st

from pages.common import model_overview, model_spec, num_classes, show_sidebar, state
from tlcore.errors import TransferLabError
from tlcore.freeze import STRATEGIES, default_lr_spread, make_plan, summarize

s = state()
st.title("4 · Freeze")
try:
    overview = model_overview(json.dumps(model_spec().to_dict()), num_classes())
except TransferLabError as exc:
    st.error(f"{exc} (choose another model on the Model page)")
    st.stop()
groups = overview.groups
n = len(groups)

# A click on a block sets the freeze boundary: everything before it stays frozen.
click = st.session_state.get("freeze.chart")
points = click.selection.points if click and click.selection else []
if points and points[0]["point_index"] != s["freeze.last_click"]:
    s["freeze.last_click"] = points[0]["point_index"]
    s["freeze.strategy"], s["freeze.k"] = "freeze_first_k", min(points[0]["point_index"], n - 1)

labels = {k: k.replace("_", " ") for k in STRATEGIES}
def _strategy_changed() -> None:
    s["freeze.lr_spread"] = default_lr_spread(s["freeze.strategy"])  # fine_tune's recipe spreads the rates


strategy = st.radio("Strategy", list(STRATEGIES), format_func=labels.get, key="freeze.strategy", horizontal=True,
                    on_change=_strategy_changed)
st.caption(STRATEGIES[strategy])
s["freeze.k"] = min(s["freeze.k"], n - 1)
c1, c2 = st.columns(2)
if strategy == "freeze_first_k":
    c1.slider("Frozen groups (from the stem)", 0, n - 1, key="freeze.k")
elif strategy == "gradual":
    c1.number_input("Unfreeze one more group every N epochs", 1, 20, key="freeze.every")
elif strategy == "fine_tune":
    c1.number_input("Head-only epochs first", 1, 20, key="freeze.head_epochs")
c2.select_slider("Learning-rate spread (head lr ÷ stem lr)", [1.0, 3.0, 10.0, 30.0, 100.0], key="freeze.lr_spread",
                 help="Discriminative learning rates: earlier, more generic layers change more slowly.")
st.checkbox("Update BatchNorm statistics in frozen groups", key="freeze.train_bn",
            help="Off keeps ImageNet's statistics: safer with small batches and small data sets.")
try:
    plan = make_plan(strategy, n, k=s["freeze.k"], every=s["freeze.every"], head_epochs=s["freeze.head_epochs"],
                     lr_spread=s["freeze.lr_spread"], train_bn=s["freeze.train_bn"])
except TransferLabError as exc:
    st.error(str(exc))
    st.stop()
show_sidebar()

epoch = st.slider("Show epoch", 0, max(9, plan.stages[-1].epoch), 0, key="freeze.epoch") if len(plan.stages) > 1 else 0
summary = summarize(groups, plan, epoch)
colours = ["#2a9d8f" if g.trainable else "#adb5bd" for g in summary.groups]
hover = [f"{g.name}<br>{g.params:,} parameters<br>output {'x'.join(map(str, lg.output_shape or ()))}"
         f"<br>{'trains' if g.trainable else 'frozen'}, lr x{g.lr_scale:.3g}"
         + (f"<br>unfreezes at epoch {g.unfreezes_at}" if g.unfreezes_at is not None else "")
         for g, lg in zip(summary.groups, groups)]
figure = go.Figure(go.Bar(x=[f"{g.index} {g.name}" for g in summary.groups], y=[g.params for g in summary.groups],
                          marker_color=colours, hovertext=hover, hoverinfo="text",
                          text=[f"x{g.lr_scale:.2g}" for g in summary.groups], textposition="outside"))
figure.update_layout(title="Layer groups, stem to head (green trains, grey frozen; label: learning-rate scale)",
                     yaxis_type="log", yaxis_title="parameters", height=420, margin=dict(t=60, b=120))
st.plotly_chart(figure, on_select="rerun", selection_mode="points", key="freeze.chart")
st.caption("Click a block to freeze everything before it.")
m1, m2 = st.columns(2)
m1.metric("Trainable parameters", f"{summary.trainable_params:,}")
m2.metric("Share of the model", f"{summary.trainable_share:.2%}")
