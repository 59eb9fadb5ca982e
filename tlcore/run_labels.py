"""A run's name in lists and menus: its data set, model, freeze strategy, adaptation, and what differs.

Two runs that differ only in their adaptation method, learning rate or seed must not read alike in the
app's lists; the settings compared are the grid's (`tlcore.grid.AXES`) plus the split and the seed.
"""

from __future__ import annotations

from pathlib import Path

from tlcore.grid import AXES, value_at

__all__ = ["run_label", "differing_settings"]

_ALSO = {"data.split_seed": "split seed", "seed": "seed", "data.source": "data"}


def _shown(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def differing_settings(config: dict, reference: dict) -> list[str]:
    """The settings of `config` (plain run config data) whose values differ from `reference`'s, as
    "lr 0.001" or "adapt adabn" (strategy, model and data are named by `run_label` itself).

    Args:
        config: the run's config as plain data.
        reference: another config as plain data, e.g. the experiment the user is looking from.

    Returns: one short "name value" text per differing setting, in the grid's order.
    """
    parts = []
    for path in (*AXES, *_ALSO):
        if path in ("freeze.strategy", "model.name", "adapt.method", "data.source"):
            continue
        value = value_at(config, path)
        if value != value_at(reference, path):
            parts.append(f"{AXES[path][1] if path in AXES and AXES[path][1] else _ALSO.get(path, path)} "
                         f"{_shown(value)}")
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
             str(freeze.get("strategy") or "custom plan").replace("_", " ")]
    if method and method != "none":
        parts.append(f"adapt {method}")
    if reference is not None:
        parts += differing_settings(config, reference)
    label = " · ".join(parts)
    return label if len(label) <= 120 else label[:117] + "..."
