"""Issue 28's defects on configs, `--vary`, output paths and class names: each is one line of our own error (or a
sensible result), never the "unexpected" catch-all. Each test failed before its fix."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

from tlcore.cli import main
from tlcore.config import ConfigError, RunConfig, read_json_file
from tlcore.errors import TransferLabError
from tlcore.experiments.grid import parse_axis


def _one_line_error(argv: list[str], capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unexpected" not in lines[0], err
    return lines[0]


def test_a_config_number_of_5001_digits_is_refused_by_name(tmp_path: Path) -> None:  # 1
    path = tmp_path / "c.json"
    path.write_text('{"epochs": ' + "9" * 5001 + "}")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_json_file(path, "config", ConfigError)


def test_an_unpaired_surrogate_is_refused_naming_the_field() -> None:  # 2
    with pytest.raises(ConfigError, match=r"model\.name.*not valid text"):
        RunConfig.from_dict({"model": {"name": "\ud800"}})


def test_input_size_has_an_upper_bound() -> None:  # 3
    with pytest.raises(ConfigError, match="input_size"):
        RunConfig.from_dict({"input_size": [3, 100000, 100000]})
    assert RunConfig.from_dict({"input_size": [3, 4096, 4096]}).input_size == (3, 4096, 4096)


@pytest.mark.parametrize("text", ["optimizer.lr=" + "[" * 50_000, "optimizer.lr=" + "9" * 5001,
                                  "optimizer.lr=,", "optimizer.lr= , ,"])
def test_vary_values_that_do_not_parse_or_are_missing_are_one_line(text: str) -> None:  # 5, 6
    with pytest.raises(TransferLabError) as caught:
        parse_axis(text)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_vary_with_no_values_queues_nothing(tmp_path: Path, tl_home: Path, capsys) -> None:  # 6
    from tlcore.runs import RunStore

    config = tmp_path / "c.json"
    config.write_text(RunConfig().to_json())
    line = _one_line_error(["compare", str(config), "--vary", "optimizer.lr=,", "--background"], capsys)
    assert "optimizer.lr" in line
    assert RunStore().list() == []


def test_a_class_folder_whose_name_is_not_utf8_is_one_line_at_the_scan(tmp_path: Path) -> None:  # 11
    """Once a crash in the split; then the split worked, training ran, and the run failed at its end writing
    predictions.csv ("unexpected error: UnicodeEncodeError", issue 37). Now the scan says so, before any work."""
    from conftest import make_class_folders, tlcore_in_process
    from tlcore.data import scan
    from tlcore.errors import DatasetError

    root = make_class_folders(tmp_path / "data", {"ok": 10, "bad": 10})
    odd = os.fsdecode(b"caf\xe9")  # Latin-1 bytes: not UTF-8; Python names it with a surrogate escape
    (root / "bad").rename(root / odd)
    with pytest.raises(DatasetError, match=r"the class folder name 'caf\\xe9' .* is not valid UTF-8 text"):
        scan(root)
    texts = tmp_path / "texts"  # a folder of texts: the same one line (before: each of its 10 files was "not
    for label in ("ok", "bad"):  # valid UTF-8 (save the file as UTF-8)", though the files were plain ASCII)
        (texts / label).mkdir(parents=True)
        for i in range(5):
            (texts / label / f"t{i}.txt").write_text(f"a plain text {i} of {label}")
    (texts / "bad").rename(texts / odd)
    with pytest.raises(DatasetError, match=r"the class folder name 'caf\\xe9' .* is not valid UTF-8 text"):
        scan(texts)
    result = tlcore_in_process("data", "scan", str(texts))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "caf\\xe9" in result.stderr
    # the seed of a UTF-8 class name is what it was before: its splits do not move
    assert random.Random("0/ok").random() == random.Random("0/ok".encode()).random()


def test_an_image_format_nobody_can_write_is_refused_before_the_work(tmp_path: Path, capsys) -> None:  # 13, 15
    from conftest import make_class_folders

    root = make_class_folders(tmp_path / "data", {"a": 2, "b": 2})
    picture = next(root.rglob("*.jpg"))
    line = _one_line_error(["augment", "preview", str(picture), "--out", str(tmp_path / "g.xyz")], capsys)
    assert "g.xyz" in line and ".png" in line
    assert not (tmp_path / "g.xyz").exists()


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_a_ray_address_where_nothing_listens_is_one_line_within_seconds(address: str, tl_home: Path) -> None:  # 10
    """`train --ray 127.0.0.1:1` printed Ray's own log lines for 10 minutes while the run stayed queued."""
    import time

    from conftest import ray_or_skip

    ray = ray_or_skip()
    from tlcore.running.on_ray import connect

    started = time.monotonic()
    with pytest.raises(TransferLabError, match=r"cannot connect to Ray at .*127\.0\.0\.1:1 does not answer"):
        connect(address)
    assert time.monotonic() - started < 30
    assert not ray.is_initialized()



def test_a_run_sent_to_a_ray_address_where_nothing_listens_fails_with_the_reason(tmp_path: Path, tl_home: Path,
                                                                                capsys) -> None:  # 10
    from conftest import ray_or_skip
    from tlcore.runs import FAILED, RunStore
    from train_fixtures import make_colour_classes, tiny_config

    ray_or_skip()
    config = tmp_path / "c.json"
    config.write_text(tiny_config(make_colour_classes(tmp_path / "colours"), epochs=1).to_json())
    assert main(["train", str(config), "--ray", "127.0.0.1:1"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("run ") and "127.0.0.1:1 does not answer" in err and "unexpected" not in err
    (run,) = RunStore().list()
    assert run.status == FAILED and "does not answer" in run.error  # not queued for ever



def test_a_freeze_plan_of_stages_alone_is_a_plan() -> None:
    """The README describes a plan given as `stages`; without a `strategy` name it was refused."""
    from tlcore.config import resolve_freeze_plan

    config = RunConfig.from_dict({"freeze": {"stages": [{"epoch": 0, "trainable_from": -1},
                                                        {"epoch": 2, "trainable_from": 0}]}})
    plan = resolve_freeze_plan(config.freeze, 5)
    assert (plan.strategy, plan.trainable_from(0, 5), plan.trainable_from(2, 5)) == ("custom", 4, 0)


if sys.platform == "win32":  # pragma: no cover - os.fsdecode of Latin-1 bytes differs there
    pytest.skip("non-UTF-8 file names are a POSIX case", allow_module_level=True)
