"""The user's experiment as one typed object: every setting by its dotted path, the results it paid for, its runs.

The app holds exactly one `Experiment` per browser link (`?exp=ID`); pages render from it and write only
what the user changed. It is plain data kept in `<data folder>/experiments/<id>.json`, so a reload, a
second tab or a restarted server shows the same settings, ranking, estimates and runs.

Settings are named as the run config and the comparison grid name them (`optimizer.lr`, `freeze.k`,
`epochs`): `get("optimizer.lr")`, `set("optimizer.lr", 3e-4)`. Choices that only the app has (where the
data comes from, the models to rank, what a comparison varies) live under `app.`. Adding a setting is
one line in `SETTINGS`; `run_config()` and `from_config()` follow from it.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tlcore.adapt_spec import METHODS
from tlcore.augment_spec import PRESETS, preset
from tlcore.config import MONITORS, OPTIMIZERS, SCHEDULES, ConfigError, RunConfig
from tlcore.errors import TransferLabError
from tlcore.files import atomic_write
from tlcore.grid import AXES, STRATEGY_SET, put_value, value_at
from tlcore.models import DEFAULT_MODEL, RECOMMENDED
from tlcore.paths import data_home
from tlcore.typed import check_plain

__all__ = ["Setting", "SETTINGS", "Experiment", "ExperimentStore", "ExperimentError", "PICKED_AXES"]

_ID = re.compile(r"[0-9a-f]{12}")
MAX_EXPERIMENT_BYTES = 2_000_000


class ExperimentError(TransferLabError):
    """An experiment id that is malformed or unknown, a file that cannot be read, a setting that does not exist."""


def _strategy_is(*names: str) -> Callable[[dict], bool]:
    return lambda values: values["freeze.strategy"] in names


@dataclass(frozen=True)
class Setting:
    """One setting of an experiment.

    Attributes:
        path: its dotted name; a run config path (`optimizer.lr`) goes into the run, `app.` ones stay in the app.
        default: the value a new experiment starts with (plain JSON data).
        kinds: the types a value may have; an int given for a float setting is taken as a float.
        used_when: for run settings that only some freeze strategies read: whether this experiment's run has it.
    """

    path: str
    default: object
    kinds: tuple[type, ...]
    used_when: Callable[[dict], bool] | None = None

    @property
    def in_run(self) -> bool:
        """The setting belongs to the run config (not to the app's own `app.` choices)."""
        return not self.path.startswith("app.")


# The axes a comparison picks from a list (the others are typed as comma-separated text): the options shown.
PICKED_AXES: dict[str, list[str]] = {
    "freeze.strategy": list(STRATEGY_SET),
    "adapt.method": list(METHODS),
    "augment.preset": list(PRESETS),
    "model.name": list(RECOMMENDED),
    "schedule.name": list(SCHEDULES),
    "optimizer.name": list(OPTIMIZERS),
    "early_stopping.metric": list(MONITORS),
}
_PICKED_DEFAULTS = {"freeze.strategy": list(STRATEGY_SET), "adapt.method": ["none", "adabn", "mcc"],
                    "augment.preset": ["light", "heavy"], "model.name": [DEFAULT_MODEL],
                    "schedule.name": ["cosine", "onecycle"], "optimizer.name": ["adamw", "sgd"],
                    "early_stopping.metric": ["val_loss", "labelled_acc"]}
_TYPED_DEFAULTS = {"freeze.k": "1, 2, 3", "freeze.lr_spread": "1, 10, 100", "freeze.every": "1, 2",
                   "optimizer.lr": "3e-3, 1e-3, 3e-4", "optimizer.weight_decay": "0, 0.01, 0.1",
                   "model.head.dropout": "0, 0.2, 0.5", "model.head.hidden": "none, 256", "epochs": "3, 5, 10",
                   "batch_size": "16, 32", "adapt.weight": "none, 1, 10"}

_S, _I, _F, _B, _L, _N = str, int, float, bool, list, type(None)
SETTINGS: tuple[Setting, ...] = (
    # the run, by the run config's own names
    Setting("data.source", "sample_data", (_S,)),
    Setting("data.manifest", None, (_S, _N)),
    Setting("data.split_seed", 0, (_I,)),
    Setting("data.val", 0.15, (_F,)),
    Setting("data.test", 0.15, (_F,)),
    Setting("data.text_column", None, (_S, _N)),
    Setting("data.label_column", None, (_S, _N)),
    Setting("model.name", DEFAULT_MODEL, (_S,)),
    Setting("model.weights", "auto", (_S,)),  # "auto", "random" or a file
    Setting("model.allow_download", False, (_B,)),
    Setting("augment.preset", "light", (_S,)),
    Setting("freeze.strategy", "feature_extraction", (_S,)),
    Setting("freeze.k", 1, (_I,), _strategy_is("freeze_first_k")),
    Setting("freeze.every", 1, (_I,), _strategy_is("gradual")),
    Setting("freeze.head_epochs", 1, (_I,), _strategy_is("fine_tune")),
    Setting("freeze.lr_spread", 1.0, (_F,)),
    Setting("freeze.train_bn", False, (_B,)),
    Setting("optimizer.lr", 3e-3, (_F,)),
    Setting("optimizer.weight_decay", 0.01, (_F,)),
    Setting("schedule.name", "cosine", (_S,)),
    Setting("early_stopping.patience", 3, (_I,)),
    Setting("early_stopping.metric", "val_loss", (_S,)),
    Setting("epochs", 5, (_I,)),
    Setting("batch_size", 32, (_I, _S)),  # or "auto"
    Setting("compile", False, (_B,)),
    Setting("decoded_cache", "auto", (_S,)),
    Setting("augment_on", "auto", (_S,)),
    Setting("text_augment.word_dropout", 0.0, (_F,)),
    Setting("text_augment.swap", 0.0, (_F,)),
    Setting("text_augment.deletion", 0.0, (_F,)),
    Setting("adapt.method", "none", (_S,)),
    Setting("adapt.target", "", (_S,)),
    Setting("adapt.weight", None, (_F, _N)),  # None: the method's default
    Setting("adapt.labelled", "", (_S,)),
    Setting("adapt.labelled_use", "choose", (_S,)),
    Setting("adapt.labelled_share", 0.25, (_F,)),
    # the app's own choices
    Setting("app.data_kind", "Bundled sample data", (_S,)),
    Setting("app.folder", "", (_S,)),
    Setting("app.model_search", "", (_S,)),
    Setting("app.rank_models", [DEFAULT_MODEL], (_L,)),
    Setting("app.rank_baseline", True, (_B,)),
    Setting("app.augment_json", "", (_S,)),  # the user's own augmentation JSON; empty: the preset
    Setting("app.augment_seed", 0, (_I,)),
    Setting("app.compare_what", "freeze.strategy", (_S,)),  # a path of tlcore.grid.AXES
    Setting("app.compare_also", "", (_S,)),  # a second one, for a grid
    Setting("app.compare_seeds", 1, (_I,)),
    Setting("app.compare_run_on", "this machine", (_S,)),
    Setting("app.ray_address", "", (_S,)),
    Setting("app.target_test", "", (_S,)),
    *(Setting(f"app.vary.{path}", _PICKED_DEFAULTS[path], (_L,)) for path in PICKED_AXES),
    *(Setting(f"app.vary.{path}", _TYPED_DEFAULTS[path], (_S,)) for path in AXES if path not in PICKED_AXES),
)
_BY_PATH = {s.path: s for s in SETTINGS}

# Names of the app's choices before the experiment was one typed object (files kept by older versions).
LEGACY_NAMES = {
    "data.kind": "app.data_kind", "data.folder": "app.folder", "data.seed": "data.split_seed",
    "data.manifest_path": "data.manifest", "model.search": "app.model_search", "model.rank_candidates":
    "app.rank_models", "model.rank_baseline": "app.rank_baseline", "augment.seed": "app.augment_seed",
    "augment.custom_json": "app.augment_json", "train.epochs": "epochs", "train.batch_size": "batch_size",
    "train.compile": "compile", "train.decoded_cache": "decoded_cache", "train.augment_on": "augment_on",
    "train.lr": "optimizer.lr", "train.weight_decay": "optimizer.weight_decay", "train.schedule": "schedule.name",
    "train.patience": "early_stopping.patience", "compare.what": "app.compare_what", "compare.also":
    "app.compare_also", "compare.seeds": "app.compare_seeds", "compare.run_on": "app.compare_run_on",
    "compare.ray_address": "app.ray_address", "compare.target_test": "app.target_test",
    "compare.strategies": "app.vary.freeze.strategy", "compare.methods": "app.vary.adapt.method",
    "compare.presets": "app.vary.augment.preset", "compare.models": "app.vary.model.name",
    "compare.schedules": "app.vary.schedule.name", "compare.optimizers": "app.vary.optimizer.name",
    **{f"compare.text.{path}": f"app.vary.{path}" for path in _TYPED_DEFAULTS},
}

# Values of older versions: what a comparison varied was named in words before grids.
LEGACY_VALUES = {"compare.what": {"freeze strategies": "freeze.strategy", "adaptation methods": "adapt.method"}}


def _checked(setting: Setting, value: object) -> object:
    """The value as the setting keeps it; `ExperimentError` naming the setting when it has the wrong type."""
    if float in setting.kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = any(isinstance(value, kind) and not (kind is int and isinstance(value, bool)) for kind in setting.kinds)
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
        wanted = " or ".join("nothing" if k is type(None) else k.__name__ for k in setting.kinds)
        raise ExperimentError(f"{setting.path} cannot be {str(value)[:60]!r}", f"give {wanted}")
    return value


def setting(path: str) -> Setting:
    """The setting of this dotted path; `ExperimentError` naming the settings there are for an unknown one."""
    try:
        return _BY_PATH[path]
    except KeyError:
        raise ExperimentError(f"an experiment has no setting {str(path)[:80]!r}",
                              "see tlcore.experiment.SETTINGS for the names") from None


@dataclass
class Experiment:
    """One user's experiment: its settings, what it paid to measure, and the runs and comparisons it started.

    Attributes:
        id: 12 hex digits, the `?exp=` of the app's link.
        values: setting path -> value, one entry per `SETTINGS` (missing ones read as their default).
        results: what was expensive to get: `ranking` (the models scored), `estimates` (time estimates by config).
        runs: ids of the runs started from this experiment, newest last.
        sweeps: ids of the comparisons started from it, newest last.
        config: the run config the settings make, whenever they make a valid one (for people reading the file).
    """

    id: str
    values: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    runs: list = field(default_factory=list)
    sweeps: list = field(default_factory=list)
    config: dict | None = None
    created: float = 0.0
    updated: float = 0.0

    def get(self, path: str) -> object:
        """The value of one setting (its default where this experiment has not set it).

        Raises: ExperimentError for a path that is not a setting.
        """
        return self.values.get(path, setting(path).default)

    def set(self, path: str, value: object) -> None:
        """Change one setting. Raises ExperimentError for an unknown path or a value of the wrong type."""
        self.values[path] = _checked(setting(path), value)

    def all_values(self) -> dict:
        """Every setting's current value, by path."""
        return {s.path: self.get(s.path) for s in SETTINGS}

    def augment_data(self) -> dict:
        """The augmentation as plain data: the user's own JSON where there is some, else the preset.

        Raises: ConfigError when that JSON does not parse.
        """
        custom = self.get("app.augment_json").strip()
        if not custom:
            return {"preset": self.get("augment.preset")}
        try:
            return json.loads(custom)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ConfigError(f"the augmentation JSON is not valid JSON: {str(exc)[:80]}",
                              "fix it on the Augment page") from None
        except ValueError as exc:  # Python's limit on the digits of an integer
            raise ConfigError(f"the augmentation JSON is not valid JSON: {exc}", "fix it on the Augment page") from None

    def run_config(self) -> RunConfig:
        """The run these settings make: the one JSON document `python -m tlcore train` replays.

        Raises: ConfigError (or AugmentError) naming the setting that does not make a valid run.
        """
        values = self.all_values()
        data = RunConfig().to_dict()
        data["freeze"] = {}
        for s in SETTINGS:
            if s.in_run and (s.used_when is None or s.used_when(values)):
                put_value(data, s.path, values[s.path])
        data["augment"] = self.augment_data()  # over augment.preset: the preset, or the user's own steps
        return RunConfig.from_dict(data)

    @classmethod
    def from_config(cls, config: RunConfig) -> "Experiment":
        """A new (unsaved) experiment holding a run's settings, to change one and run again.

        Args:
            config: the run whose settings to take; the app's own choices start at their defaults.
        """
        plain = config.to_dict()
        experiment = cls(id=uuid.uuid4().hex[:12])
        for s in SETTINGS:
            if not s.in_run or s.path == "augment.preset":  # the augmentation is taken whole, below
                continue
            value = value_at(plain, s.path)
            if value is not None or type(None) in s.kinds:
                try:
                    experiment.set(s.path, value)
                except ExperimentError:
                    pass  # e.g. a freeze plan given as stages: the setting keeps its default
        augment = config.augment
        if augment.preset in PRESETS and augment == preset(augment.preset):
            experiment.set("augment.preset", augment.preset)
        else:
            experiment.set("app.augment_json", json.dumps(augment.to_dict(), indent=1))
        return experiment

    def remember_run(self, run_id: str) -> None:
        """A run started from this experiment (listed first on the Train, Compare and Evaluate pages).

        Args:
            run_id: the run.
        """
        if run_id not in self.runs:
            self.runs.append(run_id)

    def remember_sweep(self, sweep_id: str) -> None:
        """A comparison started from this experiment.

        Args:
            sweep_id: the comparison.
        """
        if sweep_id not in self.sweeps:
            self.sweeps.append(sweep_id)


class ExperimentStore:
    """The experiments of one data folder, one JSON file each, written whole or not at all."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else data_home() / "experiments"

    def path(self, experiment_id: str) -> Path:
        """Where an experiment's file is.

        Args:
            experiment_id: the experiment.

        Raises:
            ExperimentError: a malformed id.
        """
        if not isinstance(experiment_id, str) or not _ID.fullmatch(experiment_id):
            raise ExperimentError(f"'{str(experiment_id)[:40]}' is not an experiment id", "start a new experiment")
        return self.root / f"{experiment_id}.json"

    def new(self, values: dict | None = None) -> Experiment:
        """A new experiment with these settings (the rest at their defaults), saved.

        Args:
            values: settings by name (None: all defaults).

        Raises:
            ExperimentError: an unknown setting or a value of the wrong type.
        """
        now = time.time()
        experiment = Experiment(uuid.uuid4().hex[:12], created=now, updated=now)
        for path, value in (values or {}).items():
            experiment.set(path, value)
        self.save(experiment)
        return experiment

    def save(self, experiment: Experiment) -> None:
        """Write the experiment (with the run config its settings make, when valid).

        Raises: ExperimentError when it is too large to keep or the folder cannot be written.
        """
        try:
            experiment.config = experiment.run_config().to_dict()
        except (TransferLabError, ValueError):  # settings mid-edit: the file keeps the last valid config
            pass
        check_plain(experiment.values, "the experiment's settings", ExperimentError)
        check_plain(experiment.results, "the experiment's results", ExperimentError)
        experiment.updated = time.time()
        text = json.dumps(asdict(experiment), indent=1)
        if len(text) > MAX_EXPERIMENT_BYTES:
            raise ExperimentError("the experiment's settings are too large to keep",
                                  "shorten the longest text you entered")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path(experiment.id), lambda tmp: tmp.write_text(text))
        except OSError as exc:
            raise ExperimentError(f"the experiment cannot be saved: {exc.strerror or exc}",
                                  "free some disk space or check the data folder's permissions") from None

    def load(self, experiment_id: str) -> Experiment:
        """The saved experiment; settings files of older versions are read with their old names.

        Args:
            experiment_id: the experiment.

        Raises:
            ExperimentError: the id is malformed or unknown, or its file is damaged.
        """
        path = self.path(experiment_id)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ExperimentError(f"no experiment {experiment_id} in this data folder",
                                  "start a new experiment") from None
        except (OSError, ValueError):
            raise ExperimentError(f"the experiment file {path.name} is damaged", "start a new experiment") from None
        damaged = ExperimentError(f"the experiment file {path.name} is damaged", "start a new experiment")
        if not isinstance(data, dict) or data.get("id") != experiment_id:
            raise damaged
        values = data.get("values", data.get("choices"))  # "choices": a file of an older version
        if not isinstance(values, dict):
            raise damaged
        experiment = Experiment(experiment_id, created=float(data.get("created") or 0),
                                updated=float(data.get("updated") or 0), config=data.get("config"))
        for name, value in values.items():
            value = LEGACY_VALUES.get(name, {}).get(value, value) if isinstance(value, str) else value
            try:
                experiment.set(LEGACY_NAMES.get(name, name), value)
            except ExperimentError:
                pass  # a setting this version no longer has, or an old value of the wrong type: its default
        if values.get("model.random_init") is True or values.get("model.weights_file"):  # older versions' weights
            experiment.set("model.weights", "random" if values.get("model.random_init") else
                           str(values["model.weights_file"]))
        for name in ("results", "runs", "sweeps"):
            kept = data.get(name)
            if isinstance(kept, type(getattr(experiment, name))):
                setattr(experiment, name, kept)
        for old, ids in (("train.run_id", experiment.runs), ("compare.sweep", experiment.sweeps)):
            if isinstance(values.get(old), str) and values[old] not in ids:
                ids.append(values[old])
        return experiment
