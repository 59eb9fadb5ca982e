"""A run's name in lists and menus: its data set, model, freeze strategy, adaptation, and what differs.

Two runs that differ only in their adaptation method, learning rate or seed must not read alike in the
app's lists; the settings compared are the grid's (`tlcore.experiments.grid.AXES`) plus the split and the seed.
"""

from __future__ import annotations

from pathlib import Path

from tlcore.config import RunConfig
from tlcore.experiments.grid import AXES, value_at
from tlcore.core.schema import leaves

__all__ = ["run_label", "differing_settings", "strategy_words"]

_ALSO = {"data.split_seed": "split seed", "seed": "seed", "data.source": "data"}
_LEAVES = {leaf.path: leaf for leaf in leaves(RunConfig)}


def _shown(value: object, path: str) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return _LEAVES[path].meta.unset if value is None and path in _LEAVES else str(value)


def strategy_words(freeze: dict) -> str:
    """A freeze setting (plain data) as people say it: "feature extraction", "freeze first 5", "freeze first half".

    Args:
        freeze: the run config's `freeze`.

    Returns:
        The words.
    """
    strategy = freeze.get("strategy")
    if freeze.get("stages") or not strategy or strategy == "custom":
        return "custom plan"
    if strategy == "freeze_first_k":
        return f"freeze first {'half' if freeze.get('k') is None else freeze['k']}"
    return str(strategy).replace("_", " ")


def differing_settings(config: dict, reference: dict) -> list[str]:
    """The settings of `config` (plain run config data) whose values differ from `reference`'s, as
    "lr 0.001" or "adapt adabn" (strategy, model and data are named by `run_label` itself).

    Args:
        config: the run's config as plain data.
        reference: another config as plain data, e.g. the experiment the user is looking from.

    Returns: one short "name value" text per differing setting, in the grid's order.
    """
    parts = []
    strategy = value_at(config, "freeze.strategy")
    for path in (*AXES, *_ALSO):
        if path in ("freeze.strategy", "freeze.k", "model.name", "adapt.method", "data.source"):
            continue  # named by run_label itself (k with the strategy: "freeze first 5")
        if path in _LEAVES and not _LEAVES[path].used_by(strategy):
            continue  # a setting this run's strategy does not read
        value = value_at(config, path)
        if value != value_at(reference, path):
            parts.append(f"{AXES[path][1] if path in AXES and AXES[path][1] else _ALSO.get(path, path)} "
                         f"{_shown(value, path)}")
    return parts


def run_label(config: dict, reference: dict | None = None) -> str:
    """A run's label: `photo · tf_efficientnet_lite0 · feature extraction · adapt adabn · lr 0.001`.

    Args:
        config: the run's config as plain data.
        reference: when given, the settings that differ from it are added.

    Returns: the label, at most about 120 characters.
    """
    freeze = config.get("freeze") or {}
    method = value_at(config, "adapt.method")
    parts = [Path(str(value_at(config, "data.source") or "?")).name or "?", str(value_at(config, "model.name") or "?"),
             strategy_words(freeze)]
    if method and method != "none":
        parts.append(f"adapt {method}")
    if reference is not None:
        parts += differing_settings(config, reference)
    label = " · ".join(parts)
    return label if len(label) <= 120 else label[:117] + "..."
