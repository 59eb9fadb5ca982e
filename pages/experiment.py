"""The user's experiment as one typed object: every setting by its dotted path, the results it paid for, its runs.

The app holds exactly one `Experiment` per browser link (`?exp=ID`); pages render from it and write only
what the user changed. It is plain data kept in `<data folder>/experiments/<id>.json`, so a reload, a
second tab or a restarted server shows the same settings, ranking, estimates and runs.

Settings are named as the run config and the comparison grid name them (`optimizer.lr`, `freeze.k`,
`epochs`): `get("optimizer.lr")`, `set("optimizer.lr", 3e-4)`. Choices that only the app has (where the
data comes from, the models to rank, what a comparison varies) live under `app.`. The run's settings are
not listed here: they are every field of the run config (`tlcore.core.schema.leaves(RunConfig)`), with its own
default, so adding a field to the config adds it to the experiment, to `run_config()` and to `from_config()`.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tlcore.inputs.augment_spec import PRESETS, preset
from tlcore.config import ConfigError, RunConfig
from tlcore.errors import TransferLabError
from tlcore.core.files import FileRefused, atomic_write, read_regular_file
from tlcore.experiments.grid import AXES, put_value, value_at
from tlcore.models import DEFAULT_MODEL
from tlcore.core.paths import data_home
from tlcore.core.schema import Leaf, leaves
from tlcore.core.typed import check_plain

__all__ = ["Setting", "SETTINGS", "RUN_SETTINGS", "Experiment", "ExperimentStore", "ExperimentError", "PICKED_AXES"]

_ID = re.compile(r"[0-9a-f]{12}")
MAX_EXPERIMENT_BYTES = 2_000_000


class ExperimentError(TransferLabError):
    """An experiment id that is malformed or unknown, a file that cannot be read, a setting that does not exist."""


@dataclass(frozen=True)
class Setting:
    """One setting of an experiment.

    Attributes:
        path: its dotted name; a run config path (`optimizer.lr`) goes into the run, `app.` ones stay in the app.
        default: the value a new experiment starts with (plain JSON data).
        kinds: the types a value may have; an int given for a float setting is taken as a float.
        leaf: for a run setting, the config field it is (its metadata: label, help, bounds, options).
    """

    path: str
    default: object
    kinds: tuple[type, ...]
    leaf: Leaf | None = None

    @property
    def in_run(self) -> bool:
        """The setting belongs to the run config (not to the app's own `app.` choices)."""
        return not self.path.startswith("app.")


# The run's settings: every field of the run config but the augmentation's steps, which are the preset's
# (`augment.preset`) or the user's own JSON (`app.augment_json`).
_TAKEN_WHOLE = ("augment.transforms",)
RUN_SETTINGS: tuple[Setting, ...] = tuple(Setting(leaf.path, leaf.default, leaf.kinds, leaf)
                                          for leaf in leaves(RunConfig) if leaf.path not in _TAKEN_WHOLE)

# The axes a comparison picks from a list (those whose suggested values are a list; the others are typed as
# comma-separated text): the options shown, from the field's own suggestions or options.
PICKED_AXES: dict[str, list] = {
    s.path: list(s.leaf.meta.suggestions or s.leaf.meta.options)
    for s in RUN_SETTINGS if s.path in AXES and isinstance(s.leaf.meta.try_values, list)
}

_S, _I, _B, _L = str, int, bool, list
SETTINGS: tuple[Setting, ...] = (
    *RUN_SETTINGS,
    # the app's own choices
    Setting("app.data_kind", "Bundled sample data", (_S,)),
    Setting("app.folder", "", (_S,)),
    Setting("app.model_search", "", (_S,)),
    Setting("app.rank_models", [DEFAULT_MODEL], (_L,)),
    Setting("app.rank_baseline", True, (_B,)),
    Setting("app.augment_json", "", (_S,)),  # the user's own augmentation JSON; empty: the preset
    Setting("app.augment_seed", 0, (_I,)),
    Setting("app.compare_what", "freeze.strategy", (_S,)),  # a path of tlcore.experiments.grid.AXES
    Setting("app.compare_also", "", (_S,)),  # a second one, for a grid
    Setting("app.compare_seeds", 1, (_I,)),
    Setting("app.compare_run_on", "this machine", (_S,)),
    Setting("app.ray_address", "", (_S,)),
    Setting("app.target_test", "", (_S,)),
    Setting("app.equivalence_margin", 2.0, (float,)),
    Setting("app.recommended", {}, (dict,)),  # values the app gave settings to follow the data (schema's recommended)  # points: the verdict's "as good" needs the interval within it
    # what a comparison of each axis tries: the field's own suggested values (a list, or text to type)
    *(Setting(f"app.vary.{s.path}", s.leaf.meta.try_values, (_L if isinstance(s.leaf.meta.try_values, list)
                                                              else _S,))
      for s in RUN_SETTINGS if s.path in AXES),
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
    **{f"compare.text.{path}": f"app.vary.{path}" for path in AXES if path not in PICKED_AXES},
}

# Defaults of the settings before they were the config's own (version 1 files keep what they meant): k was 1 group,
# and the lr spread 1 for every strategy.
_OLD_DEFAULTS = {"freeze.k": 1, "freeze.lr_spread": 1.0}

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
                              "see pages.experiment.SETTINGS for the names") from None


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
    version: int = 2  # 2: the run's settings are the config's fields, with the config's own defaults

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
        data: dict = {}
        strategy = self.get("freeze.strategy")
        for s in RUN_SETTINGS:  # a setting the strategy does not read goes in at its default (the config's own rule)
            put_value(data, s.path, self.get(s.path) if s.leaf.used_by(strategy) else s.default)
        data["augment"] = self.augment_data()  # over augment.preset: the preset, or the user's own steps
        return RunConfig.from_dict(data)

    @classmethod
    def from_config(cls, config: RunConfig) -> "Experiment":
        """A new (unsaved) experiment holding a run's settings, to change one and run again.

        Args:
            config: the run whose settings to take, every field of it; the app's own choices start at their
                defaults.

        Returns:
            The experiment; its `run_config()` is `config` again.
        """
        plain = json.loads(config.to_json())  # tuples as lists, as the experiment's file holds them
        experiment = cls(id=uuid.uuid4().hex[:12])
        for s in RUN_SETTINGS:  # the augmentation is taken whole, below; a run's name is its own, not the next's
            if s.path not in ("augment.preset", "name"):
                experiment.set(s.path, value_at(plain, s.path))
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

    def owns(self, run_id: str, sweep: str | None = None) -> bool:
        """Whether this experiment started the run: from its Train page, or as part of one of its comparisons.

        Args:
            run_id: the run.
            sweep: the comparison the run belongs to, if any.

        Returns:
            True for this experiment's own runs.
        """
        return run_id in self.runs or (sweep is not None and sweep in self.sweeps)

    def remember_sweep(self, sweep_id: str) -> None:
        """A comparison started from this experiment.

        Args:
            sweep_id: the comparison.
        """
        if sweep_id not in self.sweeps:
            self.sweeps.append(sweep_id)


def _seconds(value: object) -> float:
    """A time stamp as the file holds it; anything else (text, a boolean) reads as 0."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _usable_results(results: object) -> dict:
    """The results a file keeps, each kept only in the shape the pages read (a ranking of scores, estimates by
    key): an edited or damaged part is dropped, to be measured again, rather than break a page."""
    if not isinstance(results, dict):
        return {}
    kept: dict = {}
    ranking = results.get("ranking")
    if (isinstance(ranking, dict) and isinstance(ranking.get("asked"), list)
            and isinstance(ranking.get("scores"), list) and all(isinstance(s, dict) for s in ranking["scores"])):
        kept["ranking"] = ranking
    estimates = results.get("estimates")
    if isinstance(estimates, dict):
        kept["estimates"] = {k: v for k, v in estimates.items() if isinstance(v, dict)}
    kept.update({k: v for k, v in results.items() if k not in ("ranking", "estimates")})
    return kept


def _ordinary_int(digits: str) -> int | float:
    """An integer of the file, or NaN for one too long to be a setting (10**4000: Python will not even read one
    of over 4,300 digits), which the value check then drops."""
    return int(digits) if len(digits.lstrip("-")) <= 30 else math.nan


def _drop_values_that_are_not_plain(data: object) -> None:
    """Each of the file's values that is not plain data (a huge or non-finite number, an endless text) is left out,
    and so are the saved run config and results when they are not (both are made again from the values)."""
    if not isinstance(data, dict):
        return
    for part in ("config", "results"):
        try:
            check_plain(data.get(part), part, ExperimentError)
        except ExperimentError:
            data.pop(part)
    values = data.get("values")
    if not isinstance(values, dict):
        return
    for name in list(values):
        try:
            check_plain(values[name], f"values.{name}", ExperimentError)
        except ExperimentError:
            del values[name]


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
        damaged = ExperimentError(f"the experiment file {path.name} is damaged", "start a new experiment")
        if not path.exists() and not path.is_symlink():
            raise ExperimentError(f"no experiment {experiment_id} in this data folder", "start a new experiment")
        try:  # a regular file of a bounded size only: a FIFO put in its place, or a link to /dev/zero, is damage
            data = json.loads(read_regular_file(path, MAX_EXPERIMENT_BYTES).decode("utf-8"), parse_int=_ordinary_int)
            _drop_values_that_are_not_plain(data)  # one bad value costs that value, not the whole experiment
            check_plain(data, "the experiment file", ExperimentError)
        except (FileRefused, ExperimentError, ValueError, RecursionError):
            raise damaged from None
        if not isinstance(data, dict) or data.get("id") != experiment_id:
            raise damaged
        values = data.get("values", data.get("choices"))  # "choices": a file of an older version
        if not isinstance(values, dict):
            raise damaged
        experiment = Experiment(experiment_id, created=_seconds(data.get("created")),
                                updated=_seconds(data.get("updated")),
                                config=data.get("config") if isinstance(data.get("config"), dict) else None)
        for name, value in values.items():
            value = LEGACY_VALUES.get(name, {}).get(value, value) if isinstance(value, str) else value
            try:
                experiment.set(LEGACY_NAMES.get(name, name), value)
            except ExperimentError:
                pass  # a setting this version no longer has, or an old value of the wrong type: its default
        if data.get("version") != 2:  # a file of an older version: its settings' defaults were the app's own
            for path, old_default in _OLD_DEFAULTS.items():
                if path not in values:
                    experiment.set(path, old_default)
        if values.get("model.random_init") is True or values.get("model.weights_file"):  # older versions' weights
            experiment.set("model.weights", "random" if values.get("model.random_init") else
                           str(values["model.weights_file"]))
        for name in ("runs", "sweeps"):
            kept = data.get(name)
            if isinstance(kept, list):
                setattr(experiment, name, [i for i in kept if isinstance(i, str)])
        experiment.results = _usable_results(data.get("results"))
        for old, ids in (("train.run_id", experiment.runs), ("compare.sweep", experiment.sweeps)):
            if isinstance(values.get(old), str) and values[old] not in ids:
                ids.append(values[old])
        return experiment
