"""Every field of a run config, fuzzed (issue 28): any JSON value in any field (and any text as the file) is
either a config that round-trips exactly, or one `TransferLabError` line that names the field; never another
exception. The freeze plan and augmentation fields, which are free-form mappings, are fuzzed the same way."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tlcore.config import RunConfig
from tlcore.errors import TransferLabError


def leaf_paths(value, prefix: tuple = ()) -> list[tuple]:
    """Every place in the default config a value sits: dict keys and list indexes, down to the leaves."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += leaf_paths(inner, prefix + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += leaf_paths(inner, prefix + (index,))
    return found


DEFAULT = RunConfig().to_dict()
PATHS = leaf_paths(DEFAULT) + [("freeze", "k"), ("freeze", "stages"), ("freeze", "lr_spread"), ("freeze", "every"),
                               ("freeze", "lr_scales"), ("freeze", "train_bn"), ("model", "head", "nope"), ("nope",)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.sampled_from([0, 1, -1, 2**31, 2**63, 1e308, -0.0, 0.5, "", "auto", "full", "none", "\udc80", "x" * 300]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)


def with_value(path: tuple, value) -> dict:
    data = json.loads(json.dumps(DEFAULT))
    here = data
    for key in path[:-1]:
        if isinstance(here, dict):
            here = here.setdefault(key, {})
        else:
            here = here[key]
    here[path[-1]] = value
    return data


def accepted_or_one_line(data) -> None:
    started = time.monotonic()
    try:
        config = RunConfig.from_dict(data)
    except TransferLabError as exc:
        text = str(exc)
        assert text and "\n" not in text and "unexpected" not in text
        return
    finally:  # the time bound: an Affine scale of 1e308 once made the check run for minutes
        assert time.monotonic() - started < 10
    again = RunConfig.from_dict(json.loads(config.to_json()))
    assert again.to_json() == config.to_json()  # what is accepted is plain data and replays exactly


def test_every_field_is_fuzzed() -> None:
    assert len(PATHS) > 60 and ("optimizer", "lr") in PATHS and ("augment", "transforms", 0, "p") in PATHS


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=json_values)
def test_any_value_in_any_field(path: tuple, value) -> None:
    accepted_or_one_line(with_value(path, value))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: ".".join(map(str, p)))
def test_hostile_values_in_every_field(path: tuple) -> None:
    for value in (None, True, -1, 2**200, 1e308, -1e308, "", "\udc80", "x" * 10_000, [], {},
                  [[[[[]]]]], {"": None}, 0.1 + 0.2, float(2**53 + 1)):
        accepted_or_one_line(with_value(path, value))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200) | json_values.map(json.dumps))
def test_any_file_content_loads_or_says_why(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("config") / "run.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        RunConfig.load(path)
    except TransferLabError as exc:
        assert "\n" not in str(exc)


def test_a_config_file_of_huge_numbers_and_deep_nesting_says_why(tmp_path: Path) -> None:
    for text in ('{"epochs": ' + "9" * 5001 + "}", "[" * 50_000 + "]" * 50_000, '{"seed": 1e999}', "\ufeff{}",
                 '{"epochs": 1, "epochs": 2}'):
        path = tmp_path / "run.json"
        path.write_text(text)
        try:
            RunConfig.load(path)
        except TransferLabError as exc:
            assert "\n" not in str(exc)
