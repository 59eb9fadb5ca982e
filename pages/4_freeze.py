"""Step 4: see the model as blocks from stem to head and choose which stay frozen."""

import json

import plotly.graph_objects as go
import streamlit as st

from pages.common import (bind, change, choice, experiment, follow_the_data, model_overview, num_classes, number_bounds,
                          run_model_spec, show_sidebar, with_current)
from tlcore.core.strategies import strategy_sentence
from tlcore.errors import TransferLabError
from tlcore.modality import for_model
from tlcore.spec.freeze import STRATEGIES, default_lr_spread, make_plan, summarize

experiment()
st.title("4 · Freeze")
try:
    overview = model_overview(json.dumps(run_model_spec().to_dict()), num_classes())
except TransferLabError as exc:
    st.error(f"{exc} (choose another model on the Model page)")
    st.stop()
groups = overview.groups
n = len(groups)
kind = for_model(run_model_spec().name)  # its own words: a text encoder has embeddings, not a stem
first = kind.first_group_words


def _clicked() -> None:
    """A click on a block sets the freeze boundary: everything before it stays frozen."""
    selection = st.session_state["freeze.chart"].selection
    if selection and selection.points:
        change({"freeze.strategy": "freeze_first_k", "freeze.k": min(selection.points[0]["point_index"], n - 1)})


def _strategy_changed() -> None:
    """The user chose another strategy: its own learning-rate spread comes with it (fine_tune spreads)."""
    change({"freeze.lr_spread": None})
    follow_the_data()  # e.g. a whole text encoder: lr 1e-4 with a warm-up instead of the picture head's 3e-3


labels = {k: k.replace("_", " ") for k in STRATEGIES}
strategy = st.radio("Strategy", with_current("freeze.strategy", list(STRATEGIES)), format_func=labels.get,
                    horizontal=True, **bind("freeze", "freeze.strategy", then=_strategy_changed))
st.caption(strategy_sentence(strategy, kind.early_features_words, first))
c1, c2 = st.columns(2)
if strategy == "freeze_first_k":
    c1.slider(f"Frozen groups (from the {first})", **number_bounds("freeze.k", 0, n - 1),  # unset: half, as the run does
              **bind("freeze", "freeze.k", shown=lambda k: n // 2 if k is None else k))
elif strategy == "gradual":
    c1.number_input("Unfreeze one more group every N epochs", **number_bounds("freeze.every", 1, 20),
                    **bind("freeze", "freeze.every"))
elif strategy == "fine_tune":
    c1.number_input("Head-only epochs first", **number_bounds("freeze.head_epochs", 1, 20),
                    **bind("freeze", "freeze.head_epochs"))
if strategy != "feature_extraction":  # only the head trains there: one learning rate, nothing to spread
    own = float(default_lr_spread(strategy))  # unset: the strategy's own, as the run does
    spread = choice("freeze.lr_spread")
    c2.select_slider(f"Learning-rate spread (head lr ÷ {first} lr)",
                     sorted({1.0, 3.0, 10.0, 30.0, 100.0, own, spread if spread is not None else own}),
                     help="Discriminative learning rates: earlier, more generic layers change more slowly.",
                     **bind("freeze", "freeze.lr_spread", shown=lambda v: own if v is None else v))
if kind.normalisation_words:  # text encoders have no BatchNorm
    st.checkbox("Update BatchNorm statistics in frozen groups",
                help=f"Off keeps {kind.normalisation_words}: safer with small batches and small data sets.",
                **bind("freeze", "freeze.train_bn"))
try:
    plan = make_plan(strategy, n, k=choice("freeze.k"), every=choice("freeze.every"),
                     head_epochs=choice("freeze.head_epochs"), lr_spread=choice("freeze.lr_spread"),
                     train_bn=choice("freeze.train_bn"))
except TransferLabError as exc:
    st.error(str(exc))
    st.stop()
show_sidebar()

last_epoch = max(1, choice("epochs")) - 1  # the run's own epochs (Train page)
epoch = st.slider("Show epoch (of the run's epochs)", 0, last_epoch, 0, key="freeze.epoch") \
    if len(plan.stages) > 1 and last_epoch > 0 else 0
summary = summarize(groups, plan, epoch)
colours = ["#2a9d8f" if g.trainable else "#adb5bd" for g in summary.groups]
hover = [f"{g.name}<br>{g.params:,} parameters<br>output {'x'.join(map(str, lg.output_shape or ()))}"
         f"<br>{'trains' if g.trainable else 'frozen'}, lr x{g.lr_scale:.3g}"
         + (f"<br>unfreezes at epoch {g.unfreezes_at}" if g.unfreezes_at is not None else "")
         for g, lg in zip(summary.groups, groups)]
figure = go.Figure(go.Bar(x=[f"{g.index} {g.name}" for g in summary.groups], y=[g.params for g in summary.groups],
                          marker_color=colours, hovertext=hover, hoverinfo="text",
                          text=[f"lr x{g.lr_scale:.2g}" if g.trainable else "frozen" for g in summary.groups],
                          textposition="outside", cliponaxis=False))
figure.update_layout(title=f"Layer groups, {first} to head", yaxis_type="log", yaxis_title="parameters", height=420,
                     margin=dict(t=60, b=120, r=40))
st.plotly_chart(figure, on_select=_clicked, selection_mode="points", key="freeze.chart")
st.caption("Green trains, grey stays frozen; above each bar, its learning-rate scale. Click a block to freeze "
           "everything before it.")
m1, m2 = st.columns(2)
m1.metric("Trainable parameters", f"{summary.trainable_params:,}")
m2.metric("Share of the model", f"{summary.trainable_share:.2%}")
