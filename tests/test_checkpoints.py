"""Checkpoints are written as units and resume only from a consistent one (issue 13, items 2 and 17)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tlcore.results.artifacts import BEST, LAST, STATE, CheckpointError, load_weights, weights_epoch
from tlcore.core.files import atomic_write, clean_partial_writes
from tlcore.training.train import Cancelled, prepare, train
from train_fixtures import make_colour_classes, tiny_config


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_colour_classes(tmp_path_factory.mktemp("data") / "colours")


@pytest.fixture(scope="module")
def whole(colours: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """An uninterrupted 3-epoch run, with a copy of its checkpoint after epoch 1 and after epoch 2."""
    config = tiny_config(colours, epochs=3, augment={"preset": "light"})
    folder = tmp_path_factory.mktemp("whole")
    copies = folder / "copies"

    def keep(event) -> None:
        if event.kind == "epoch":
            shutil.copytree(folder / "run", copies / str(event.data["epoch"]), ignore=shutil.ignore_patterns(".*"))

    train(config, folder / "run", sink=keep)
    return config, folder / "run", copies


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def resume_from(copy: Path, tmp_path: Path, config, damage) -> tuple[Path, list]:
    run = tmp_path / "run"
    shutil.copytree(copy, run)
    damage(run)
    events = []
    train(config, run, resume=True, sink=events.append)
    return run, events


def test_weights_one_epoch_ahead_of_the_state_still_resume_exactly(whole, tmp_path: Path) -> None:
    # What a kill between the two writes used to leave: last.safetensors of epoch 2, state of epoch 1.
    config, reference, copies = whole

    def newer_weights(run: Path) -> None:
        shutil.copy(copies / "1" / LAST, run / LAST)

    run, events = resume_from(copies / "0", tmp_path, config, newer_weights)
    assert any(e.message.startswith("resumed after epoch 1") for e in events)
    assert same_weights(run / LAST, reference / LAST)
    assert same_weights(run / BEST, reference / BEST)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "from_another_model"])
def test_a_damaged_state_restarts_cleanly_with_a_message(whole, tmp_path: Path, damage: str, colours: Path) -> None:
    config, reference, copies = whole

    def spoil(run: Path) -> None:
        data = (run / STATE).read_bytes()
        if damage == "truncated":
            (run / STATE).write_bytes(data[: len(data) // 2])
        elif damage == "garbage":
            (run / STATE).write_bytes(os.urandom(len(data)))
        else:
            other = tiny_config(colours, epochs=1, model={"name": "test_resnet", "weights": "random"})
            train(other, run.parent / "other")
            shutil.copy(run.parent / "other" / STATE, run / STATE)

    run, events = resume_from(copies / "1", tmp_path, config, spoil)
    warnings = [e.message for e in events if e.kind == "warning"]
    assert any("cannot resume" in w and "starts again from epoch 1" in w for w in warnings), warnings
    assert same_weights(run / LAST, reference / LAST)  # same seed: the restart ends where the whole run ended


def test_a_damaged_best_checkpoint_is_said_and_rechosen(whole, tmp_path: Path) -> None:
    config, _, copies = whole
    run, events = resume_from(copies / "0", tmp_path, config, lambda r: (r / BEST).write_bytes(b"\0" * 100))
    assert any("best.safetensors is missing or damaged" in e.message for e in events)
    assert weights_epoch(run / BEST) in (1, 2)


def test_a_damaged_best_checkpoint_is_one_line_on_evaluate_and_predict(whole, tmp_path: Path) -> None:
    from tlcore.results.evaluate import evaluate_run
    from tlcore.results.predict import Predictor

    _, reference, _ = whole
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / BEST).write_bytes((run / BEST).read_bytes()[:200])
    for call in (lambda: evaluate_run(run), lambda: Predictor.from_run(run)):
        with pytest.raises(CheckpointError, match="best.safetensors is damaged"):
            call()


def test_weights_are_stamped_with_their_epoch(whole) -> None:
    _, reference, copies = whole
    assert weights_epoch(reference / LAST) == 2 and weights_epoch(copies / "0" / LAST) == 0
    state = torch.load(reference / STATE, weights_only=True)
    assert state["epoch"] == 2 and set(state["model"]) == set(load_file(str(reference / LAST)))


def test_an_interrupted_write_leaves_the_old_file_and_the_leftover_is_cleaned(tmp_path: Path) -> None:
    target = tmp_path / "best.safetensors"
    target.write_bytes(b"old")

    def dies_half_way(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, dies_half_way)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["best.safetensors"]
    (tmp_path / f".last_state.pt.tmp-{12345}").write_bytes(b"x" * 1000)  # what SIGKILL leaves (no finally runs)
    assert [p.name for p in clean_partial_writes(tmp_path)] == [".last_state.pt.tmp-12345"]
    assert [p.name for p in tmp_path.iterdir()] == ["best.safetensors"]


def test_training_removes_leftovers_of_a_killed_write(colours: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / ".last.safetensors.tmp-999").write_bytes(b"\0" * 4096)
    events = []
    with pytest.raises(Cancelled):
        train(tiny_config(colours, epochs=2), run, sink=events.append, should_stop=lambda: True)
    assert not list(run.glob(".*tmp*"))
    assert any("removed .last.safetensors.tmp-999" in e.message for e in events)


def test_load_weights_refuses_another_model(whole, colours: Path) -> None:
    _, reference, _ = whole
    other = prepare(tiny_config(colours, model={"name": "test_resnet", "weights": "random"})).model
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_weights(other, reference / BEST)


def test_a_truncated_feature_cache_is_dropped_and_recomputed(colours: Path, tmp_path: Path, tl_home: Path) -> None:
    config = tiny_config(colours, freeze={"strategy": "feature_extraction"}, epochs=2)
    train(config, tmp_path / "first")
    caches = sorted((tl_home / "feature_cache").glob("*.safetensors"))
    assert caches
    for cache in caches:  # what a kill or a full disk during the write used to leave, for good
        cache.write_bytes(cache.read_bytes()[:50])
    events = []
    train(config, tmp_path / "second", sink=events.append)
    warnings = [e.message for e in events if e.kind == "warning"]
    assert any("was damaged" in w and "computed again" in w for w in warnings), warnings
    assert same_weights(tmp_path / "first" / LAST, tmp_path / "second" / LAST)
    events.clear()
    train(config, tmp_path / "third", sink=events.append)  # and the next run reads the rebuilt cache
    assert any("read from the cache" in e.message for e in events)
