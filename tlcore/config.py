"""One run, described by one JSON document: what the UI builds and `python -m tlcore train` replays.

Every field has a default a beginner can keep; every value is checked before a run
starts, with a message that names the field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from tlcore.spec.adapt_spec import AdaptConfig, check_adapt
from tlcore.inputs.augment_spec import AugmentSpec, preset
from tlcore.text.augment import TextAugment
from tlcore.errors import TransferLabError, check_fields
from tlcore.core.typed import check_plain, typed
from tlcore.spec.freeze import STRATEGIES, FreezePlan, Stage, make_plan
from tlcore.core.schema import leaves, setting
from tlcore.core.strategies import STRATEGY_SET
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
    "FreezeConfig",
    "check_declared",
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
# pictures that no run trains on (adapt.labelled with labelled_use "choose"; tlcore.training.parts.labelled_target).
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
    source: str = setting("sample_data", label="Data", group="data",
                          help="A folder of class folders, a zip of one, or a CSV, TSV or JSONL file of texts.")
    manifest: str | None = setting(None, label="Split manifest", group="data",
                                   help="A split manifest file; made from the data and the split seed when empty.")
    split_seed: int = setting(0, label="Split seed", low=0, high=2**31 - 1, group="data",
                              help="The same seed gives the same split, so runs are compared on the same pictures.")
    val: float = setting(0.15, label="Validation share", low=0.0, high=0.999, group="data",
                         help="Share of each class kept to choose the best epoch.")
    test: float = setting(0.15, label="Test share", low=0.0, high=0.999, group="data",
                          help="Share of each class kept apart for the final, held-out evaluation.")
    text_column: str | None = setting(None, label="Text column", group="data", modalities=("texts",),
                                      help="The column of the texts (empty: found by name, e.g. \"text\").")
    label_column: str | None = setting(None, label="Label column", group="data", modalities=("texts",),
                                       help="The column of the labels (empty: found by name, e.g. \"label\").")


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer: AdamW or SGD, the head's learning rate, weight decay, label smoothing, gradient clipping."""
    name: str = setting("adamw", label="Optimizer", options=OPTIMIZERS, axis="", try_values=["adamw", "sgd"],
                        help="AdamW suits fine-tuning pretrained models; SGD with momentum is the classic choice.")
    lr: float = setting(3e-3, label="Learning rate (head)", low=1e-12, high=10.0, axis="lr",
                        try_values="3e-3, 1e-3, 3e-4", cost=False, recommended=(
                            ("texts", True, 1e-4, "a pretrained text encoder fine-tuned whole at the picture head's "
                                                  "3e-3 forgets what it knew; BERT-base takes 2e-5 to 5e-5, a small "
                                                  "encoder such as MiniLM more (bench/text_reference.py)"),),
                        help="Earlier layer groups use it times their scale (Freeze page). Try the finder.")
    weight_decay: float = setting(0.01, label="Weight decay", low=0.0, high=0.999999, axis="wd",
                                  try_values="0, 0.01, 0.1", cost=False,
                                  help="Pulls weights towards zero; helps against overfitting.")
    momentum: float = setting(0.9, label="Momentum (SGD)", low=0.0, high=0.999999, cost=False,
                              help="SGD only: how much of the last steps each step keeps.")
    label_smoothing: float = setting(0.1, label="Label smoothing", low=0.0, high=0.999999, cost=False,
                                     help="Targets of 1 - x instead of 1: less over-confident predictions.")
    grad_clip: float = setting(1.0, label="Gradient clipping (max norm)", low=0.0,
                               help="The largest gradient norm a step may use; 0 turns clipping off.")


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate schedule: cosine, one-cycle, step or constant, with its warm-up and step settings."""
    name: str = setting("cosine", label="Schedule", options=SCHEDULES, axis="", try_values=["cosine", "onecycle"],
                        cost=False, help="How the learning rate changes over the run.")
    warmup_epochs: float = setting(0.0, label="Warm-up epochs", low=0.0, high=999.0, cost=False, unit="epochs",
                                   recommended=(("texts", True, 0.5, "the usual warm-up of transformer fine-tuning: the "
                                                                     "learning rate rises over the first half epoch"),),
                                   help="The learning rate rises from 0 over these epochs (fewer than the epochs).")
    step_size: int = setting(3, label="Step size (step schedule)", low=1, cost=False, unit="epochs",
                             help="step: epochs between drops of the learning rate.")
    gamma: float = setting(0.1, label="Drop factor (step schedule)", low=1e-9, high=1.0, cost=False,
                           help="step: the learning rate is multiplied by this at each drop.")


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """The early-stopping rule: the metric that picks the best checkpoint, patience and minimum improvement."""
    metric: str = setting("val_loss", label="Best epoch chosen by", options=MONITORS, axis="best by",
                          try_values=["val_loss", "val_acc"], cost=False,  # labelled_*: pictures kept apart only
                          help="Which epoch's weights are kept (and what early stopping watches).")
    patience: int = setting(3, label="Early stopping patience (0 = off)", low=0, cost=False,
                            unit="epochs", help="Epochs without improvement before stopping; 0: never stop early.")
    min_delta: float = setting(0.0, label="Minimum improvement", cost=False,
                               help="An epoch counts as better only when it improves by more than this.")

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
    """One run on several processes with torchrun (`tlcore.running.ddp`); 1 process: no torchrun at all."""

    nproc_per_node: int = setting(1, label="Processes (torchrun)", low=1, high=64, group="runtime",
                                  help="1: one process, no torchrun; more: one run on several GPUs.")
    sync_bn: bool = setting(False, label="Synchronised BatchNorm", group="runtime",
                            help="BatchNorm statistics over the whole global batch (PyTorch: CUDA only).")


@dataclass(frozen=True)
class FreezeConfig:
    """Which layer groups train when: a named strategy with its options, or a plan written as `stages`.

    The plan itself (stages, learning-rate scales) is made for a model's groups by `resolve_freeze_plan`.
    """

    strategy: str = setting("feature_extraction", label="Freeze strategy", options=(*STRATEGIES, "custom"),
                            axis="", try_values=list(STRATEGY_SET), suggestions=tuple(STRATEGY_SET), group="freeze",
                            help="What trains: the head only, the last groups, everything, or in stages.")
    k: int | None = setting(None, label="Groups kept frozen (freeze_first_k)", low=0, axis="k",
                            try_values="1, 2, 3", strategies=("freeze_first_k",), unit="groups", group="freeze", unset="half",
                            help="freeze_first_k: the first k groups, stem first, stay frozen (empty: half).")
    every: int = setting(1, label="Epochs between unfreezing (gradual)", low=1, axis="every",
                         try_values="1, 2", strategies=("gradual",), unit="epochs", group="freeze",
                         help="gradual: one more group unfreezes, head to stem, every this many epochs.")
    head_epochs: int = setting(1, label="Head-only epochs first (fine_tune)", low=1,
                               strategies=("fine_tune",), unit="epochs", group="freeze",
                               help="fine_tune: epochs of training the head alone before everything unfreezes.")
    lr_spread: float | None = setting(None, label="Learning-rate spread, head to stem", low=1.0, high=1e6,
                                      axis="spread", try_values="1, 10, 100", cost=False, group="freeze",
                                      unset="the strategy's own",
                                      help="Head lr / stem lr, geometric in between (1: one learning rate; "
                                           "empty: the strategy's own).")
    train_bn: bool = setting(False, label="Update BatchNorm statistics in frozen groups", group="freeze",
                             help="Off (the default) keeps the pretrained statistics of the frozen groups.")
    stages: tuple[Stage, ...] | None = setting(None, label="Custom plan: stages", group="freeze", strategies=("custom",),
                                               help="A plan written out: from each stage's epoch on, the groups from "
                                                    "trainable_from to the head train.")
    lr_scales: tuple[float, ...] | None = setting(None, label="Custom plan: learning-rate scale per group",
                                                  cost=False, group="freeze", strategies=("custom",),
                                                  help="One scale per group, stem to head (overrides the spread).")

    def __post_init__(self) -> None:
        # A setting its strategy does not read is kept at its default, so one run has one config: `k` under
        # "full" would change nothing the run does, yet make two configs (and two time estimates) of one run.
        for leaf in leaves(FreezeConfig):
            if not leaf.used_by(self.strategy):
                object.__setattr__(self, leaf.path, leaf.default)

    @property
    def custom(self) -> bool:
        """The plan is written out as stages rather than named."""
        return self.stages is not None

    @property
    def name(self) -> str:
        """The strategy's name for people ("custom plan" for stages)."""
        return "custom plan" if self.custom else self.strategy

    def plan(self, n_groups: int) -> FreezePlan:
        """The plan for a model with this many layer groups.

        Args:
            n_groups: the model's number of layer groups.

        Returns:
            The plan.

        Raises:
            FreezePlanError: a bad option, or a plan that does not fit the model.
        """
        if self.custom:
            return FreezePlan(strategy="custom", stages=self.stages, lr_spread=self.lr_spread or 1.0,
                              lr_scales=self.lr_scales, train_bn=self.train_bn)
        options = {"k": self.k, "every": self.every, "head_epochs": self.head_epochs, "lr_spread": self.lr_spread,
                   "train_bn": self.train_bn}
        return make_plan(self.strategy, n_groups, **options)

    def trains_only_head(self, epochs: int, n_groups: int | None = None) -> bool:
        """Only the new head trains in every epoch (`FreezePlan.trains_only_head`, the one definition).

        Args:
            epochs: the run's epochs.
            n_groups: the model's layer groups; None where the model is not built yet (a k given by number then
                counts as not head only, as it may free a group).

        Returns:
            Whether no backbone group trains within `epochs`.
        """
        if n_groups is None:
            if self.custom or (self.strategy == "freeze_first_k" and self.k is not None):
                return False
            n_groups = 1000  # named strategies: which groups train does not depend on how many there are
        try:
            return self.plan(n_groups).trains_only_head(epochs, n_groups)
        except TransferLabError:
            return False


@dataclass(frozen=True)
class RunConfig:
    """One run, as one JSON document: data, model, augmentation, freeze plan, optimizer, schedule, adaptation
    and runtime settings. The UI builds it, `python -m tlcore train` replays it; `from_dict` checks every field.

    Every field is declared once with its metadata (`tlcore.core.schema.setting`): the app's settings, widgets,
    comparison axes and the time estimate's key are derived from it."""
    name: str = setting("", label="Run name", cost=False, group="runtime", help="Shown in lists and charts.")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    augment: AugmentSpec = field(default_factory=lambda: preset("light"))
    text_augment: TextAugment = field(default_factory=TextAugment)  # texts: word dropout, swap, deletion (none)
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    epochs: int = setting(5, label="Epochs", low=1, high=1000, axis="epochs", try_values="3, 5, 10", unit="epochs",
                          help="Passes over the training items.")
    batch_size: int | str = setting(32, label="Batch size", low=1, high=4096, axis="batch", try_values="16, 32",
                                    suggestions=(8, 16, 32, 64, 128, "auto"),
                                    help="Larger is faster and needs more memory. auto: on a GPU, the largest power "
                                         "of two that fits in 90% of its memory, with the learning rate scaled from "
                                         "batch 32 (square root for AdamW, linear for SGD); 32 on a CPU.")
    seed: int = setting(0, label="Seed", low=0, high=2**31 - 1, cost=False,
                        help="The head's initialisation, the batch order and the augmentation.")
    device: str = setting("auto", label="Device", options=DEVICES, group="runtime",
                          help="auto: the GPU where there is one, else the CPU.")
    precision: str = setting("auto", label="Precision", options=PRECISIONS, group="runtime",
                             help="auto: bf16 autocast on CUDA, fp32 elsewhere.")
    num_workers: int = setting(-1, label="Data-loading workers", low=-1, group="runtime",
                               help="-1: chosen from the machine's cores; 0: in the training process.")
    input_size: tuple[int, int, int] | None = setting(None, label="Input size [3, height, width]", group="model",
                                                      modalities=("images",),
                                                      help="Overrides the model's (smaller is faster, less accurate).")
    feature_cache: bool = setting(True, label="Cache backbone features (head-only runs)", group="runtime",
                                  help="Head-only runs train on features computed once (same result, much faster).")
    feature_views: int = setting(2, label="Augmented views cached per picture", low=1, high=50, group="runtime",
                                 modalities=("images",),
                                 help="For the feature-cache fast path: augmented views of each training picture.")
    adapt: AdaptConfig = field(default_factory=AdaptConfig)  # domain adaptation (tlcore.adaptation.adapt); none by default
    evaluate_on: tuple[str, ...] = setting((), label="Also evaluate on (labelled folders)", cost=False,
                                           group="adapt", help="Other domains the finished run is evaluated on.")
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    decoded_cache: str = setting("auto", label="Decoded-picture cache", options=SWITCHES, group="runtime",
                                 modalities=("images",),
                                 help="Pictures decoded once into a uint8 cache; auto: on with CUDA.")
    decoded_cache_max_gb: float = setting(20.0, label="Decoded cache limit (GB)", high=10_000.0,
                                          group="runtime", modalities=("images",), unit="GB",
                                          help="Over this the run reads the picture files, and says so.")
    augment_on: str = setting("auto", label="Augment on", options=AUGMENT_ON, group="runtime",
                              modalities=("images",),
                              help="device: whole batches augmented on the GPU; auto: on the GPU with CUDA.")
    compile: bool = setting(False, label="torch.compile", group="runtime",
                            help="Compile the training step's model; a failure to compile falls back with a warning.")

    def __post_init__(self) -> None:
        if isinstance(self.freeze, dict):  # the Python API's shorthand, RunConfig(freeze={"strategy": "full"})
            freeze = dict(self.freeze)
            if freeze.get("stages") is not None:
                freeze["strategy"] = "custom"
            object.__setattr__(self, "freeze", typed(FreezeConfig, freeze, "'freeze'", ConfigError))
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
        _check(_whole(d.split_seed) and 0 <= d.split_seed < 2**31, "data.split_seed", d.split_seed,
               "use a whole number from 0, e.g. 0")
        _check(_whole(self.seed) and 0 <= self.seed < 2**31, "seed", self.seed, "use a whole number from 0, e.g. 0")
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
        check_declared(self)

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
        freeze = data.get("freeze")
        if isinstance(freeze, dict) and freeze.get("stages") is not None:  # a plan written out is a custom plan,
            data["freeze"] = {**freeze, "strategy": "custom"}  # whatever it was named (`freeze show` prints its name)
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


def check_declared(config: object, prefix: str = "") -> None:
    """Every setting against the options and bounds its field declares (`tlcore.core.schema.Meta`).

    Args:
        config: a config dataclass (the run config or a section of it).
        prefix: the section's dotted path.

    Raises:
        ConfigError: naming the first setting outside its options or bounds.
    """
    for found in leaves(type(config)):
        value: object = config
        for key in found.path.split("."):
            value = getattr(value, key)
        meta, path = found.meta, prefix + found.path
        if meta.options is not None and isinstance(value, str):
            _check(value in meta.options, path, value, f"use one of {', '.join(map(str, meta.options))}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (meta.low, meta.high) != (None, None):
            _check((meta.low is None or value >= meta.low) and (meta.high is None or value <= meta.high), path,
                   value, f"use {meta.low:g} to {meta.high:g}" if meta.low is not None and meta.high is not None
                   else f"use at least {meta.low:g}" if meta.low is not None else f"use at most {meta.high:g}")


def check_freeze(freeze: FreezeConfig) -> None:
    """Types and ranges of the freeze setting; what depends on the model's groups is checked when it is built.

    Args:
        freeze: the run's freeze setting.

    Raises:
        ConfigError: naming the field.
    """
    _check(freeze.strategy in (*STRATEGIES, "custom"), "freeze.strategy", freeze.strategy,
           f"use one of {', '.join(STRATEGIES)}")
    _check(freeze.strategy != "custom" or freeze.custom, "freeze.stages", None,
           "a custom plan needs its stages, e.g. [{\"epoch\": 0, \"trainable_from\": -1}]")
    if freeze.custom:
        try:
            freeze.plan(1000)
        except TransferLabError as exc:
            raise ConfigError(exc.problem, exc.hint) from None
        _check(all(_whole(s.epoch) and s.epoch >= 0 for s in freeze.stages), "freeze.stages",
               [asdict(s) for s in freeze.stages], "stage epochs are whole numbers from 0")
        return
    _check(freeze.k is None or freeze.k >= 0, "freeze.k", freeze.k, "use 0 or more groups")
    _check(freeze.every >= 1, "freeze.every", freeze.every, "use 1 or more epochs")
    _check(freeze.head_epochs >= 1, "freeze.head_epochs", freeze.head_epochs, "use 1 or more epochs")
    _check(freeze.lr_spread is None or 1 <= freeze.lr_spread <= 1e6, "freeze.lr_spread", freeze.lr_spread,
           "use 1 (one learning rate) up to e.g. 100")


def resolve_freeze_plan(freeze: FreezeConfig, n_groups: int) -> FreezePlan:
    """The freeze setting made into a plan for this model.

    Args:
        freeze: the run config's `freeze` (a strategy with its options, or a plan with `stages`).
        n_groups: the model's number of layer groups.

    Returns:
        The plan.

    Raises:
        FreezePlanError: a bad option, or a plan that does not fit the model.
    """
    check_freeze(freeze)
    return freeze.plan(n_groups)
