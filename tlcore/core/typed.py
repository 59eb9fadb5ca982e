"""Plain data in, typed dataclasses out: every value is checked against its field's type before use.

Configs come from files people share and edit by hand, so nothing in them is trusted:
a string where a number belongs, `true` where a count belongs, a setting nobody reads,
a number that is not finite, a string the size of a book or nesting a parser cannot
follow are all refused with one line that names the field and the type it expects.
pydantic does the type checking (strict, as JSON: `"0.01"` is not a number, `true` is
not an integer); unknown settings are named by the project's own `check_fields`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from functools import lru_cache

from pydantic import TypeAdapter, ValidationError

from tlcore.core.schema import type_hints
from tlcore.errors import TransferLabError, check_fields

__all__ = ["typed", "check_plain", "MAX_TEXT", "MAX_DEPTH"]

MAX_TEXT = 4096  # characters in any one string (the longest path Linux accepts)
_UNION_TAGS = ("int", "str", "float", "bool")  # pydantic names the member of a union (int | str) it tried
MAX_DEPTH = 20  # nesting of objects and lists; a run config needs 5

_EXPECTED = {
    "int_type": "a whole number", "int_from_float": "a whole number", "float_type": "a number",
    "string_type": "text", "bool_type": "true or false", "dict_type": "an object", "dataclass_type": "an object",
    "dataclass_exact_type": "an object", "tuple_type": "a list", "list_type": "a list", "missing": "a value",
    "too_short": "more items", "too_long": "fewer items", "none_required": "null", "int_parsing": "a whole number",
    "float_parsing": "a number",
}


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def check_plain(value: object, where: str, error: type[TransferLabError] = TransferLabError, depth: int = 0) -> None:
    """Refuse what no config needs and what would hurt later: deep nesting, huge strings, NaN and infinity.

    Args:
        value: the JSON-like value.
        where: its place, for messages.
        error: the error type raised.
        depth: how deep `value` already is.

    Raises:
        TransferLabError: (or `error`) naming the place and what is wrong.
    """
    if depth > MAX_DEPTH:
        raise error(f"{where} is nested more than {MAX_DEPTH} levels deep", "a run config needs a handful of levels")
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise error(f"{where} is {len(value):,} characters long", f"use at most {MAX_TEXT:,}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # an unpaired surrogate ("\ud800"): JSON may carry it, no file or text can
            raise error(f"{where or 'a value'} is not valid text (it holds an unpaired surrogate)",
                        "write the name in plain Unicode") from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise error(f"{where} is {value}, not a finite number", "use an ordinary number")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or len(key) > 100:
                raise error(f"{where} has a setting name that is not short text: {str(key)[:40]!r}",
                            "see the example config in the README")
            check_plain(item, f"{where}.{key}" if where else key, error, depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]", error, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        shown = f"{value:,}" if abs(value) < 10**30 else f"a number of about {int(value.bit_length() * 0.30103) + 1:,} digits"
        raise error(f"{where} is {shown}, far too large", "use an ordinary number")


def _dataclass_of(hint) -> type | None:
    """The dataclass a field holds (directly or as `X | None`), for naming unknown nested settings."""
    if dataclasses.is_dataclass(hint):
        return hint
    candidates = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
    return candidates[0] if len(candidates) == 1 and typing.get_origin(hint) in (typing.Union, type(int | None)) else None


def _check_names(cls: type, data: object, where: str, error: type[TransferLabError]) -> None:
    check_fields(data, {f.name for f in dataclasses.fields(cls)}, where, error)
    hints = type_hints(cls)
    for f in dataclasses.fields(cls):
        inner = _dataclass_of(hints[f.name])
        if inner is not None and isinstance(data.get(f.name), dict):
            _check_names(inner, data[f.name], f"'{_path(where, f.name)}'", error)


def _path(where: str, name: str) -> str:
    base = where.strip("'")
    return name if base.startswith("the ") else f"{base}.{name}"


@lru_cache(maxsize=None)
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


T = typing.TypeVar("T")


def typed(cls: type[T], data: object, where: str, error: type[TransferLabError] = TransferLabError) -> T:
    """`data` (JSON-like) as an instance of the dataclass `cls`, or one line naming the first bad field.

    `where` names the part for messages: "the run config" for the whole, "'optimizer'" for a part
    (its fields then read as optimizer.lr). The dataclass's own `__post_init__` checks (ranges,
    choices) run after the types are right.

    Args:
        cls: the dataclass.
        data: the value.
        where: see above.
        error: the error type raised.

    Returns:
        The instance.

    Raises:
        TransferLabError: (or `error`) one line naming the first bad field.
    """
    check_plain(data, "" if where.startswith("the ") else where.strip("'"), error)
    _check_names(cls, data, where, error)
    try:
        return _adapter(cls).validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        parts = [p for p in first["loc"] if p not in ("__root__", *_UNION_TAGS)]
        if first["type"] == "missing" and parts and isinstance(parts[-1], int):  # a list one item short
            first = {**first, "type": "too_short", "msg": "more items"}
            parts = parts[:-1]
        loc = ".".join(str(p) for p in parts)
        name = loc if where.startswith("the ") else _path(where, loc) if loc else where.strip("'")
        expected = _EXPECTED.get(first["type"], first["msg"].removeprefix("Input should be ").lower())
        if first["type"] == "missing":
            raise error(f"{name} is missing", "add it (see the example config in the README)") from None
        value = first.get("input")
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise error(f"invalid {name}: {shown} is {_kind(value)}, expected {expected}",
                    "fix that value (see the example config in the README)") from None
