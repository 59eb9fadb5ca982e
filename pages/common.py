"""What every page shares: session-state keys, the default data set, and small display helpers.

Pages stay thin: they collect choices, call `tlcore`, and show results through these.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from tlcore.augment import AugmentSpec, preset
from tlcore.config import DataConfig, EarlyStoppingConfig, OptimizerConfig, RunConfig, ScheduleConfig
from tlcore.data import ScanReport, load_rgb
from tlcore.data.images import ImageReadError
from tlcore.models import DEFAULT_MODEL, ModelSpec, build_model
from tlcore.errors import TransferLabError
from tlcore.models.groups import LayerGroup
from tlcore.paths import data_home
from tlcore.runs import RunStore

__all__ = [
    "PROJECT_ROOT", "SAMPLE_DATA", "MAX_UPLOAD_MB", "ModelOverview", "open_store",
    "state", "run_config", "lr_find_in_subprocess", "show_sidebar", "save_upload", "sample_grid", "augment_spec", "model_spec", "num_classes", "model_overview",
]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = PROJECT_ROOT / "sample_data"
MAX_UPLOAD_MB = 1024

# Session-state keys, initialised here and nowhere else; each page writes only its own prefix.
_DEFAULTS = {
    "data.kind": "Bundled sample data",
    "data.folder": "",
    "data.seed": 0,
    "data.val": 0.15,
    "data.test": 0.15,
    "data.source": str(SAMPLE_DATA),
    "data.report": None,
    "data.manifest_path": None,
    "model.name": DEFAULT_MODEL,
    "model.weights_file": "",
    "model.random_init": False,
    "model.allow_download": False,
    "augment.preset": "light",
    "augment.seed": 0,
    "augment.custom_json": "",
    "freeze.strategy": "feature_extraction",
    "freeze.k": 1,
    "freeze.every": 1,
    "freeze.head_epochs": 1,
    "freeze.lr_spread": 1.0,
    "freeze.train_bn": False,
    "freeze.last_click": None,
    "train.epochs": 5,
    "train.batch_size": 32,
    "train.lr": 3e-3,
    "train.weight_decay": 0.01,
    "train.schedule": "cosine",
    "train.patience": 3,
    "train.run_id": None,
}


def state() -> st.session_state.__class__:
    """Session state with every shared key present; call it first thing on every page.

    Re-assigning each key on every page keeps Streamlit from dropping a widget's value
    when the user visits a page where that widget is not drawn.
    """
    for key, value in _DEFAULTS.items():
        st.session_state[key] = st.session_state.get(key, value)
    return st.session_state


def run_config() -> RunConfig:
    """The whole experiment as the one JSON document the CLI replays (`python -m tlcore train`)."""
    s = st.session_state  # state() ran at the top of the page; widgets may exist by now
    report: ScanReport | None = s["data.report"]
    freeze = {"strategy": s["freeze.strategy"], "lr_spread": s["freeze.lr_spread"], "train_bn": s["freeze.train_bn"]}
    freeze.update({"freeze_first_k": {"k": s["freeze.k"]}, "gradual": {"every": s["freeze.every"]},
                   "fine_tune": {"head_epochs": s["freeze.head_epochs"]}}.get(s["freeze.strategy"], {}))
    return RunConfig(
        data=DataConfig(source=report.root if report else str(SAMPLE_DATA), manifest=s["data.manifest_path"],
                        split_seed=int(s["data.seed"]), val=float(s["data.val"]), test=float(s["data.test"])),
        model=model_spec(),
        augment=augment_spec(),
        freeze=freeze,
        optimizer=OptimizerConfig(lr=float(s["train.lr"]), weight_decay=float(s["train.weight_decay"])),
        schedule=ScheduleConfig(name=s["train.schedule"]),
        early_stopping=EarlyStoppingConfig(patience=int(s["train.patience"])),
        epochs=int(s["train.epochs"]),
        batch_size=int(s["train.batch_size"]),
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


def show_sidebar() -> None:
    """The choices made so far, visible from every page."""
    s = st.session_state  # state() ran at the top of the page; widgets may exist by now
    with st.sidebar:
        st.caption("Your experiment so far")
        report: ScanReport | None = s["data.report"]
        if report is None:
            st.write("**Data:** not scanned yet")
        else:
            st.write(f"**Data:** `{Path(report.root).name}`, {len(report.classes)} classes, {len(report.images)} images")
        if s["data.manifest_path"]:
            st.write(f"**Split:** `{Path(s['data.manifest_path']).name}`")
        weights = "random init" if s["model.random_init"] else ("file" if s["model.weights_file"] else "pretrained")
        st.write(f"**Model:** `{s['model.name']}` ({weights})")
        st.write(f"**Augment:** {s['augment.preset']}{' (edited)' if s['augment.custom_json'] else ''}")
        st.write(f"**Freeze:** {s['freeze.strategy'].replace('_', ' ')}")
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
    """The preset, or the user's edited JSON when there is one (validated by the engine)."""
    s = st.session_state  # state() ran at the top of the page; widgets may exist by now
    if s["augment.custom_json"].strip():
        return AugmentSpec.from_dict(json.loads(s["augment.custom_json"]))
    return preset(s["augment.preset"])


def model_spec() -> ModelSpec:
    s = st.session_state  # state() ran at the top of the page; widgets may exist by now
    weights = "random" if s["model.random_init"] else (s["model.weights_file"].strip() or "auto")
    return ModelSpec(name=s["model.name"], weights=weights, allow_download=s["model.allow_download"])


def num_classes() -> int:
    report: ScanReport | None = st.session_state["data.report"]
    return len(report.classes) if report is not None and len(report.classes) >= 2 else 2


def lr_find_in_subprocess(config: RunConfig, timeout: int = 900) -> tuple[dict | None, str | None]:
    """The LR finder trains (briefly), so it runs in its own process like every run: (curve, error)."""
    folder = Path(tempfile.mkdtemp(prefix="lr-find-", dir=data_home()))
    (folder / "config.json").write_text(config.to_json())
    try:
        result = subprocess.run([sys.executable, "-m", "tlcore", "lr-find", str(folder / "config.json"), "--out",
                                 str(folder / "curve.json")], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"the learning-rate test took longer than {timeout} s; try a smaller model or input size"
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        return None, lines[-1][7:] if lines else "the learning-rate test failed; see the terminal running the app"
    return json.loads((folder / "curve.json").read_text()), None


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


def save_upload(upload_id: str, name: str, data: bytes) -> Path:
    """Keep an uploaded zip in the data folder, once per upload (every rerun hands the same bytes again)."""
    folder = data_home() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{upload_id}-{Path(name).name}"
    if not path.is_file():
        path.write_bytes(data)
    return path


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
            try:
                img = load_rgb(root / record.path)
            except ImageReadError as exc:  # the file changed since the scan
                column.caption(f"{record.path}: {exc}")
                continue
            img.thumbnail((thumb, thumb))
            column.image(img, caption=Path(record.path).name)
