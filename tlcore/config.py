"""One run, described by one JSON document: what the UI builds and `python -m tlcore train` replays.

Every field has a default a beginner can keep; every value is checked before a run
starts, with a message that names the field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from tlcore.augment import AugmentSpec, preset
from tlcore.errors import TransferLabError, check_fields
from tlcore.freeze import STRATEGIES, FreezePlan, make_plan
from tlcore.models import ModelSpec

__all__ = [
    "ConfigError",
    "DataConfig",
    "EarlyStoppingConfig",
    "OptimizerConfig",
    "RunConfig",
    "ScheduleConfig",
    "resolve_freeze_plan",
]

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "onecycle", "step", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
MONITORS = ("val_loss", "val_acc")


class ConfigError(TransferLabError):
    pass


def _from_dict(cls, data: dict, where: str):
    check_fields(data, {f.name for f in fields(cls)}, f"'{where}'", ConfigError)
    return cls(**data)


def _check(condition: bool, field_name: str, value: object, hint: str) -> None:
    if not condition:
        raise ConfigError(f"invalid {field_name}: {value!r}", hint)


@dataclass(frozen=True)
class DataConfig:
    source: str = "sample_data"  # a folder or a zip
    manifest: str | None = None  # a split manifest; made from source + split_seed when absent
    split_seed: int = 0
    val: float = 0.15
    test: float = 0.15


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adamw"
    lr: float = 3e-3  # the head's learning rate; earlier groups get lr x their scale (full fine-tuning: try 3e-4 to 1e-3)
    weight_decay: float = 0.01
    momentum: float = 0.9  # sgd only
    label_smoothing: float = 0.1
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "cosine"
    warmup_epochs: float = 0.0
    step_size: int = 3  # step: epochs between drops
    gamma: float = 0.1  # step: factor per drop


@dataclass(frozen=True)
class EarlyStoppingConfig:
    metric: str = "val_loss"  # also what picks the best checkpoint
    patience: int = 3  # epochs without improvement before stopping; 0 = never stop early
    min_delta: float = 0.0


@dataclass(frozen=True)
class RunConfig:
    name: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    augment: AugmentSpec = field(default_factory=lambda: preset("light"))
    freeze: dict = field(default_factory=lambda: {"strategy": "feature_extraction"})
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    epochs: int = 5
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere
    num_workers: int = -1  # -1: chosen from the machine's cores
    input_size: tuple[int, int, int] | None = None  # override the model's (smaller is faster, less accurate)
    feature_cache: bool = True  # head-only runs train on cached backbone features (same result, much faster)
    feature_views: int = 2  # augmented views of each training picture cached for that fast path

    def __post_init__(self) -> None:
        o, s, e = self.optimizer, self.schedule, self.early_stopping
        _check(isinstance(self.epochs, int) and 1 <= self.epochs <= 1000, "epochs", self.epochs, "use 1 to 1000")
        _check(isinstance(self.batch_size, int) and 1 <= self.batch_size <= 4096, "batch_size", self.batch_size,
               "use 1 to 4096, e.g. 32")
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
        _check(self.device in DEVICES, "device", self.device, f"use one of {', '.join(DEVICES)}")
        _check(self.precision in PRECISIONS, "precision", self.precision, f"use one of {', '.join(PRECISIONS)}")
        _check(self.num_workers >= -1, "num_workers", self.num_workers, "use -1 (auto), 0 or more")
        _check(isinstance(self.feature_views, int) and 1 <= self.feature_views <= 50, "feature_views",
               self.feature_views, "use 1 to 50")
        d = self.data
        _check(0 <= d.val < 1 and 0 <= d.test < 1 and d.val + d.test < 1, "data.val/test", (d.val, d.test),
               "fractions whose sum is below 1, e.g. 0.15 and 0.15")
        if self.input_size is not None:
            _check(len(self.input_size) == 3 and self.input_size[0] == 3 and min(self.input_size[1:]) >= 8,
                   "input_size", self.input_size, "use [3, height, width], e.g. [3, 160, 160]")
        strategy = self.freeze.get("strategy") if isinstance(self.freeze, dict) else None
        _check(strategy in STRATEGIES or "stages" in (self.freeze or {}), "freeze.strategy", strategy,
               f"use one of {', '.join(STRATEGIES)}")

    # -- plain data -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        data["model"] = self.model.to_dict()
        data["augment"] = self.augment.to_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        check_fields(data, {f.name for f in fields(cls)}, "the run config", ConfigError)
        data = dict(data)
        parts = {"data": DataConfig, "optimizer": OptimizerConfig, "schedule": ScheduleConfig,
                 "early_stopping": EarlyStoppingConfig}
        for key, part in parts.items():
            if key in data:
                data[key] = _from_dict(part, data[key], key)
        if "model" in data:
            data["model"] = ModelSpec.from_dict(data["model"])
        if "augment" in data:
            data["augment"] = AugmentSpec.from_dict(data["augment"])
        if data.get("input_size") is not None:
            data["input_size"] = tuple(data["input_size"])
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"invalid config: {exc}", "compare with the example in the README") from None

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise ConfigError(f"no such config file: {path}", "check the path") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path.name} is not valid JSON: {exc}", "fix the JSON syntax") from None


def resolve_freeze_plan(freeze: dict, n_groups: int) -> FreezePlan:
    """A full plan (with `stages`) as it is, or a strategy shorthand made into a plan for this model."""
    if "stages" in freeze:
        return FreezePlan.from_dict(freeze)
    check_fields(freeze, {"strategy", "k", "every", "head_epochs", "lr_spread", "train_bn"},
                 "'freeze' (or give a full plan with stages)", ConfigError)
    options = {k: v for k, v in freeze.items() if k != "strategy"}
    return make_plan(freeze["strategy"], n_groups, **options)
