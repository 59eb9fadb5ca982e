"""The run config is typed: every bad value is refused up front with one line naming the field (issue 13, items 3, 16)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tlcore.cli import main
from tlcore.config import ConfigError, RunConfig, resolve_freeze_plan
from tlcore.errors import TransferLabError


def config_with(**parts) -> dict:
    data = RunConfig().to_dict()
    for key, value in parts.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return data


@pytest.mark.parametrize("parts, message", [
    ({"optimizer": {"lr": "0.01"}}, "invalid optimizer.lr: '0.01' is text, expected a number"),
    ({"freeze": {"strategy": "gradual", "every": "2"}}, "invalid freeze.every: '2' is text, expected a whole number"),
    ({"data": {"split_seed": "/../../../../elsewhere/x"}}, "invalid data.split_seed: '/../../../../elsewhere/x' is text"),
    ({"epochs": True}, "invalid epochs: True is true/false, expected a whole number"),
    ({"batch_size": 3.5}, "invalid batch_size: 3.5 is a number, expected a whole number"),
    ({"model": {"head": {"dropout": "high"}}}, "invalid model.head.dropout: 'high' is text, expected a number"),
    ({"model": {"head": {"size": 3}}}, "unknown setting(s) in 'model.head': size"),
    ({"input_size": [3, 64]}, "invalid input_size"),
    ({"data": {"split_seed": -1}}, "invalid data.split_seed: -1"),
    ({"name": "x" * 5000}, "name is 5,000 characters long"),
    ({"optimizer": {"lr": float("nan")}}, "optimizer.lr is nan, not a finite number"),
    ({"freeze": {"strategy": "gradual", "every": 0}}, "invalid freeze.every: 0"),
    ({"freeze": {"stages": [{"epoch": "0", "trainable_from": -1}], "strategy": "custom"}},
     "invalid freeze.stages.0.epoch: '0' is text"),
    ({"data": "sample_data"}, "invalid data: 'sample_data' is text, expected an object"),
])
def test_bad_values_name_the_field_and_the_expected_type(parts: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(config_with(**parts))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_split_seed_path_writes_nothing_outside_the_data_folder(tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps(config_with(data={"split_seed": "/../../../../" + str(tmp_path / "elsewhere")})))
    assert main(["train", str(config)]) == 1
    assert not (tmp_path / "elsewhere").exists() and not list((tmp_path).glob("elsewhere*"))


def test_numbers_stay_numbers_and_a_valid_config_round_trips() -> None:
    config = RunConfig.from_dict(config_with(optimizer={"lr": 1}, freeze={"strategy": "gradual", "every": 2}))
    assert config.optimizer.lr == 1.0 and isinstance(config.optimizer.lr, float)
    assert RunConfig.from_dict(json.loads(config.to_json())) == config


def _leaves(data: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for key, value in data.items():
        if isinstance(value, dict) and value and key not in ("augment",):
            out += _leaves(value, prefix + (key,))
        else:
            out.append(prefix + (key,))
    return out


def _random_json(rng: random.Random, depth: int = 0):
    choices = [None, True, False, 0, -1, 1, 2**40, -(2**63), 1e308, 0.5, -0.0, "", "0.01", "../" * 50, "x" * 5000,
               "\x00\udcff", "cosine", "full", "auto", [], {}, [1, 2, 3], [3, 64, 64], {"a": 1}]
    value = rng.choice(choices)
    if depth < 3 and rng.random() < 0.15:
        value = [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3 and rng.random() < 0.1:
        value = {rng.choice(["strategy", "every", "name", "lr", "x"]): _random_json(rng, depth + 1)}
    return value


FIELDS = _leaves(config_with(freeze={"strategy": "gradual", "k": 1, "every": 1, "head_epochs": 1, "lr_spread": 1.0,
                                     "train_bn": False})) + [("augment",), ("augment", "preset"),
                                                             ("augment", "transforms"), ("model", "head", "hidden")]


@pytest.mark.parametrize("seed", range(6))
def test_fuzz_random_json_in_every_field_gives_only_one_line_errors(seed: int) -> None:
    rng = random.Random(seed)
    accepted = 0
    for path in FIELDS:
        for _ in range(12):
            data = config_with(freeze={"strategy": "gradual"})
            node = data
            for key in path[:-1]:
                node = node.setdefault(key, {}) if isinstance(node.get(key), dict) else node.setdefault(key, {})
                if not isinstance(node, dict):
                    break
            else:
                node[path[-1]] = _random_json(rng)
            try:
                config = RunConfig.from_dict(data)
                resolve_freeze_plan(config.freeze, 6)
                json.dumps(config.to_dict())
                accepted += 1
            except TransferLabError as exc:
                assert "\n" not in str(exc) and len(str(exc)) < 600, str(exc)
    assert accepted > 0  # the fuzz also hits valid values, so it is not only testing one refusal


@pytest.mark.parametrize("content, message", [
    (os.urandom(2000) + b"\xff\xfe", "is not a text file"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"epochs": 1, "name": "' + b"a" * 1_100_000 + b'"}', "too large for a config"),
    (b'{"epochs": 1, "name": "' + b"a" * 10_000 + b'"}', "name is 10,000 characters long"),
    (b"[1, 2]", "the run config must be an object"),
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested"),
    (b'{"name":' * 30 + b'"x"' + b"}" * 30, "nested more than 20 levels deep"),
    (b'{"epochs": 1' + b"0" * 4000 + b"}", "epochs is a number of about 4,001 digits, far too large"),
    (b'{"epochs": 9' + b"0" * 20 + b"}", "epochs is 900,000,000,000,000,000,000, far too large"),
])
def test_files_that_are_not_configs_are_one_line_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as raised:
        RunConfig.load(path)
    assert len(str(raised.value)) < 300  # a number of 4,001 digits was printed whole: one line of 4,057 characters


def test_a_folder_or_a_missing_file_as_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a config file but a folder"):
        RunConfig.load(tmp_path)
    with pytest.raises(ConfigError, match="no such config file"):
        RunConfig.load(tmp_path / "nope.json")


@pytest.mark.parametrize("seed", range(20))
def test_fuzz_random_bytes_as_a_config_file(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "run.json"
    good = json.dumps(RunConfig().to_dict()).encode()
    data = bytearray(good) if seed % 2 else bytearray(rng.randbytes(rng.randint(0, 3000)))
    for _ in range(rng.randint(1, 8)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    path.write_bytes(bytes(data))
    try:
        RunConfig.load(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)
