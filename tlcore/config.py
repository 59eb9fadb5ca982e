"""One run, described by one JSON document: what the UI builds and `python -m tlcore train` replays.

Every field has a default a beginner can keep; every value is checked before a run
starts, with a message that names the field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from tlcore.adapt_spec import AdaptConfig, check_adapt
from tlcore.augment_spec import AugmentSpec, preset
from tlcore.text.augment import TextAugment
from tlcore.errors import TransferLabError, check_fields
from tlcore.typed import check_plain, typed
from tlcore.freeze import STRATEGIES, FreezePlan, make_plan
from tlcore.models import ModelSpec

__all__ = [
    "AdaptConfig",
    "ConfigError",
    "DataConfig",
    "DistributedConfig",
    "EarlyStoppingConfig",
    "OptimizerConfig",
    "RunConfig",
    "ScheduleConfig",
    "FreezeOptions",
    "check_freeze",
    "read_json_file",
    "resolve_freeze_plan",
]

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "onecycle", "step", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
SWITCHES = ("auto", "on", "off")
AUGMENT_ON = ("auto", "device", "cpu")
# What picks the best epoch (and early stopping): the source's validation split, or the few labelled target
# pictures that no run trains on (adapt.labelled with labelled_use "choose"; tlcore.parts.labelled_target).
MONITORS = ("val_loss", "val_acc", "labelled_loss", "labelled_acc")
LABELLED_MONITORS = ("labelled_loss", "labelled_acc")
MAX_CONFIG_BYTES = 1_000_000
MAX_INPUT_SIDE = 4096  # pixels: a batch of larger pictures does not fit any machine's memory


class ConfigError(TransferLabError):
    """A run config that cannot be used: one line naming the field and what it accepts."""


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(condition: bool, field_name: str, value: object, hint: str) -> None:
    if not condition:
        raise ConfigError(f"invalid {field_name}: {value!r}", hint)


@dataclass(frozen=True)
class DataConfig:
    """Where a run's pictures (or texts) come from and how they are split (source folder, zip or text file,
    manifest, seed, shares; for text files the text and label columns)."""
    source: str = "sample_data"  # a folder or a zip
    manifest: str | None = None  # a split manifest; made from source + split_seed when absent
    split_seed: int = 0
    val: float = 0.15
    test: float = 0.15
    text_column: str | None = None  # text data: the column of the texts (None: found by name, e.g. "text")
    label_column: str | None = None  # text data: the column of the labels (None: found by name, e.g. "label")


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer: AdamW or SGD, the head's learning rate, weight decay, label smoothing, gradient clipping."""
    name: str = "adamw"
    lr: float = 3e-3  # the head's learning rate; earlier groups get lr x their scale (full fine-tuning: try 3e-4 to 1e-3)
    weight_decay: float = 0.01
    momentum: float = 0.9  # sgd only
    label_smoothing: float = 0.1
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate schedule: cosine, one-cycle, step or constant, with its warm-up and step settings."""
    name: str = "cosine"
    warmup_epochs: float = 0.0
    step_size: int = 3  # step: epochs between drops
    gamma: float = 0.1  # step: factor per drop


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """The early-stopping rule: the metric that picks the best checkpoint, patience and minimum improvement."""
    metric: str = "val_loss"  # also what picks the best checkpoint
    patience: int = 3  # epochs without improvement before stopping; 0 = never stop early
    min_delta: float = 0.0

    def improves(self, value: float, best: float | None) -> bool:
        """The one rule for "this epoch is better": lower loss or higher accuracy, by more than `min_delta`.

        Args:
            value: this epoch's metric.
            best: the best so far (None: nothing yet).

        Returns:
            Whether it improves on it.
        """
        if best is None:
            return True
        lower_is_better = self.metric.endswith("_loss")
        return value < best - self.min_delta if lower_is_better else value > best + self.min_delta

    def best_epoch(self, history: list[dict]) -> int | None:
        """The epoch the rule keeps as best, walking the history as training did; None for no epochs."""
        best, chosen = None, None
        for row in history:
            if self.improves(row[self.metric], best):
                best, chosen = row[self.metric], row["epoch"]
        return chosen


@dataclass(frozen=True)
class DistributedConfig:
    """One run on several processes with torchrun (`tlcore.ddp`); 1 process: no torchrun at all."""

    nproc_per_node: int = 1
    sync_bn: bool = False  # BatchNorm statistics over the whole global batch (PyTorch: CUDA only)


@dataclass(frozen=True)
class RunConfig:
    """One run, as one JSON document: data, model, augmentation, freeze plan, optimizer, schedule, adaptation
    and runtime settings. The UI builds it, `python -m tlcore train` replays it; `from_dict` checks every field."""
    name: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    augment: AugmentSpec = field(default_factory=lambda: preset("light"))
    text_augment: TextAugment = field(default_factory=TextAugment)  # texts: word dropout, swap, deletion (none)
    freeze: dict = field(default_factory=lambda: {"strategy": "feature_extraction"})
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    epochs: int = 5
    batch_size: int | str = 32  # "auto": the largest power of two that fits the GPU, lr scaled (tlcore.batch_size)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere
    num_workers: int = -1  # -1: chosen from the machine's cores
    input_size: tuple[int, int, int] | None = None  # override the model's (smaller is faster, less accurate)
    feature_cache: bool = True  # head-only runs train on cached backbone features (same result, much faster)
    feature_views: int = 2  # augmented views of each training picture cached for that fast path
    adapt: AdaptConfig = field(default_factory=AdaptConfig)  # domain adaptation (tlcore.adapt); none by default
    evaluate_on: tuple[str, ...] = ()  # labelled folders (other domains) the finished run is also evaluated on
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    decoded_cache: str = "auto"  # pictures decoded once into a uint8 cache (tlcore.decoded); auto: on with CUDA
    decoded_cache_max_gb: float = 20.0  # over this the run reads the JPEGs, and says so
    augment_on: str = "auto"  # "device": augment whole batches on the GPU (tlcore.device_augment); auto: with CUDA
    compile: bool = False  # torch.compile the training step's model; a failure to compile falls back with a warning

    def __post_init__(self) -> None:
        o, s, e = self.optimizer, self.schedule, self.early_stopping
        _check(_whole(self.epochs) and 1 <= self.epochs <= 1000, "epochs", self.epochs, "use 1 to 1000")
        _check(self.batch_size == "auto" or (_whole(self.batch_size) and 1 <= self.batch_size <= 4096), "batch_size",
               self.batch_size, "use 1 to 4096, e.g. 32, or \"auto\" (the largest that fits the GPU)")
        _check(self.decoded_cache in SWITCHES, "decoded_cache", self.decoded_cache, f"use one of {', '.join(SWITCHES)}")
        _check(0 < self.decoded_cache_max_gb <= 10_000, "decoded_cache_max_gb", self.decoded_cache_max_gb,
               "use a size in GB, e.g. 20")
        _check(self.augment_on in AUGMENT_ON, "augment_on", self.augment_on, f"use one of {', '.join(AUGMENT_ON)}")
        _check(o.name in OPTIMIZERS, "optimizer.name", o.name, f"use one of {', '.join(OPTIMIZERS)}")
        _check(0 < o.lr <= 10, "optimizer.lr", o.lr, "use a positive learning rate such as 1e-3 (try lr-find)")
        _check(0 <= o.weight_decay < 1, "optimizer.weight_decay", o.weight_decay, "use 0 to 1, e.g. 0.01")
        _check(0 <= o.momentum < 1, "optimizer.momentum", o.momentum, "use 0 to 1, e.g. 0.9")
        _check(0 <= o.label_smoothing < 1, "optimizer.label_smoothing", o.label_smoothing, "use 0 to 1, e.g. 0.1")
        _check(o.grad_clip >= 0, "optimizer.grad_clip", o.grad_clip, "use 0 (off) or a positive norm, e.g. 1.0")
        _check(s.name in SCHEDULES, "schedule.name", s.name, f"use one of {', '.join(SCHEDULES)}")
        _check(0 <= s.warmup_epochs < self.epochs, "schedule.warmup_epochs", s.warmup_epochs,
               "use fewer warm-up epochs than epochs")
        _check(s.step_size >= 1 and 0 < s.gamma <= 1, "schedule.step_size/gamma", (s.step_size, s.gamma),
               "step_size 1 or more, gamma in (0, 1]")
        _check(e.metric in MONITORS, "early_stopping.metric", e.metric, f"use one of {', '.join(MONITORS)}")
        _check(e.patience >= 0, "early_stopping.patience", e.patience, "use 0 (off) or more")
        _check(e.metric not in LABELLED_MONITORS or self.adapt.labelled_kept_apart,
               "early_stopping.metric", e.metric, "it needs labelled target pictures kept out of training: set "
               "adapt.labelled and adapt.labelled_use choose, or use val_loss")
        _check(self.device in DEVICES, "device", self.device, f"use one of {', '.join(DEVICES)}")
        _check(self.precision in PRECISIONS, "precision", self.precision, f"use one of {', '.join(PRECISIONS)}")
        _check(self.num_workers >= -1, "num_workers", self.num_workers, "use -1 (auto), 0 or more")
        _check(_whole(self.feature_views) and 1 <= self.feature_views <= 50, "feature_views",
               self.feature_views, "use 1 to 50")
        d = self.data
        _check(0 <= d.val < 1 and 0 <= d.test < 1 and d.val + d.test < 1, "data.val/test", (d.val, d.test),
               "fractions whose sum is below 1, e.g. 0.15 and 0.15")
        if self.input_size is not None:
            _check(len(self.input_size) == 3 and self.input_size[0] == 3 and min(self.input_size[1:]) >= 8
                   and max(self.input_size[1:]) <= MAX_INPUT_SIDE, "input_size", self.input_size,
                   f"use [3, height, width] with sides from 8 to {MAX_INPUT_SIDE}, e.g. [3, 160, 160]")
        check_freeze(self.freeze)
        _check("stages" in self.freeze or self.freeze["strategy"] in STRATEGIES, "freeze.strategy",
               self.freeze.get("strategy"), f"use one of {', '.join(STRATEGIES)}")
        _check(_whole(d.split_seed) and 0 <= d.split_seed < 2**31, "data.split_seed", d.split_seed,
               "use a whole number from 0, e.g. 0")
        _check(_whole(self.seed) and 0 <= self.seed < 2**31, "seed", self.seed, "use a whole number from 0, e.g. 0")
        check_freeze(self.freeze)
        n = self.distributed.nproc_per_node
        _check(_whole(n) and 1 <= n <= 64, "distributed.nproc_per_node", n, "use 1 (one process) to 64")
        if n > 1:
            _check(self.adapt.method == "none", "adapt.method", self.adapt.method,
                   "domain adaptation runs in one process: use distributed.nproc_per_node 1")
            _check(self.batch_size != "auto", "batch_size", self.batch_size,
                   "batch size auto is found in one process: give a number with distributed.nproc_per_node > 1")
            _check(self.batch_size >= n, "batch_size", self.batch_size,
                   f"the global batch is split between {n} processes: use at least {n}")
        try:
            check_adapt(self.adapt)
            self.text_augment.check()
        except TransferLabError as exc:
            raise ConfigError(exc.problem, exc.hint) from None

    # -- plain data -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The config as plain JSON-ready data, every field written out (a replay needs nothing else)."""
        data = asdict(self)
        data["model"] = self.model.to_dict()
        data["augment"] = self.augment.to_dict()
        return data

    def to_json(self) -> str:
        """`to_dict` as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        """A config from plain data, every value checked against its type, range and choices.

        Raises `ConfigError` (one line naming the field, what it holds and what it expects) for anything else.
        """
        check_fields(data, {f.name for f in fields(cls)}, "the run config", ConfigError)
        data = dict(data)
        if "augment" in data:  # a preset name becomes its transforms, each checked by albumentations
            check_plain(data["augment"], "augment", ConfigError)
            data["augment"] = AugmentSpec.from_dict(data["augment"]).to_dict()
        return typed(cls, data, "the run config", ConfigError)

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        """A config file (at most 1 MB of UTF-8 JSON); any problem with the file is one line.

        Args:
            path: the JSON file.

        Returns:
            The config.

        Raises:
            ConfigError: the file cannot be read, is not JSON, or holds an invalid config.
        """
        return cls.from_dict(read_json_file(path, "config", ConfigError))


def read_json_file(path: str | Path, what: str, error: type[TransferLabError] = TransferLabError,
                   max_bytes: int = MAX_CONFIG_BYTES) -> object:
    """A small JSON file people edit by hand, read defensively: size, type, encoding and nesting are checked first.

    Args:
        path: the file.
        what: what it is, for messages ("run config").
        error: the error type raised.
        max_bytes: larger files are refused unread.

    Returns:
        The parsed JSON value.

    Raises:
        TransferLabError: (or `error`) a missing, too large, non-UTF-8, invalid or too deeply nested file.
    """
    path = Path(path)
    try:
        if not path.exists():
            raise error(f"no such {what} file: {path}", "check the path")
        if not path.is_file():
            raise error(f"{path} is not a {what} file but a {'folder' if path.is_dir() else 'special file'}",
                        f"give the path of a .json {what} file")
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{path.name} is {size:,} bytes, too large for a {what}", f"a {what} is at most "
                        f"{max_bytes // 1_000_000} MB; check you chose the right file")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path.name} is not a text file", f"give a JSON {what} (UTF-8 text)") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}", "check the path and its permissions") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path.name} is not valid JSON: {exc}", "fix the JSON syntax") from None
    except ValueError as exc:  # Python's limit on the digits of one integer (4,300)
        raise error(f"{path.name} is not valid JSON: {str(exc).split(';')[0]}", "use ordinary numbers") from None
    except RecursionError:
        raise error(f"{path.name} is nested too deeply to be a {what}", "check you chose the right file") from None


@dataclass(frozen=True)
class FreezeOptions:
    """The strategy shorthand of `freeze` (a full plan with stages is the other form)."""

    strategy: str
    k: int | None = None
    every: int = 1
    head_epochs: int = 1
    lr_spread: float | None = None  # None: the strategy's own default
    train_bn: bool = False


def check_freeze(freeze: object) -> None:
    """Types and ranges of the freeze setting; what depends on the model's groups is checked when it is built."""
    if isinstance(freeze, dict) and "stages" in freeze:
        plan = typed(FreezePlan, freeze, "'freeze'", ConfigError)
        _check(all(_whole(s.epoch) and s.epoch >= 0 for s in plan.stages), "freeze.stages", freeze["stages"],
               "stage epochs are whole numbers from 0")
        return
    options = typed(FreezeOptions, freeze, "'freeze'", ConfigError)
    _check(options.k is None or options.k >= 0, "freeze.k", options.k, "use 0 or more groups")
    _check(options.every >= 1, "freeze.every", options.every, "use 1 or more epochs")
    _check(options.head_epochs >= 1, "freeze.head_epochs", options.head_epochs, "use 1 or more epochs")
    _check(options.lr_spread is None or 1 <= options.lr_spread <= 1e6, "freeze.lr_spread", options.lr_spread,
           "use 1 (one learning rate) up to e.g. 100")


def resolve_freeze_plan(freeze: dict, n_groups: int) -> FreezePlan:
    """A full plan (with `stages`) as it is, or a strategy shorthand made into a plan for this model.

    Args:
        freeze: the run config's `freeze` (a strategy with its options, or a plan with `stages`).
        n_groups: the model's number of layer groups.

    Returns:
        The plan.

    Raises:
        FreezePlanError: an unknown strategy, a bad option, or a plan that does not fit the model.
    """
    check_freeze(freeze)
    if "stages" in freeze:
        return typed(FreezePlan, freeze, "'freeze'", ConfigError)
    options = {k: v for k, v in freeze.items() if k != "strategy" and v is not None}
    return make_plan(freeze["strategy"], n_groups, **options)
