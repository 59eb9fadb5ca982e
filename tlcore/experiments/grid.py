"""An experiment as data: a base run config, a grid over one to three settings, and repeats over seeds.

Each axis names a setting by its dotted path in the run config (`optimizer.lr`, `augment.preset`,
`model.head.dropout`...) and lists the values to try. The grid is every combination of the axes' values,
each repeated with seeds 0..N-1. The seed changes the head's initialisation, the batch order and the
augmentation; the split is the experiment's one manifest file and never moves.

`freeze.strategy` also accepts the names of `STRATEGY_SET` (e.g. `freeze_first_half`), which stand for a
whole freeze setting, so `--vary freeze.strategy=...` reproduces the classic comparison.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

from tlcore.config import ConfigError, RunConfig
from tlcore.errors import TransferLabError
from tlcore.core.schema import leaf as declared, leaves, put_value, value_at
from tlcore.core.strategies import STRATEGY_SET

__all__ = ["Axis", "Cell", "AXES", "STRATEGY_SET", "MAX_RUNS", "parse_axis", "expand", "cell_label", "apply_value",
           "value_at", "put_value", "effect_key", "same_in_effect", "same_in_effect_words"]

# The settings an experiment can vary: dotted path -> (how people call it, short label in a cell's name).
# Derived from the fields that declare an `axis` (tlcore.core.schema); the freeze strategy first.
AXES: dict[str, tuple[str, str]] = {
    leaf.path: (leaf.meta.label, leaf.meta.axis)
    for leaf in sorted(leaves(RunConfig), key=lambda leaf: leaf.path != "freeze.strategy")
    if leaf.meta.axis is not None
}
MAX_RUNS = 200  # a typo like lr=1e-3,...x100 should not queue a week of runs



@dataclass(frozen=True)
class Axis:
    """One varied setting of a comparison grid: its dotted path and the values it takes."""
    path: str  # a key of AXES
    values: tuple  # plain JSON values, in the order given

    def to_dict(self) -> dict:
        """The axis as plain data: its setting's path and values."""
        return {"path": self.path, "values": list(self.values)}


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a value per axis, and the run configs of its seeds."""

    label: str
    values: tuple  # one per axis
    configs: tuple[RunConfig, ...]  # one per seed, seeds 0..N-1


def _value(text: str):
    text = text.strip()
    if text.lower() in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
    except (RecursionError, ValueError):  # 50,000 brackets; more digits than Python reads (4,300)
        raise TransferLabError(f"the value {text[:30]!r}... cannot be read", "give plain numbers or names") from None


def parse_axis(text: str) -> Axis:
    """`optimizer.lr=1e-3,3e-4` -> Axis("optimizer.lr", (0.001, 0.0003)); every mistake said in one line.

    Args:
        text: SETTING=V1,V2,... as `--vary` takes it.

    Returns:
        The axis.

    Raises:
        TransferLabError: an unknown setting, a value of the wrong kind, or a repeated value.
    """
    path, sep, values = text.partition("=")
    path = path.strip()
    if not sep or not values.strip():
        raise TransferLabError(f"--vary {text!r} needs a setting and its values",
                               "e.g. --vary optimizer.lr=1e-3,3e-4 or --vary freeze.strategy=feature_extraction,full")
    if path not in AXES:
        raise TransferLabError(f"cannot vary {path!r}", f"choose one of {', '.join(AXES)}")
    parsed = tuple(_value(v) for v in values.split(",") if v.strip())
    if not parsed:
        raise TransferLabError(f"--vary {path} lists no value", f"e.g. --vary {path}=a,b (comma-separated)")
    if len(set(map(json.dumps, parsed))) != len(parsed):
        raise TransferLabError(f"--vary {path} lists a value twice: {values}", "give each value once")
    return Axis(path, parsed)


def apply_value(config: dict, path: str, value) -> dict:
    """The config (plain data) with one setting changed; strategy names of STRATEGY_SET set the whole freeze.

    Args:
        config: a run config as plain data.
        path: the dotted setting, e.g. "optimizer.lr".
        value: its new value.

    Returns:
        A new dict; `config` is not changed.
    """
    config = json.loads(json.dumps(config))
    if path == "freeze.strategy":
        config["freeze"] = dict(STRATEGY_SET[value][0]) if value in STRATEGY_SET else {"strategy": value}
    elif path == "augment.preset":
        config["augment"] = {"preset": value}
    else:
        put_value(config, path, value)
    return config


def cell_label(axes: list[Axis], values: tuple) -> str:
    """A cell's name in tables, charts and the verdict: `gradual`, `lr 0.001`, `freeze first half · aug heavy`
    (the option of a closed choice in words, as the app's chips show it; a model's name as it is).

    Args:
        axes: the varied settings.
        values: the cell's value of each.

    Returns:
        The label.
    """
    parts = []
    for axis, value in zip(axes, values):
        short = AXES[axis.path][1]
        meta = declared(RunConfig, axis.path).meta
        shown = meta.unset if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
        if meta.options is not None:  # a closed choice reads as the app's chips say it: "freeze first half"
            shown = shown.replace("_", " ")
        parts.append(f"{short} {shown}" if short else shown)
    return " · ".join(parts)


def expand(base: RunConfig, axes: list[Axis], seeds: int = 1) -> list[Cell]:
    """Every combination of the axes' values (the first axis varies slowest), each with seeds 0..seeds-1.

    Raises TransferLabError naming the cell and the setting when a combination is not a valid run config.

    Args:
        base: the shared run config.
        axes: the varied settings.
        seeds: repeats of each cell.

    Returns:
        The cells, each with its configs, one per seed.
    """
    if not axes:
        raise TransferLabError("an experiment needs at least one setting to vary", "e.g. --vary optimizer.lr=1e-3,3e-4")
    if len({a.path for a in axes}) != len(axes):
        raise TransferLabError("the same setting is varied twice", "give each setting one --vary")
    if len(axes) > 3:
        raise TransferLabError(f"{len(axes)} settings varied at once", "vary at most 3 settings (2 read best)")
    if not 1 <= seeds <= 20:
        raise TransferLabError(f"--seeds {seeds} is out of range", "use 1 to 20 seeds (3 is a good start)")
    ordered = sorted(axes, key=lambda a: a.path != "freeze.strategy")  # the strategy first: it resets freeze.*
    total = seeds
    for axis in axes:
        total *= len(axis.values)
    if total > MAX_RUNS:
        raise TransferLabError(f"this experiment is {total} runs", f"keep it to {MAX_RUNS} runs or fewer: fewer values "
                                                                 "or fewer seeds")
    cells = []
    for values in itertools.product(*(a.values for a in axes)):
        by_path = dict(zip((a.path for a in axes), values))
        label = cell_label(axes, values)
        data = base.to_dict()
        for axis in ordered:
            data = apply_value(data, axis.path, by_path[axis.path])
        configs = []
        for seed in range(seeds):
            try:
                configs.append(RunConfig.from_dict({**data, "name": label, "seed": seed}))
            except (ConfigError, TransferLabError) as exc:
                raise type(exc)(f"{label}: {exc.problem}", exc.hint) from None
        cells.append(Cell(label, tuple(values), tuple(configs)))
    return cells


_NOMINAL_GROUPS = 1000  # named strategies train the same groups, counted from the head, whatever the model's count


def effect_key(config: RunConfig) -> str:
    """Equal for two runs that would train exactly alike: every setting the same (the name aside), and freeze
    settings that give the same plan over the run's epochs (gradual with fewer epochs than its first unfreeze is
    feature extraction; freeze_first_k with k = 0 is full; the lr spread does not matter when only the head trains).

    Args:
        config: a run config.

    Returns:
        A JSON text to compare.
    """
    data = config.to_dict()
    data["name"] = ""
    freeze = config.freeze
    if not freeze.custom and not (freeze.strategy == "freeze_first_k" and freeze.k is None):
        try:
            plan = freeze.plan(_NOMINAL_GROUPS)
        except TransferLabError:  # e.g. k past the nominal count: compared as written
            return json.dumps(data, sort_keys=True, default=str)
        trains = [_NOMINAL_GROUPS - plan.trainable_from(e, _NOMINAL_GROUPS) for e in range(config.epochs)]
        head_only = all(groups == 1 for groups in trains)
        data["freeze"] = {"groups_training_per_epoch": trains, "train_bn": freeze.train_bn,
                          "lr_spread": None if head_only else plan.lr_spread}
    return json.dumps(data, sort_keys=True, default=str)


def same_in_effect(cells: list[Cell]) -> dict[str, str]:
    """Cells whose runs would train exactly like an earlier cell's, found before anything runs.

    Args:
        cells: the grid's cells, in order.

    Returns:
        The later cell's label -> the label of the earlier cell it repeats.
    """
    first: dict[str, str] = {}
    repeats = {}
    for cell in cells:
        key = effect_key(cell.configs[0])
        if key in first:
            repeats[cell.label] = first[key]
        else:
            first[key] = cell.label
    return repeats


def same_in_effect_words(repeats: dict[str, str]) -> str:
    """The repeats said in one sentence ("" when there are none).

    Args:
        repeats: from `same_in_effect`.

    Returns:
        e.g. "gradual trains exactly as feature_extraction here (the same layers train in every epoch, with the
        same settings): it is run once, as feature_extraction."
    """
    if not repeats:
        return ""
    pairs = "; ".join(f"{later} trains exactly as {earlier}" for later, earlier in repeats.items())
    return (f"{pairs} here (the same layers train in every epoch, with the same settings): each is run once, under "
            "the first name")
