"""What every page shares: the experiment (one typed object, kept in a file), the default data set, display helpers.

Pages stay thin: they collect choices, call `tlcore`, and show results through these. The experiment
(`pages.experiment.Experiment`) is the state; widget keys are not. Each page owns its widgets' keys
(`train:epochs` is not `compare:epochs`), a widget starts from the experiment on every run, and only its
`on_change`, that is the user, writes back: a widget's default, minimum or clamped value never does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from tlcore.spec.adapt_spec import TargetSet, scan_labelled_target, scan_target
from tlcore.inputs.augment_spec import AugmentSpec
from tlcore.config import RunConfig
from tlcore.data import ScanReport, load_rgb, scan
from tlcore.data.images import ImageReadError
from pages.experiment import RUN_SETTINGS, Experiment, ExperimentError, ExperimentStore, setting
from tlcore.models import DEFAULT_MODEL, ModelSpec, check_weights
from tlcore.errors import TransferLabError
from tlcore.models.groups import LayerGroup
from tlcore.models.weights import packaged_weights_present
from tlcore.core.paths import data_home
from tlcore.runs import RunStore
from tlcore.text.augment import TextAugment
from tlcore.text.data import is_text_source, read_texts
from tlcore.text.catalog import DEFAULT_TEXT_MODEL, is_text_model
from tlcore.core.schema import counted, recommended_values
from tlcore.experiments.timing import TimeEstimate, timing_key
from tlcore.experiments.timing import measured_epoch_seconds as timing_measured_epoch_seconds

__all__ = [
    "PROJECT_ROOT", "SAMPLE_DATA", "MAX_UPLOAD_MB", "ModelOverview", "open_store", "experiment", "choice", "bind",
    "number_bounds", "with_current", "change", "save_experiment", "new_experiment", "data_report", "forget_report",
    "run_config", "TlcoreJob", "job_folder", "measured_time_estimates", "known_time_estimate", "show_sidebar",
    "save_upload", "sample_grid", "augment_spec", "model_spec", "num_classes", "model_overview",
    "measured_epoch_seconds", "resize_words", "normalise_words", "target_pictures", "picture_pairs", "show_picture", "labelling_folder",
    "experiment_runs_first", "has_weights", "weights_words", "texts_chosen", "run_model_spec",
]

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


def data_report() -> ScanReport | None:
    """The scan of the experiment's data set: from this session, or scanned again (after a reload or restart)."""
    source = choice("data.source")
    cached = st.session_state.get(_REPORT)
    if cached and cached[0] == source:
        return cached[1]
    if not source:
        return None
    try:
        with st.spinner("Reading every file..."):
            report = scan_any(source)
    except TransferLabError:
        return None
    st.session_state[_REPORT] = (source, report)
    return report


def scan_any(source: str):
    """The data set's report: a picture folder's scan, or a text file's (with the experiment's columns).

    Args:
        source: a folder, zip or text file.

    Returns:
        A `ScanReport` or a `TextReport`.

    Raises:
        TransferLabError: the source cannot be read.
    """
    if is_text_source(source):
        return read_texts(source, text_column=choice("data.text_column"), label_column=choice("data.label_column"))
    return scan(source)


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


def forget_report() -> None:
    """Drop the cached scan (the data set changed)."""
    st.session_state.pop(_REPORT, None)


def run_config() -> RunConfig:
    """The whole experiment as the one JSON document the CLI replays (`python -m tlcore train`).

    Raises: TransferLabError naming the setting that does not make a valid run.
    """
    return experiment().run_config()


def experiment_runs_first(runs: list) -> list:
    """The store's runs with this experiment's own first (each part in the store's order, newest first)."""
    current = experiment()
    return [r for r in runs if current.owns(r.id, r.sweep)] + [r for r in runs if not current.owns(r.id, r.sweep)]


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


def measured_epoch_seconds(store: RunStore, config: RunConfig) -> tuple[float, str, float | None] | None:
    """`tlcore.experiments.timing.measured_epoch_seconds` with this experiment's own runs first."""
    return timing_measured_epoch_seconds(store, config, first=experiment().runs)


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


@st.cache_data(show_spinner=False, max_entries=500, ttl=60)  # a weights file put in place shows within a minute
def has_weights(spec_json: str) -> bool:
    """Whether a model spec's weights are here (its offline package or cache, or its file), without downloading;
    kept per spec, as the sidebar and the Model page's lists ask on every run."""
    spec = ModelSpec.from_dict(json.loads(spec_json))
    if spec.weights in ("", "auto") and packaged_weights_present(spec.name):
        return True  # known without loading timm and torch, which the first page need not wait for
    try:
        check_weights(spec)
    except TransferLabError:
        return False
    return True


def weights_words(spec: ModelSpec) -> str:
    """How the model starts, in the words of the Model page: pretrained, random, a file, or needing weights."""
    if spec.weights == "random":
        return "random init"
    if not has_weights(json.dumps(spec.to_dict())):
        return "needs weights"
    return "weights file" if spec.weights != "auto" else "pretrained"


def num_classes() -> int:
    report = data_report()
    return len(report.classes) if report is not None and len(report.classes) >= 2 else 2


def job_folder(command: str) -> Path:
    """A new folder for one child process's files, in the data folder."""
    (data_home() / "jobs").mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{command}-", dir=data_home() / "jobs"))


class TlcoreJob:
    """A `python -m tlcore ...` child process that a page follows through its output and can cancel.

    Anything that trains or measures runs in its own process, as runs do: the server never holds a model
    in training (nor, on a GPU, the device's memory), and a crash or a cancel cannot take the app down.
    """

    def __init__(self, args: list[str], folder: Path) -> None:
        self.folder = folder
        with (folder / "stdout.txt").open("w") as out, (folder / "stderr.txt").open("w") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "tlcore", *args], cwd=PROJECT_ROOT, stdout=out,
                                            stderr=err, stdin=subprocess.DEVNULL)
        threading.Thread(target=self.process.wait, daemon=True).start()  # reaped whoever stops following it

    @classmethod
    def start(cls, command: str, configs: list[RunConfig], *extra: str) -> "TlcoreJob":
        """`tlcore COMMAND CONFIG... EXTRA...`, where "{folder}" in EXTRA is the job's own folder."""
        folder = job_folder(command)
        extra = tuple(arg.format(folder=folder) for arg in extra)
        paths = []
        for i, config in enumerate(configs):
            paths.append(folder / f"config-{i}.json")
            paths[-1].write_text(config.to_json())
        return cls([command, *map(str, paths), *extra], folder)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def lines(self, name: str = "stdout.txt") -> list[str]:
        """The complete lines written so far (a line still being written is left for the next look)."""
        try:
            text = (self.folder / name).read_text()
        except OSError:
            return []
        return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]

    def error(self) -> str | None:
        """None while running or after success; else the command's own one-line error."""
        code = self.process.poll()
        if code in (None, 0):
            return None
        if code < 0:
            return "cancelled"
        errors = [line[7:] for line in self.lines("stderr.txt") if line.startswith("error: ")]
        return errors[-1] if errors else f"it stopped with exit code {code}; see {self.folder / 'stderr.txt'}"

    def cancel(self) -> None:
        if self.running:
            self.process.terminate()


def measured_time_estimates(configs: list[RunConfig], progress: Callable[[int, int], None]) -> list[TimeEstimate]:
    """Time estimates of runs, measured in a child process once per distinct step cost (`timing_key`: runs that
    differ only in learning rate, schedule, seed or epochs share one) and kept in the experiment, so a reload or a
    restarted server shows them again; `progress(done, total)` as they arrive.

    Raises: TransferLabError when the measuring process fails.
    """
    current = experiment()
    known: dict[str, dict] = current.results.setdefault("estimates", {})
    longest: dict[str, RunConfig] = {}  # per key, the run with the most epochs: the others take its first epochs
    for config in configs:
        key = timing_key(config)
        if known_time_estimate(config) is None and (key not in longest or config.epochs > longest[key].epochs):
            longest[key] = config
    if longest:
        job = TlcoreJob.start("estimate", list(longest.values()), "--json")
        try:
            while job.running:
                progress(len(job.lines()), len(longest))
                time.sleep(0.3)
            if job.error():
                raise TransferLabError(f"the time could not be measured: {job.error()}")
            for key, line in zip(longest, job.lines()):
                known[key] = json.loads(line)
            save_experiment()
        finally:
            job.cancel()  # the page was left or rerun while it measured: stop measuring
    return [known_time_estimate(c) for c in configs]


def rank_in_a_child_process(config: RunConfig, candidates: list[str]) -> None:
    """`tlcore models rank` on the experiment's split, with a progress bar; the scores are kept in the experiment.

    Raises: TransferLabError when ranking fails.
    """
    folder = job_folder("rank")
    (folder / "config.json").write_text(config.to_json())
    job = TlcoreJob(["models", "rank", "--config", str(folder / "config.json"), "--models", ",".join(candidates),
                     "--json"], folder)
    bar = st.progress(0.0, text=f"Extracting features with {candidates[0]}...")
    try:
        while job.running:
            done = len(job.lines())
            if done < len(candidates):
                bar.progress(done / len(candidates), text=f"{done} of {len(candidates)} models scored; now "
                                                          f"{candidates[done]}...")
            time.sleep(0.3)
        if job.error():
            raise TransferLabError(f"the models could not be ranked: {job.error()}")
        experiment().results["ranking"] = {"asked": candidates, "scores": [json.loads(x) for x in job.lines()]}
        save_experiment()
    finally:
        job.cancel()
        bar.empty()


def known_time_estimate(config: RunConfig) -> TimeEstimate | None:
    """The estimate this experiment measured for this run config or one of the same step cost, if any (one
    measured over fewer epochs than the config has does not say enough)."""
    known = experiment().results.get("estimates", {}).get(timing_key(config))
    try:
        estimate = TimeEstimate.from_dict(known) if known else None
    except (KeyError, TypeError, ValueError):  # an estimate edited in the experiment's file: measured again
        estimate = None
    return estimate.for_epochs(config.epochs) if estimate and len(estimate.epoch_s) >= config.epochs else None


def resize_words(interpolation: str, crop_pct: float) -> str:
    return f"{interpolation}, crop {crop_pct:g}"


def normalise_words(mean, std) -> str:
    """A model's normalisation as people name it; the numbers where it has no name."""
    def near(values, target) -> bool:  # TF ports store 127/255 and 128/255 for 0.5
        return len(values) == len(target) and all(abs(v - t) < 0.005 for v, t in zip(values, target))

    values = (*mean, *std)
    if near(values, (0.485, 0.456, 0.406, 0.229, 0.224, 0.225)):
        return "ImageNet mean/std"
    if near(values, (0.5,) * 6):
        return "to [-1, 1]"
    if near(values, (0.0, 0.0, 0.0, 1.0, 1.0, 1.0)):
        return "none (0 to 1)"
    return "mean " + ", ".join(f"{v:.3f}" for v in mean) + "; std " + ", ".join(f"{v:.3f}" for v in std)


@dataclass(frozen=True)
class ModelOverview:
    """What pages show of a model; never the model object itself (that stays out of session state)."""

    label: str
    weights: str
    pretrained: bool
    preprocessing: dict
    groups: list[LayerGroup]


@st.cache_data(show_spinner="Building the model...", max_entries=8)
def model_overview(spec_json: str, classes: int) -> ModelOverview:
    """A model's label, weights, preprocessing and layer groups (an image model or a text encoder)."""
    from tlcore.modality import build_for  # loads torch: only pages that show a model pay for it

    built = build_for(ModelSpec.from_dict(json.loads(spec_json)), classes)
    return ModelOverview(built.label, built.weights.description, built.weights.pretrained,
                         built.preprocessing.to_dict(), built.groups)


def gpu_speed_notes() -> list[str]:
    """What the GPU speed settings would do for this experiment: where augmentation runs, the cache's size."""
    import torch

    from tlcore.inputs.decoded import DEFAULT_MAX_GB, cache_bytes, square_size
    from tlcore.inputs.device_augment import device_spec
    from tlcore.models import Preprocessing

    notes = [f"This machine {'has a CUDA GPU: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'has no CUDA GPU: auto leaves all three off'}."]
    try:
        steps, why = device_spec(augment_spec())
    except TransferLabError as exc:  # the user's own steps do not make an augmentation (yet)
        steps, why = None, str(exc)
    notes.append("This augmentation can run on the GPU." if steps is not None else f"Augmentation: {why}.")
    report = data_report()
    try:
        p = Preprocessing(**model_overview(json.dumps(model_spec().to_dict()), num_classes()).preprocessing)
    except TransferLabError:
        return notes
    if report is not None:
        side, size = square_size(p), cache_bytes(len(report.images), p)
        notes.append(f"Decoded-image cache for these {len(report.images):,} pictures: {size / 1e9:.2f} GB "
                     f"({side}x{side} px each; a run over {DEFAULT_MAX_GB:g} GB reads the JPEGs and says so).")
    return notes


def save_upload(upload_id: str, name: str, data: bytes) -> Path:
    """Keep an uploaded zip in the data folder, once per upload (every rerun hands the same bytes again)."""
    folder = data_home() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{upload_id}-{Path(name).name}"
    if not path.is_file():
        path.write_bytes(data)
    return path


@st.cache_data(show_spinner=False, max_entries=2000)
def _thumbnail(path: str, stamp: tuple[int, int], thumb: int):
    """A picture's thumbnail, decoded once per file version (`stamp`: size and mtime) and then reused: the
    grid is drawn on every visit of the Data page, and decoding full-size photos made the page slow."""
    img = load_rgb(Path(path))
    img.thumbnail((thumb, thumb))
    return np.asarray(img)


@st.cache_data(show_spinner="Reading the labelled target pictures...", ttl=60, max_entries=20)
def labelled_target_pictures(source: str, classes: tuple[str, ...]) -> list[tuple[Path, int, str]]:
    """The few labelled target pictures as a run will read them (class sub-folders named as the data's)."""
    return scan_labelled_target(source, list(classes))


@st.cache_data(show_spinner="Reading the target pictures...", max_entries=8, ttl=600)
def target_pictures(source: str) -> TargetSet:
    """The adaptation target as a run will read it (every readable picture, folder names ignored)."""
    return scan_target(source)


def _show_thumbnail(column, path: Path, thumb: int, caption: str | None = None, shown_name: str | None = None) -> None:
    """One thumbnail in a column, or why it cannot be shown (the file changed or went since the scan)."""
    try:
        stat = path.stat()
        column.image(_thumbnail(str(path), (stat.st_size, stat.st_mtime_ns), thumb), caption=caption)
    except (ImageReadError, OSError) as exc:
        column.caption(f"{shown_name or path.name}: {exc}")


def show_picture(container, path: Path, size: int = 320) -> None:
    """One picture, large enough to tell its class (the labelling on the Data page)."""
    _show_thumbnail(container, path, size)


def labelling_folder() -> Path:
    """Where this experiment's labels of target pictures go (`adapt.labelled` points here once there is one)."""
    return data_home() / "labelled" / experiment().id


def picture_pairs(container, paths: list[Path], per_row: int = 3, thumb: int = 112) -> None:
    """A small grid of thumbnails inside one column (source and target side by side on the Data page)."""
    columns = container.columns(per_row)
    for i, path in enumerate(paths):
        _show_thumbnail(columns[i % per_row], path, thumb)


def sample_grid(report: ScanReport, per_class: int = 6, thumb: int = 112) -> None:
    """A row of thumbnails per class, so the user sees the labels are what they think."""
    root = Path(report.root)
    for label in report.classes:
        records = [r for r in report.images if r.label == label][:per_class]
        if not records:
            continue
        st.markdown(f"**{label}** ({report.counts[label]})")
        columns = st.columns(per_class)
        for column, record in zip(columns, records):
            _show_thumbnail(column, root / record.path, thumb, caption=Path(record.path).name, shown_name=record.path)
