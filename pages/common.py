"""What every page shares: the experiment (one persisted draft), the default data set, small display helpers.

Pages stay thin: they collect choices, call `tlcore`, and show results through these. A choice lives in
the experiment's draft, not in a widget key: widgets start from the draft and write back when they
change, so a page switch, a reload, a second tab or a server restart shows the same experiment.
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

from tlcore.adapt import TargetSet, scan_target
from tlcore.augment import PRESETS, AugmentSpec, preset
from tlcore.compare import STRATEGY_SET
from tlcore.config import AdaptConfig, DataConfig, EarlyStoppingConfig, OptimizerConfig, RunConfig, ScheduleConfig
from tlcore.data import ScanReport, load_rgb, scan
from tlcore.drafts import Draft, DraftStore
from tlcore.data.images import ImageReadError
from tlcore.models import DEFAULT_MODEL, ModelSpec, build_model
from tlcore.errors import TransferLabError
from tlcore.estimate import TimeEstimate
from tlcore.freeze import default_lr_spread
from tlcore.models.groups import LayerGroup
from tlcore.strategies import STRATEGIES as STRATEGY_NAMES
from tlcore.paths import data_home
from tlcore.runs import RunStore

__all__ = [
    "PROJECT_ROOT", "SAMPLE_DATA", "MAX_UPLOAD_MB", "DEFAULTS", "ModelOverview", "open_store", "experiment", "choice",
    "remember", "bind", "set_choices", "new_experiment", "choices_from_config", "data_report", "forget_report",
    "run_config", "TlcoreJob", "job_folder", "measured_time_estimates", "known_time_estimate", "show_sidebar",
    "save_upload", "sample_grid", "augment_spec", "model_spec",
    "num_classes", "model_overview", "measured_epoch_seconds", "resize_words", "normalise_words", "target_pictures",
    "picture_pairs",
]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = PROJECT_ROOT / "sample_data"
MAX_UPLOAD_MB = 1024

# The experiment's choices and their defaults. They live in a draft file (tlcore.drafts), keyed by the
# experiment id in the URL; widgets start from it and write back through on_change callbacks.
DEFAULTS = {
    "data.kind": "Bundled sample data",
    "data.folder": "",
    "data.source": str(SAMPLE_DATA),
    "data.seed": 0,
    "data.val": 0.15,
    "data.test": 0.15,
    "data.manifest_path": None,
    "model.search": "",
    "model.name": DEFAULT_MODEL,
    "model.weights_file": "",
    "model.random_init": False,
    "model.allow_download": False,
    "model.rank_candidates": [DEFAULT_MODEL],
    "model.rank_baseline": True,
    "augment.preset": "light",
    "augment.seed": 0,
    "augment.custom_json": "",
    "freeze.strategy": "feature_extraction",
    "freeze.k": 1,
    "freeze.every": 1,
    "freeze.head_epochs": 1,
    "freeze.lr_spread": 1.0,
    "freeze.train_bn": False,
    "train.epochs": 5,
    "train.batch_size": 32,  # or "auto"
    "train.compile": False,
    "train.decoded_cache": "auto",
    "train.augment_on": "auto",
    "train.lr": 3e-3,
    "train.weight_decay": 0.01,
    "train.schedule": "cosine",
    "train.patience": 3,
    "train.run_id": None,
    "adapt.method": "none",
    "adapt.target": "",
    "adapt.weight": None,  # None: the method's default
    "compare.strategies": list(STRATEGY_SET),
    "compare.what": "freeze.strategy",  # a setting of tlcore.grid.AXES
    "compare.also": "",  # a second one, for a grid
    "compare.seeds": 1,
    "compare.run_on": "this machine",
    "compare.ray_address": "",
    "compare.methods": ["none", "adabn", "mcc"],
    "compare.presets": ["light", "heavy"],
    "compare.models": [DEFAULT_MODEL],
    "compare.schedules": ["cosine", "onecycle"],
    "compare.optimizers": ["adamw", "sgd"],
    "compare.text.freeze.k": "1, 2, 3",
    "compare.text.freeze.lr_spread": "1, 10, 100",
    "compare.text.freeze.every": "1, 2",
    "compare.text.optimizer.lr": "3e-3, 1e-3, 3e-4",
    "compare.text.optimizer.weight_decay": "0, 0.01, 0.1",
    "compare.text.model.head.dropout": "0, 0.2, 0.5",
    "compare.text.model.head.hidden": "none, 256",
    "compare.text.epochs": "3, 5, 10",
    "compare.text.batch_size": "16, 32",
    "compare.target_test": "",
    "compare.sweep": None,
}
_DRAFT = "_experiment"  # session-state slot of the loaded draft
_REPORT = "_scan_report"  # session-state slot of (source, ScanReport): derived, never saved


def _use_the_apps_navigation() -> None:
    """A page URL opened first on a fresh server runs that page without app.py: Streamlit then lists every
    file under pages/ itself (this module included, without the app's titles) until app.py's `st.navigation`
    runs once. Run the page again, through app.py. Reads Streamlit's own flag, as there is no public one."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def experiment() -> Draft:
    """The experiment named in the URL (`?exp=ID`): from this session, else from its file; a new one otherwise."""
    _use_the_apps_navigation()
    s = st.session_state
    wanted = st.query_params.get("exp")
    draft: Draft | None = s.get(_DRAFT)
    if draft is None or (wanted and draft.id != wanted):
        draft = None
        if wanted:
            try:
                draft = DraftStore().load(wanted)
            except TransferLabError as exc:
                st.warning(f"{exc}: a new experiment was started")
        draft = draft or DraftStore().new(dict(DEFAULTS))
        for key in DEFAULTS:  # widgets of another experiment must not keep their values
            s.pop(key, None)
        s[_DRAFT] = draft
    for key, value in DEFAULTS.items():  # a draft from an older version lacks newer choices
        draft.choices.setdefault(key, value)
    # A widget's value is the user's latest word: Streamlit can drop its on_change when the change and a page
    # switch arrive together (Enter, then a click at once). Keys of DEFAULTS in session state are set only by
    # bind/set_choices (from the draft) or by the user, so a difference is a change the draft missed.
    missed = {key: s[key] for key in DEFAULTS if key in s and s[key] != draft.choices[key]}
    if missed:
        draft.choices.update(missed)
        _save(draft)
    if st.query_params.get("exp") != draft.id:
        st.query_params["exp"] = draft.id
    return draft


def choice(key: str):
    """The experiment's current value of one choice."""
    return experiment().choices[key]


def remember(key: str, value) -> None:
    """Set a choice that no widget holds (a split made, a run started) and save the experiment."""
    draft = experiment()
    draft.choices[key] = value
    _save(draft)


def _save(draft: Draft) -> None:
    try:
        draft.config = run_config(draft).to_dict()
    except (TransferLabError, ValueError):  # choices mid-edit (e.g. augmentation JSON): keep the last valid config
        pass
    try:
        DraftStore().save(draft)
    except TransferLabError as exc:  # e.g. a huge text pasted, a full disk: this session keeps it, the file does not
        st.warning(f"this change is kept in this tab only: {exc}")


def _widget_changed(key: str, then: Callable[[], None] | None) -> None:
    draft = st.session_state[_DRAFT]
    draft.choices[key] = st.session_state[key]
    if then is not None:
        then()
    _save(draft)


def bind(key: str, then: Callable[[], None] | None = None) -> dict:
    """Keyword arguments that tie a widget to a choice: it starts from the experiment and writes back on change
    (then calls `then`, which may change other choices with `set_choices`).

    `st.number_input("Epochs", 1, 200, **bind("train.epochs"))`
    """
    if key not in st.session_state:
        st.session_state[key] = choice(key)
    return {"key": key, "on_change": _widget_changed, "args": (key, then)}


def set_choices(**values) -> None:
    """Change choices from a callback (a chart click): the experiment and the widgets showing them."""
    draft = experiment()
    for dotted, value in values.items():
        key = dotted.replace("__", ".")
        draft.choices[key] = value
        st.session_state[key] = value
    _save(draft)


def new_experiment(choices: dict | None = None) -> Draft:
    """Start a fresh experiment (defaults, or the given choices) and put it in the URL."""
    draft = DraftStore().new({**DEFAULTS, **(choices or {})})
    for key in DEFAULTS:
        st.session_state.pop(key, None)
    st.session_state[_DRAFT] = draft
    st.session_state.pop(_REPORT, None)
    st.query_params.clear()
    st.query_params["exp"] = draft.id
    _save(draft)
    return draft


def choices_from_config(config: RunConfig) -> dict:
    """A run's settings as the app's choices, for "Open run X's settings"."""
    d, o = config.data, config.optimizer
    sample = Path(d.source).resolve() == SAMPLE_DATA.resolve()
    freeze = dict(config.freeze)
    strategy = freeze.get("strategy") if freeze.get("strategy") in STRATEGY_NAMES else "feature_extraction"
    weights = config.model.weights
    augment = config.augment
    is_preset = augment.preset in PRESETS and augment == preset(augment.preset)
    return {
        "data.kind": "Bundled sample data" if sample else "Folder on this computer",
        "data.folder": "" if sample else d.source, "data.source": d.source, "data.seed": d.split_seed,
        "data.val": d.val, "data.test": d.test, "data.manifest_path": d.manifest,
        "model.name": config.model.name, "model.random_init": weights == "random",
        "model.weights_file": "" if weights in ("auto", "random") else weights,
        "model.allow_download": config.model.allow_download,
        "augment.preset": augment.preset if augment.preset in PRESETS else "light",
        "augment.custom_json": "" if is_preset else json.dumps(augment.to_dict(), indent=1),
        "freeze.strategy": strategy, "freeze.k": freeze.get("k") or DEFAULTS["freeze.k"],
        "freeze.every": freeze.get("every", 1), "freeze.head_epochs": freeze.get("head_epochs", 1),
        "freeze.lr_spread": float(freeze.get("lr_spread") or default_lr_spread(strategy)),
        "freeze.train_bn": bool(freeze.get("train_bn", False)),
        "train.epochs": config.epochs, "train.batch_size": config.batch_size, "train.lr": o.lr,
        "train.weight_decay": o.weight_decay, "train.schedule": config.schedule.name,
        "train.patience": config.early_stopping.patience, "train.compile": config.compile,
        "train.decoded_cache": config.decoded_cache, "train.augment_on": config.augment_on,
        "adapt.method": config.adapt.method, "adapt.target": config.adapt.target, "adapt.weight": config.adapt.weight,
    }


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
            report = scan(source)
    except TransferLabError:
        return None
    st.session_state[_REPORT] = (source, report)
    return report


def forget_report() -> None:
    st.session_state.pop(_REPORT, None)


def run_config(draft: Draft | None = None) -> RunConfig:
    """The whole experiment as the one JSON document the CLI replays (`python -m tlcore train`)."""
    c = (draft or experiment()).choices
    freeze = {"strategy": c["freeze.strategy"], "lr_spread": c["freeze.lr_spread"], "train_bn": c["freeze.train_bn"]}
    freeze.update({"freeze_first_k": {"k": c["freeze.k"]}, "gradual": {"every": c["freeze.every"]},
                   "fine_tune": {"head_epochs": c["freeze.head_epochs"]}}.get(c["freeze.strategy"], {}))
    return RunConfig(
        data=DataConfig(source=c["data.source"] or str(SAMPLE_DATA), manifest=c["data.manifest_path"],
                        split_seed=int(c["data.seed"]), val=float(c["data.val"]), test=float(c["data.test"])),
        model=model_spec(draft),
        augment=augment_spec(draft),
        freeze=freeze,
        optimizer=OptimizerConfig(lr=float(c["train.lr"]), weight_decay=float(c["train.weight_decay"])),
        schedule=ScheduleConfig(name=c["train.schedule"]),
        early_stopping=EarlyStoppingConfig(patience=int(c["train.patience"])),
        epochs=int(c["train.epochs"]),
        batch_size="auto" if c["train.batch_size"] == "auto" else int(c["train.batch_size"]),
        compile=bool(c["train.compile"]), decoded_cache=c["train.decoded_cache"], augment_on=c["train.augment_on"],
        adapt=AdaptConfig(method=c["adapt.method"], target=c["adapt.target"].strip(),
                          weight=None if c["adapt.weight"] is None else float(c["adapt.weight"])),
    )


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


def measured_epoch_seconds(store: RunStore, config: RunConfig) -> tuple[float, str] | None:
    """Seconds per epoch that a finished run of the same data, model, input and freeze strategy took on this
    machine (median of its epochs), with that run's id; None before any such run."""
    def same(run) -> bool:
        c = run.config
        return (c.get("data", {}).get("source") == config.data.source and c.get("model", {}).get("name") ==
                config.model.name and c.get("input_size") == (list(config.input_size) if config.input_size else None)
                and c.get("freeze", {}).get("strategy") == config.freeze.get("strategy")
                and c.get("batch_size") == config.batch_size)

    for run in store.list(status="succeeded"):
        seconds = sorted(m["epoch_seconds"] for m in store.metrics(run.id))
        if seconds and same(run):
            return seconds[len(seconds) // 2], run.id
    return None


def show_sidebar() -> None:
    """The choices made so far, visible from every page, with the experiment's own controls."""
    c = experiment().choices
    report = data_report()
    with st.sidebar:
        st.caption(f"Your experiment ({experiment().id}); its link keeps it")
        if report is None:
            st.write(f"**Data:** `{Path(c['data.source']).name or 'none chosen'}`, not readable yet")
        else:
            st.write(f"**Data:** `{Path(report.root).name}`, {len(report.classes)} classes, {len(report.images)} images")
        st.write(f"**Split:** seed {c['data.seed']}" + (f", `{Path(c['data.manifest_path']).name}`"
                                                         if c["data.manifest_path"] else " (made when a run starts)"))
        weights = "random init" if c["model.random_init"] else ("file" if c["model.weights_file"] else "pretrained")
        st.write(f"**Model:** `{c['model.name']}` ({weights})")
        st.write(f"**Augment:** {c['augment.preset']}{' (edited)' if c['augment.custom_json'] else ''}")
        st.write(f"**Freeze:** {c['freeze.strategy'].replace('_', ' ')}")
        st.write(f"**Train:** {c['train.epochs']} epochs, batch {c['train.batch_size']}, lr {c['train.lr']:g}")
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


def augment_spec(draft: Draft | None = None) -> AugmentSpec:
    """The preset, or the user's edited JSON when there is one (validated by the engine)."""
    c = (draft or experiment()).choices
    if c["augment.custom_json"].strip():
        return AugmentSpec.from_dict(json.loads(c["augment.custom_json"]))
    return preset(c["augment.preset"])


def model_spec(draft: Draft | None = None) -> ModelSpec:
    c = (draft or experiment()).choices
    weights = "random" if c["model.random_init"] else (c["model.weights_file"].strip() or "auto")
    return ModelSpec(name=c["model.name"], weights=weights, allow_download=c["model.allow_download"])


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
    """Time estimates of runs, each measured once per session (in a child process); `progress(done, total)`."""
    known: dict[str, dict] = st.session_state.setdefault("time_estimates", {})
    todo = [c for c in dict.fromkeys(c.to_json() for c in configs) if c not in known]
    if todo:
        job = TlcoreJob.start("estimate", [RunConfig.from_dict(json.loads(c)) for c in todo], "--json")
        try:
            while job.running:
                progress(len(job.lines()), len(todo))
                time.sleep(0.3)
            if job.error():
                raise TransferLabError(f"the time could not be measured: {job.error()}")
            for config, line in zip(todo, job.lines()):
                known[config] = json.loads(line)
        finally:
            job.cancel()  # the page was left or rerun while it measured: stop measuring
    return [TimeEstimate.from_dict(known[c.to_json()]) for c in configs]


def rank_in_a_child_process(config: RunConfig, candidates: list[str]) -> None:
    """`tlcore models rank` on the experiment's split, with a progress bar; the scores are kept in this session."""
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
        st.session_state["model_ranking"] = {"asked": candidates, "scores": [json.loads(x) for x in job.lines()]}
    finally:
        job.cancel()
        bar.empty()


def known_time_estimate(config: RunConfig) -> TimeEstimate | None:
    known = st.session_state.get("time_estimates", {}).get(config.to_json())
    return TimeEstimate.from_dict(known) if known else None


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
    built = build_model(ModelSpec.from_dict(json.loads(spec_json)), classes)
    return ModelOverview(built.label, built.weights.description, built.weights.pretrained,
                         built.preprocessing.to_dict(), built.groups)


def gpu_speed_notes() -> list[str]:
    """What the GPU speed settings would do for this experiment: where augmentation runs, the cache's size."""
    import torch

    from tlcore.decoded import DEFAULT_MAX_GB, cache_bytes, square_size
    from tlcore.device_augment import device_spec
    from tlcore.models import Preprocessing

    notes = [f"This machine {'has a CUDA GPU: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'has no CUDA GPU: auto leaves all three off'}."]
    steps, why = device_spec(augment_spec())
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
