"""Each run setting declared once: a config field whose metadata says how people see it.

A field of the run config (`RunConfig` and the dataclasses inside it) is made with `setting(...)`, which is
`dataclasses.field` plus a `Meta`: its label and help, its options or bounds, its unit, whether a comparison can
vary it (and which values it suggests), whether it changes the cost of a training step, and which modalities and
freeze strategies read it. Everything else is derived from it: the app's experiment settings
(`pages.experiment.SETTINGS`), the comparison axes (`tlcore.experiments.grid.AXES`), the time estimate's key
(`tlcore.experiments.timing`) and the app's widgets (`pages.common.setting_widget`). `leaves(RunConfig)` walks the config
into its settings, one per leaf field, by dotted path (`optimizer.lr`).

Plain data only (no torch), like the config itself.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import MISSING, dataclass
from functools import lru_cache

__all__ = ["Meta", "type_hints", "Leaf", "setting", "leaves", "leaf", "value_kinds", "META_KEY", "counted",
           "recommended_values", "value_at", "put_value"]

META_KEY = "setting"
MODALITIES = ("images", "texts")


@dataclass(frozen=True)
class Meta:
    """How one run setting is shown, checked, compared and costed.

    Attributes:
        label: its name for people ("Learning rate (head)").
        help: one or two sentences: what it does and when to change it.
        options: the values it takes, where it is a closed choice (None: a number, text or switch).
        suggestions: values a picker offers where any value of the type is allowed (model names, batch sizes).
        low, high: a number's bounds (None: unbounded on that side).
        unit: what the number counts ("epochs", "groups").
        axis: the short name a comparison gives it in a cell's label ("" for none); None: not a comparison axis.
        try_values: the values a new comparison of it suggests, as the app's text field or list shows them.
        cost: whether a different value changes how long a training step takes (False: the time estimate of one
            value holds for every value).
        modalities: the kinds of data that read it.
        strategies: the freeze strategies that read it (None: every strategy).
        group: where the app shows it ("data", "model", "train", "freeze", "adapt", "runtime", "augment").
        unset: what an empty value (None) means, in words for labels ("half", "its default").
        recommended: the field's own value for other situations, as (modality, whether the backbone trains, value,
            why): a pretrained text encoder fine-tuned whole wants a far smaller learning rate than a picture head.
    """

    label: str
    help: str = ""
    options: tuple | None = None
    suggestions: tuple | None = None
    low: float | None = None
    high: float | None = None
    unit: str = ""
    axis: str | None = None
    try_values: object = None
    cost: bool = True
    modalities: tuple[str, ...] = MODALITIES
    strategies: tuple[str, ...] | None = None
    group: str = "train"
    unset: str = "none"
    recommended: tuple[tuple[str, bool, object, str], ...] = ()


def setting(default: object = MISSING, *, default_factory: object = MISSING, **meta: object) -> dataclasses.Field:
    """A config field with its metadata: `lr: float = setting(3e-3, label="Learning rate", low=1e-7, high=10)`.

    Args:
        default: the field's default (a beginner's value).
        default_factory: for mutable defaults, as in `dataclasses.field`.
        **meta: the `Meta` attributes.

    Returns:
        The dataclass field.
    """
    kwargs = {"metadata": {META_KEY: Meta(**meta)}}
    if default_factory is not MISSING:
        kwargs["default_factory"] = default_factory
    else:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


@dataclass(frozen=True)
class Leaf:
    """One setting of the run config: a leaf field reached by a dotted path.

    Attributes:
        path: e.g. "optimizer.lr".
        default: the field's default as plain JSON data (tuples as lists).
        kinds: the JSON types a value may have (int, float, str, bool, list, NoneType).
        meta: the field's metadata (a bare `Meta` with the path as label where the field has none).
    """

    path: str
    default: object
    kinds: tuple[type, ...]
    meta: Meta

    def used_by(self, strategy: str | None) -> bool:
        """Whether a run with this freeze strategy reads the setting.

        Args:
            strategy: the run's `freeze.strategy`.

        Returns:
            True where the setting is read by every strategy or names this one.
        """
        return self.meta.strategies is None or strategy in self.meta.strategies


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def value_kinds(annotation: object) -> tuple[type, ...]:
    """The JSON types a field of this type annotation holds (a float field also takes ints).

    Args:
        annotation: a resolved type annotation (`int | None`, `tuple[str, ...]`).

    Returns:
        The Python types of its JSON values.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds: tuple[type, ...] = ()
        for member in typing.get_args(annotation):
            kinds += tuple(k for k in value_kinds(member) if k not in kinds)
        return kinds
    if annotation is type(None) or annotation is None:
        return (type(None),)
    if origin in (tuple, list) or annotation in (tuple, list):
        return (list,)
    if origin is dict or annotation is dict or dataclasses.is_dataclass(annotation):
        return (dict,)
    if annotation in (int, float, str, bool):
        return (annotation,)
    return (object,)


def _is_section(annotation: object) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


@lru_cache(maxsize=None)
def type_hints(cls: type) -> dict[str, object]:
    """A config dataclass's field types, its annotations resolved in the module that defined it.

    `typing.get_type_hints` looks the names up in `sys.modules`; a server that reloads changed source files drops
    the module from there while the pages still hold its classes, and every config then failed to read with
    "NameError: name 'DataConfig' is not defined" (seen in a browser walk while the source was edited). The names
    are looked up in the globals the class was made with instead, and the answer is kept.

    Args:
        cls: a dataclass.

    Returns:
        Its fields' types, by name.
    """
    init = getattr(cls, "__init__", None)
    namespace = getattr(init, "__globals__", None)
    if not isinstance(namespace, dict) or namespace.get(cls.__name__) is not cls:  # not made where it was defined
        module = sys.modules.get(cls.__module__)
        namespace = vars(module) if module is not None else None
    return typing.get_type_hints(cls, globalns=namespace)


@lru_cache(maxsize=None)
def leaves(cls: type) -> tuple[Leaf, ...]:
    """Every setting of a config dataclass, depth first in field order, nested dataclasses walked into.

    A field whose type is a dataclass and whose metadata says nothing is a section (walked into); a field with
    metadata is one setting even when its value is structured (the augmentation, a freeze plan's stages).

    Args:
        cls: the config dataclass, e.g. `RunConfig`.

    Returns:
        The leaves, by dotted path.
    """
    hints = type_hints(cls)
    found: list[Leaf] = []
    for f in dataclasses.fields(cls):  # every config field has a default
        annotation = hints[f.name]
        meta = f.metadata.get(META_KEY)
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if meta is None and _is_section(annotation):
            plain = _plain(default)
            found.extend(Leaf(f"{f.name}.{inner.path}", _at(plain, inner.path), inner.kinds, inner.meta)
                         for inner in leaves(annotation))
            continue
        found.append(Leaf(f.name, _plain(default), value_kinds(annotation), meta or Meta(label=f.name)))
    return tuple(found)


def _at(plain: object, path: str) -> object:
    for key in path.split("."):
        plain = plain.get(key) if isinstance(plain, dict) else None
    return plain


def leaf(cls: type, path: str) -> Leaf:
    """One setting of a config dataclass by its dotted path.

    Args:
        cls: the config dataclass.
        path: e.g. "optimizer.lr".

    Returns:
        The leaf.

    Raises:
        KeyError: no setting has this path.
    """
    for found in leaves(cls):
        if found.path == path:
            return found
    raise KeyError(path)


def counted(n: int, word: str, plural: str | None = None) -> str:
    """A count with its noun in the right number: "1 epoch", "3 epochs" (never "1 epochs" or "epoch(s)").

    Args:
        n: the count.
        word: the noun for one.
        plural: the noun for several, where it is not `word` + "s".

    Returns:
        The words.
    """
    return f"{n} {word if n == 1 else plural or word + 's'}"


def recommended_values(cls: type, values: dict[str, object], modality: str, trains_backbone: bool,
                       applied: dict[str, object] | None = None) -> dict[str, tuple[object, str]]:
    """The settings that should follow the situation: each field whose value the project chose (its default, or
    the value this function gave it before, `applied`) and whose value for this modality and strategy is another.
    A value the user typed is never in the answer.

    Args:
        cls: the config dataclass (`RunConfig`).
        values: the current value of each setting, by dotted path.
        modality: "images" or "texts".
        trains_backbone: whether more than the new head trains.
        applied: values given by an earlier call, by path (the app keeps them), so they can follow back.

    Returns:
        dotted path -> (the value for this situation, why, in words; "" for going back to the field's default).
    """
    applied = applied or {}
    changes: dict[str, tuple[object, str]] = {}
    for found in leaves(cls):
        meta = found.meta
        if not meta.recommended or found.path not in values:
            continue
        wanted, why = found.default, ""
        for for_modality, for_backbone, value, reason in meta.recommended:
            if for_modality == modality and for_backbone == trains_backbone:
                wanted, why = value, reason
        current = values[found.path]
        ours = current == found.default or (found.path in applied and current == applied[found.path])
        if ours and current != wanted:
            changes[found.path] = (wanted, why)
    return changes


def value_at(config: dict, path: str) -> object:
    """The value at a dotted path of plain config data (`optimizer.lr`); None where the path leads nowhere."""
    node: object = config
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def put_value(config: dict, path: str, value) -> None:
    """Set the value at a dotted path of plain config data in place, making the objects on the way."""
    *parents, leaf = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
