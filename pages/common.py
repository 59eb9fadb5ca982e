"""What every page shares, by job in its own module (state, scanning, jobs, model_info,
thumbnails) and re-exported here; the sidebar itself is drawn here: the experiment (one typed object, kept in a file), the default data set, display helpers.

Pages stay thin: they collect choices, call `tlcore`, and show results through these. The experiment
(`pages.experiment.Experiment`) is the state; widget keys are not. Each page owns its widgets' keys
(`train:epochs` is not `compare:epochs`), a widget starts from the experiment on every run, and only its
`on_change`, that is the user, writes back: a widget's default, minimum or clamped value never does."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from tlcore.errors import TransferLabError
from tlcore.text.augment import TextAugment
from tlcore.text.catalog import DEFAULT_TEXT_MODEL
from tlcore.core.schema import counted
from pages.state import (PROJECT_ROOT, SAMPLE_DATA, SAMPLE_TEXTS, MAX_UPLOAD_MB, experiment, choice, save_experiment,
    change, bind, number_bounds, with_current, setting_widget, settings_not_shown, new_experiment, run_config,
    experiment_runs_first, augment_spec, model_spec, texts_chosen, items_word, augmentation_words, run_model_spec,
    follow_the_data, measured_epoch_seconds, open_store, labelling_folder)
from pages.scanning import data_report, scan_any, forget_report, num_classes
from pages.jobs import job_folder, TlcoreJob, measured_time_estimates, rank_in_a_child_process, known_time_estimate
from pages.model_info import (has_weights, weights_words, resize_words, normalise_words, ModelOverview,
    model_overview, gpu_speed_notes)
from pages.thumbnails import (save_upload, labelled_target_pictures, target_pictures, show_picture, picture_pairs,
    sample_grid)

__all__ = ["PROJECT_ROOT", "SAMPLE_DATA", "SAMPLE_TEXTS", "MAX_UPLOAD_MB", "experiment", "choice", "save_experiment",
           "change", "bind", "number_bounds", "with_current", "setting_widget", "settings_not_shown", "new_experiment",
           "run_config", "experiment_runs_first", "augment_spec", "model_spec", "texts_chosen", "items_word",
           "augmentation_words", "run_model_spec", "follow_the_data", "measured_epoch_seconds", "open_store",
           "labelling_folder", "data_report", "scan_any", "forget_report", "num_classes", "job_folder", "TlcoreJob",
           "measured_time_estimates", "rank_in_a_child_process", "known_time_estimate", "has_weights", "weights_words",
           "resize_words", "normalise_words", "ModelOverview", "model_overview", "gpu_speed_notes", "save_upload",
           "labelled_target_pictures", "target_pictures", "show_picture", "picture_pairs", "sample_grid", "show_sidebar"]


def show_sidebar() -> None:
    """The choices made so far, visible from every page, with the experiment's own controls."""
    current = experiment()
    c = current.get
    report = data_report()
    with st.sidebar:
        st.caption(f"Your experiment ({current.id}); its link keeps it")
        if report is None:
            st.write(f"**Data:** `{Path(c('data.source')).name or 'none chosen'}`, not readable yet")
        else:
            kind = "texts" if getattr(report, "layout", "") == "texts" else "images"
            st.write(f"**Data:** `{Path(getattr(report, 'source', report.root)).name}`, {len(report.classes)} classes, "
                     f"{len(report.images)} {kind}")
        st.write(f"**Split:** seed {c('data.split_seed')}" + (f", `{Path(c('data.manifest')).name}`"
                                                              if c("data.manifest") else " (made when a run starts)"))
        spec = model_spec()
        if run_model_spec().name != spec.name:  # what the run will use
            st.write(f"**Model:** `{DEFAULT_TEXT_MODEL}` (the default text model, for the texts)")
        else:
            st.write(f"**Model:** `{spec.name}` ({weights_words(spec)})")
        if texts_chosen():
            shares = TextAugment(c("text_augment.word_dropout"), c("text_augment.swap"), c("text_augment.deletion"))
            st.write(f"**Augment:** {shares.words() or 'none'}")
        else:
            st.write(f"**Augment:** {c('augment.preset')}{' (edited)' if c('app.augment_json').strip() else ''}")
        st.write(f"**Freeze:** {c('freeze.strategy').replace('_', ' ')}")
        st.write(f"**Train:** {counted(c('epochs'), 'epoch')}, batch {c('batch_size')}, lr {c('optimizer.lr'):g}")
        st.button("New experiment", key="sidebar.new", on_click=new_experiment,
                  help="Start again from the defaults; this experiment stays at its link.")
        try:
            config_json = run_config().to_json()
        except (TransferLabError, ValueError) as exc:  # ValueError: the user's augmentation JSON
            st.caption(f"Config not complete: {exc}")
            return
        with st.expander("Run config (JSON)"):
            st.code(config_json, language="json")
        st.download_button("Download config", config_json, file_name="transferlab_run.json", mime="application/json",
                           key="sidebar.download", help="Replay it with: python -m tlcore train transferlab_run.json")
