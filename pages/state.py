"""The app's state as pages use it: the experiment of the page's link (one typed object, kept in its file),
widgets bound to its settings (each page owns its keys; only the user's change writes back), and what the
experiment's choices say (model, augmentation, the kind of data)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from tlcore.inputs.augment_spec import AugmentSpec
from tlcore.config import RunConfig
from pages.experiment import RUN_SETTINGS, Experiment, ExperimentError, ExperimentStore, setting
from tlcore.models import DEFAULT_MODEL, ModelSpec
from tlcore.errors import TransferLabError
from tlcore.core.paths import data_home
from tlcore.runs import RunStore
from tlcore.text.data import is_text_source
from tlcore.text.catalog import DEFAULT_TEXT_MODEL, is_text_model
from tlcore.core.schema import recommended_values
from tlcore.experiments.timing import measured_epoch_seconds as timing_measured_epoch_seconds

__all__ = ["PROJECT_ROOT", "SAMPLE_DATA", "SAMPLE_TEXTS", "MAX_UPLOAD_MB", "experiment", "choice", "save_experiment",
           "change", "bind", "number_bounds", "with_current", "setting_widget", "settings_not_shown", "new_experiment",
           "run_config", "experiment_runs_first", "augment_spec", "model_spec", "texts_chosen", "items_word",
           "augmentation_words", "run_model_spec", "follow_the_data", "measured_epoch_seconds", "open_store",
           "labelling_folder"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = PROJECT_ROOT / "sample_data"
SAMPLE_TEXTS = SAMPLE_DATA / "support_tickets.csv"
MAX_UPLOAD_MB = 1024
_EXPERIMENT = "_experiment"  # session-state slot of the loaded experiment
_REPORT = "_scan_report"  # session-state slot of (source, ScanReport): derived, never saved


def _use_the_apps_navigation() -> None:
    """A page URL opened first on a fresh server runs that page without app.py: Streamlit then lists every
    file under pages/ itself (this module included, without the app's titles) until app.py's `st.navigation`
    runs once. Run the page again, through app.py. Reads Streamlit's own flag, as there is no public one."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def _fresh() -> Experiment:
    return ExperimentStore().new({"data.source": str(SAMPLE_DATA)})


def experiment() -> Experiment:
    """The experiment named in the URL (`?exp=ID`): from this session, else from its file; a new one otherwise."""
    _use_the_apps_navigation()
    s = st.session_state
    wanted = st.query_params.get("exp")
    current: Experiment | None = s.get(_EXPERIMENT)
    if current is None or (wanted and current.id != wanted):
        current = None
        if wanted:
            try:
                current = ExperimentStore().load(wanted)
            except TransferLabError as exc:
                st.warning(f"{exc}: a new experiment was started")
        s[_EXPERIMENT] = current = current or _fresh()
        s.pop(_REPORT, None)
    if st.query_params.get("exp") != current.id:
        st.query_params["exp"] = current.id
    return current


def choice(path: str):
    """The experiment's current value of one setting (`optimizer.lr`, `app.folder`...)."""
    return experiment().get(path)


def save_experiment() -> None:
    """Write the experiment to its file; what cannot be written is said on the page and kept in this tab."""
    try:
        ExperimentStore().save(experiment())
    except TransferLabError as exc:  # e.g. a huge text pasted, a full disk
        st.warning(f"this change is kept in this tab only: {exc}")


def change(values: dict) -> None:
    """Set settings the user chose by an action (a chart click, "Use this lr") and save.

    Widgets showing them follow on the next run: `bind` draws every widget from the experiment.
    Raises: ExperimentError for an unknown setting or a value of the wrong type (a bug, not a user's mistake).
    """
    current = experiment()
    for path, value in values.items():
        current.set(path, value)
    save_experiment()


def _committed(key: str, path: str, stored: Callable | None, then: Callable[[], None] | None) -> None:
    """A widget's on_change: the user changed it; the experiment takes the new value."""
    value = st.session_state[key]
    try:
        experiment().set(path, stored(value) if stored else value)
    except TransferLabError as exc:  # shown at the top of the page; the experiment keeps its value
        st.error(str(exc))
        return
    if then is not None:
        then()
    save_experiment()


def bind(page: str, path: str, *, shown: Callable | None = None, stored: Callable | None = None,
         then: Callable[[], None] | None = None, widget: str | None = None) -> dict:
    """Keyword arguments that tie one page's widget to one setting of the experiment.

    The widget's key is the page's own (`page:path`). It shows the experiment's value on every run
    (through `shown` where the widget holds it differently, e.g. a checkbox for `model.weights == "random"`),
    and only its on_change, that is the user, writes back (through `stored`), then calls `then`.

    Args:
        page: the page owning the widget ("train", "compare"...).
        path: the experiment's setting.
        shown: the setting's value as the widget holds it.
        stored: the widget's value as the setting holds it.
        then: called after a change is taken (it may `change` other settings).
        widget: the key's name after the page's, where two widgets of a page show one setting (default: `path`).

    Returns: `key`, `on_change` and `args` for the widget: `st.number_input("Epochs", **bind("train", "epochs"))`.
    """
    key = f"{page}:{widget or path}"
    value = choice(path)
    # Always, even when the key seems to hold it already: a widget that was not drawn for a run (an st.stop above
    # it) comes back under a new identity, and without a value set here it would show its minimum (the Data
    # page's shares read 0.05, and "Make split" used them).
    st.session_state[key] = shown(value) if shown else value
    return {"key": key, "on_change": _committed, "args": (key, path, stored, then)}


def number_bounds(path: str, low: float, high: float) -> dict:
    """`min_value`/`max_value` for a number widget that also hold the setting's value, so the widget never
    clamps it (a config replayed from the CLI may hold 500 epochs: the widget shows 500, not its maximum).

    Args:
        path: the setting the widget shows.
        low, high: the range offered.

    Returns: the two keyword arguments.
    """
    value = choice(path)
    if value is None:
        return {"min_value": low, "max_value": high}
    kind = type(low)
    return {"min_value": kind(min(low, value)), "max_value": kind(max(high, value))}


def with_current(path: str, options: list) -> list:
    """A selector's options with the setting's value among them (a replayed config's value stays shown)."""
    value = choice(path)
    if isinstance(value, list):
        return options + [v for v in value if v not in options]
    return options if value in options else [value] + options


def _json_value(text: str) -> object:
    """A list setting typed as JSON; ExperimentError (shown above the page) when it is not JSON."""
    try:
        return json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        raise ExperimentError(f"{text[:40]!r} is not a JSON list", 'write it as e.g. ["a", "b"] or [3, 160, 160]') \
            from None


def setting_widget(page: str, path: str, container=None, **overrides) -> object:
    """One run setting drawn from its declaration on the config field: its label, help, options or bounds.

    A switch is a checkbox, a choice a select box (its options, or its suggestions for an open choice), a number
    a number field within its bounds (empty where the setting may be unset), a list JSON text, anything else text.

    Args:
        page: the page owning the widget.
        path: the run setting (`optimizer.momentum`).
        container: where to draw it (a column, an expander; default: the page).
        **overrides: keyword arguments for the widget over the declared ones (`label`, `help`, `format`...).

    Returns:
        The widget's value.
    """
    container = container or st
    declared = setting(path)
    meta, kinds = declared.leaf.meta, declared.kinds
    label = overrides.pop("label", meta.label)
    overrides.setdefault("help", meta.help)
    if bool in kinds:
        return container.checkbox(label, **overrides, **bind(page, path))
    choices = meta.options if meta.options is not None else meta.suggestions
    if choices is not None:
        return container.selectbox(label, with_current(path, [c for c in choices if c != "custom"]), **overrides,
                                   **bind(page, path))
    if int in kinds or float in kinds:
        whole = float not in kinds
        kind = int if whole else float
        low = kind(meta.low if meta.low is not None else -1e9)
        high = kind(meta.high if meta.high is not None else 1e9)
        if not whole:
            overrides.setdefault("format", "%.2e" if 0 < (meta.low or 0) < 1e-3 else "%.4f")
        return container.number_input(label, **number_bounds(path, low, high), **overrides, **bind(page, path))
    if list in kinds:
        return container.text_input(label, **overrides, **bind(page, path, shown=lambda v: json.dumps(v) if v else "",
                                                               stored=_json_value))
    none_allowed = type(None) in kinds
    return container.text_input(label, **overrides, **bind(page, path, shown=lambda v: v or "",
                                                           stored=lambda v: (v or None) if none_allowed else v))


def settings_not_shown(group: str, shown: set[str], texts: bool, strategy: str) -> list[str]:
    """The run settings of one group that a page has not drawn and that this experiment's run reads.

    Args:
        group: the declared group ("train", "runtime"...).
        shown: settings the page already drew.
        texts: the data is texts (settings only pictures read are left out, and the other way round).
        strategy: the freeze strategy (settings only other strategies read are left out).

    Returns:
        Their dotted paths, in the config's order.
    """
    modality = "texts" if texts else "images"
    return [s.path for s in RUN_SETTINGS if s.leaf.meta.group == group and s.path not in shown
            and modality in s.leaf.meta.modalities and s.leaf.used_by(strategy)]


def new_experiment(start: Experiment | None = None) -> Experiment:
    """Start a fresh experiment (defaults, or a run's settings from `Experiment.from_config`) in the URL."""
    current = start or _fresh()
    if start is not None:
        ExperimentStore().save(current)
    st.session_state[_EXPERIMENT] = current
    st.session_state.pop(_REPORT, None)
    st.query_params.clear()
    st.query_params["exp"] = current.id
    return current


def run_config() -> RunConfig:
    """The whole experiment as the one JSON document the CLI replays (`python -m tlcore train`), with the model the
    run will train: texts chosen with the default picture model get the default text model here, so the sidebar's
    JSON, the downloaded file, the estimate and the time note all name the model that runs.

    Raises: TransferLabError naming the setting that does not make a valid run.
    """
    from dataclasses import replace

    config = experiment().run_config()
    model = run_model_spec().name
    return config if model == config.model.name else replace(config, model=replace(config.model, name=model))


def experiment_runs_first(runs: list) -> list:
    """The store's runs with this experiment's own first (each part in the store's order, newest first)."""
    current = experiment()
    return [r for r in runs if current.owns(r.id, r.sweep)] + [r for r in runs if not current.owns(r.id, r.sweep)]


def augment_spec() -> AugmentSpec:
    """The preset, or the user's edited JSON when there is one (validated by the engine).

    Raises: ConfigError for JSON that does not parse, AugmentError for steps albumentations refuses.
    """
    return AugmentSpec.from_dict(experiment().augment_data())


def model_spec() -> ModelSpec:
    """The experiment's model: name, weights ("auto", "random" or a file) and whether it may download."""
    return ModelSpec(name=choice("model.name"), weights=choice("model.weights"),
                     allow_download=choice("model.allow_download"))


def texts_chosen() -> bool:
    """The experiment's data is texts (a CSV, TSV or JSONL file, or class folders of .txt files)."""
    return is_text_source(choice("data.source"))


def items_word() -> str:
    """What this experiment classifies, in words: "texts" or "pictures"."""
    return "texts" if texts_chosen() else "pictures"


def augmentation_words(config: RunConfig) -> str:
    """The run's augmentation as people name it, for its own kind of data: "light", "word dropout 0.05, ...", "none".

    Args:
        config: the run.

    Returns:
        The words.
    """
    if texts_chosen():
        return config.text_augment.words() or "none"
    return config.augment.preset or "custom"


def run_model_spec() -> ModelSpec:
    """The model a run of this experiment will use: the chosen one, or for texts chosen with the default image
    model, the default text model (as `tlcore.training.preflight.model_for_the_data` decides for the run)."""
    spec = model_spec()
    if texts_chosen() and not is_text_model(spec.name) and spec.name == DEFAULT_MODEL:
        return ModelSpec(name=DEFAULT_TEXT_MODEL)
    return spec


def follow_the_data() -> list[str]:
    """After the user changed the data or the freeze plan: settings whose values the app chose follow the field's
    own value for this modality and strategy (`tlcore.core.schema.recommended_values`: a whole text encoder trains at
    lr 1e-4 with a warm-up, a picture head at 3e-3); a value the user typed stays. Called from widgets' callbacks.

    Returns:
        What changed, in words (also shown on the Train page).
    """
    current = experiment()
    try:
        config = current.run_config()
    except TransferLabError:  # settings mid-edit: nothing follows until they make a run
        return []
    applied = dict(current.get("app.recommended"))
    values = current.all_values()
    changes = recommended_values(RunConfig, values, "texts" if texts_chosen() else "images",
                                 not config.freeze.trains_only_head(config.epochs), applied)
    said = []
    for path, (value, why) in changes.items():
        current.set(path, value)
        applied[path] = value
        said.append(f"{setting(path).leaf.meta.label}: {value:g}" + (f" ({why})" if why else " (the default)"))
    if changes:
        current.set("app.recommended", applied)
        save_experiment()
    return said


def measured_epoch_seconds(store: RunStore, config: RunConfig) -> tuple[float, str, float | None] | None:
    """`tlcore.experiments.timing.measured_epoch_seconds` with this experiment's own runs first."""
    return timing_measured_epoch_seconds(store, config, first=experiment().runs)


def open_store() -> RunStore:
    """The run store; what opening it had to do (a damaged store set aside, runs found again) is said on the page."""
    try:
        store = RunStore()
    except TransferLabError as exc:
        st.error(str(exc))
        st.stop()
    for note in store.notes:
        st.warning(note)
    return store


def labelling_folder() -> Path:
    """Where this experiment's labels of target pictures go (`adapt.labelled` points here once there is one)."""
    return data_home() / "labelled" / experiment().id
