"""The training loop on a tiny model: it learns, respects the freeze plan, resumes exactly, cancels cleanly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tlcore.config import ConfigError, RunConfig
from tlcore.errors import TransferLabError
from tlcore.results.evaluate import evaluate_run, metrics_from_predictions
from tlcore.training.lr_find import lr_find
from tlcore.training.train import BEST, LAST, Cancelled, make_loader, evaluate_loss, prepare, train
from train_fixtures import make_colour_classes, tiny_config


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_colour_classes(tmp_path_factory.mktemp("data") / "colours")


def test_a_short_run_learns(colours: Path, tmp_path: Path) -> None:
    config = tiny_config(colours, epochs=4)
    prep = prepare(config)
    before = evaluate_loss(prep.model, make_loader(prep, "val", training=False), prep.runtime, torch.nn.CrossEntropyLoss())
    events = []
    result = train(config, tmp_path / "run", sink=events.append)
    assert result.epochs_done == 4
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert max(h["val_acc"] for h in result.history) > before[1] + 0.2
    kinds = {e.kind for e in events}
    assert {"log", "stage", "epoch", "done"} <= kinds
    epoch = next(e for e in events if e.kind == "epoch").data
    assert {"train_loss", "val_acc", "lr", "images_per_s", "peak_memory_mb"} <= set(epoch)
    assert (tmp_path / "run" / BEST).exists() and json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 4


def test_frozen_parameters_stay_bit_for_bit(colours: Path, tmp_path: Path) -> None:
    config = tiny_config(colours, freeze={"strategy": "feature_extraction"}, epochs=2)
    initial = {k: v.clone() for k, v in prepare(config).model.state_dict().items()}
    train(config, tmp_path / "run")
    trained = load_file(str(tmp_path / "run" / LAST))
    head = [k for k in trained if k.startswith("classifier.")]
    assert head and all(not torch.equal(initial[k], trained[k]) for k in head if k.endswith("weight"))
    assert all(torch.equal(initial[k], trained[k]) for k in trained if not k.startswith("classifier."))


def test_resume_gives_the_same_result_as_an_uninterrupted_run(colours: Path, tmp_path: Path) -> None:
    config = tiny_config(colours, epochs=4, freeze={"strategy": "gradual", "every": 1},
                         augment={"preset": "light"}, schedule={"name": "cosine", "warmup_epochs": 1})
    whole = train(config, tmp_path / "whole")
    epochs_seen = []

    def stop_in_third_epoch() -> bool:
        return len(epochs_seen) >= 2

    with pytest.raises(Cancelled):
        train(config, tmp_path / "parts", sink=lambda e: epochs_seen.append(e) if e.kind == "epoch" else None,
              should_stop=stop_in_third_epoch)
    state = torch.load(tmp_path / "parts" / "last_state.pt", weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 2  # consistent: two whole epochs, nothing partial
    resumed_events = []
    rest = train(config, tmp_path / "parts", resume=True, sink=resumed_events.append)
    assert [h["epoch"] for h in rest.history] == [0, 1, 2, 3]
    stages = [e.data["trainable_from"] for e in resumed_events if e.kind == "stage"]
    assert stages[0] == len(prepare(config).built.groups) - 3  # epoch 3 of gradual unfreezing: head + 2 groups
    a, b = load_file(str(tmp_path / "whole" / LAST)), load_file(str(tmp_path / "parts" / LAST))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["val_loss"] for h in whole.history] == [h["val_loss"] for h in rest.history]


def test_early_stopping_and_best_checkpoint(colours: Path, tmp_path: Path) -> None:
    # min_delta 1.0 on accuracy: nothing after the first epoch can count as better.
    config = tiny_config(colours, epochs=12, early_stopping={"patience": 2, "metric": "val_acc", "min_delta": 1.0})
    events = []
    result = train(config, tmp_path / "run", sink=events.append)
    assert result.stopped_early and result.epochs_done == 3 and result.best_epoch == 0
    assert any("early stopping: val_acc has not improved for 2 epochs" in e.message for e in events)
    best, last = load_file(str(tmp_path / "run" / BEST)), load_file(str(tmp_path / "run" / LAST))
    assert not all(torch.equal(best[k], last[k]) for k in best)  # best stayed at epoch 1


def test_evaluation_on_the_held_out_test_split(colours: Path, tmp_path: Path) -> None:
    train(tiny_config(colours, epochs=3), tmp_path / "run")
    evaluation = evaluate_run(tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "split.json").read_text())
    test_paths = {i["path"] for i in manifest["items"] if i["split"] == "test"}
    assert evaluation.n == len(test_paths) == 12
    assert sum(map(sum, evaluation.confusion)) == 12
    rows = (tmp_path / "run" / "predictions.csv").read_text().splitlines()
    assert rows[0].startswith("path,label,predicted,confidence") and len(rows) == 13
    assert all(Path(r.split(",")[0]).relative_to(colours).as_posix() in test_paths for r in rows[1:])


def test_metrics_from_known_predictions() -> None:
    import numpy as np

    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 0, 2])
    probabilities = np.full((6, 3), 0.1)
    probabilities[np.arange(6), predicted] = 0.8
    e = metrics_from_predictions(labels, probabilities, ["a", "b", "c"], [f"img{i}" for i in range(6)])
    assert e.accuracy == pytest.approx(4 / 6)
    assert e.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert e.confusion == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    a = e.per_class[0]
    assert (a.precision, a.recall, a.support) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert {w["path"] for w in e.worst} == {"img2", "img4"}


def _diverging_lr(config_for, grid: list[float]) -> float:
    """The smallest lr of the grid at which two epochs of plain training end with a higher loss than they began."""
    import copy

    from tlcore.spec.freeze import apply_plan
    from tlcore.training.train import make_optimizer

    prep = prepare(config_for(grid[0]))  # data, split and model once; each lr starts from a copy
    for lr in grid:
        config = config_for(lr)
        model = copy.deepcopy(prep.model).train()
        apply_plan(model, prep.built.groups, prep.plan, 0)
        optimizer = make_optimizer(model, prep.built.groups, prep.plan, config, prep.runtime)
        loader = make_loader(prep, "train", training=True, generator=torch.Generator().manual_seed(0))
        loader.start_epoch(0)
        losses = []
        for _ in range(2):
            for x, y in loader:
                loss = torch.nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
        if not all(map(math.isfinite, losses)) or losses[-1] > losses[0]:
            return lr
    raise AssertionError("nothing in the grid diverged")


def test_lr_finder_suggests_a_rate_below_where_training_diverges_and_near_it(colours: Path) -> None:
    def config_for(lr: float):
        return tiny_config(colours, optimizer={"name": "sgd", "lr": lr, "momentum": 0.9, "label_smoothing": 0.0,
                                               "weight_decay": 0.0, "grad_clip": 0.0})

    diverges = _diverging_lr(config_for, [10 ** (e / 2) for e in range(-4, 3)])  # 0.01 ... 10
    curve = lr_find(config_for(1e-3), start=1e-5, end=10.0, steps=40)
    assert diverges / 30 <= curve.suggestion < diverges, (curve.suggestion, diverges)
    assert curve.lrs == sorted(curve.lrs) and len(curve.lrs) == len(curve.losses) >= 5
    assert curve.lrs[-1] < 10.0  # it stopped once the loss blew up, not at the end of the range


@pytest.mark.parametrize(("change", "message"), [
    ({"epochs": 0}, "invalid epochs"),
    ({"optimizer": {"name": "adam2"}}, "invalid optimizer.name"),
    ({"optimizer": {"lr": -1}}, "invalid optimizer.lr"),
    ({"batch_size": 0}, "invalid batch_size"),
    ({"schedule": {"name": "cosine", "warmup_epochs": 10}}, "invalid schedule.warmup_epochs"),
    ({"device": "tpu"}, "invalid device"),
    ({"freeze": {"strategy": "melt"}}, "invalid freeze.strategy"),
    ({"colour": "red"}, "unknown setting(s) in the run config: colour"),
    ({"optimizer": {"speed": 1}}, "unknown setting(s) in 'optimizer': speed"),
])
def test_bad_config_values_are_named(colours: Path, change: dict, message: str) -> None:
    data = json.loads(tiny_config(colours).to_json())
    for key, value in change.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(data)
    assert message in str(info.value)


def test_config_round_trips_exactly(colours: Path) -> None:
    config = tiny_config(colours, freeze={"strategy": "fine_tune", "lr_spread": 10})
    assert RunConfig.from_dict(json.loads(config.to_json())) == config


def test_missing_data_is_clear(tmp_path: Path) -> None:
    with pytest.raises(TransferLabError, match="no such folder or zip"):
        train(tiny_config(tmp_path / "gone"), tmp_path / "run")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_missing_gpu_is_clear(colours: Path, tmp_path: Path) -> None:
    with pytest.raises(TransferLabError, match="a CUDA GPU was requested but none is available"):
        train(tiny_config(colours, device="cuda"), tmp_path / "run2")


def test_cached_feature_head_matches_the_slow_path(colours: Path, tmp_path: Path) -> None:
    config = tiny_config(colours, freeze={"strategy": "feature_extraction"}, epochs=3, feature_views=2)
    slow = train(replace_config(config, feature_cache=False), tmp_path / "slow")
    events = []
    fast = train(config, tmp_path / "fast", sink=events.append)
    assert any("fast path" in e.message and "computed once" in e.message for e in events)
    a, b = load_file(str(tmp_path / "slow" / LAST)), load_file(str(tmp_path / "fast" / LAST))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)  # same head, same frozen backbone
    assert [round(h["val_loss"], 4) for h in slow.history] == [round(h["val_loss"], 4) for h in fast.history]
    again = []
    train(config, tmp_path / "again", sink=again.append)
    assert any("read from the cache" in e.message for e in again)
    # the extraction said how far it was, counting every picture it reads: the val pictures and each view of train
    extracting = [e.data for e in events if e.kind == "progress" and e.data.get("phase") == "features"]
    from tlcore.data import SplitManifest

    manifest = SplitManifest.load(tmp_path / "fast" / "split.json")
    assert extracting and extracting[-1]["done"] == extracting[-1]["total"]
    assert extracting[-1]["total"] == len(manifest.hashes("val")) + 2 * len(manifest.hashes("train"))
    # counted in views, and said so (a walk read "features of 300 of 372 pictures" for 240 pictures)
    assert {p.get("unit") for p in extracting} == {"picture views"}
    assert [p["done"] for p in extracting] == sorted(p["done"] for p in extracting)


def test_fast_path_is_not_used_when_anything_but_the_head_trains(colours: Path, tmp_path: Path) -> None:
    for freeze in ({"strategy": "fine_tune"}, {"strategy": "feature_extraction", "train_bn": True}):
        events = []
        train(tiny_config(colours, freeze=freeze, epochs=2), tmp_path / freeze["strategy"], sink=events.append)
        assert not any("fast path" in e.message for e in events)


def replace_config(config, **changes):
    from dataclasses import replace

    return replace(config, **changes)


def test_the_best_checkpoint_is_the_epoch_with_the_lowest_validation_loss(colours: Path, tmp_path: Path) -> None:
    from tlcore.results.artifacts import weights_epoch

    # A high learning rate makes the validation loss go up and down, so "lowest" and "last" differ.
    config = tiny_config(colours, epochs=6, optimizer={"lr": 0.05}, early_stopping={"metric": "val_loss", "patience": 0})
    result = train(config, tmp_path / "run")
    losses = [h["val_loss"] for h in result.history]
    lowest = min(range(len(losses)), key=losses.__getitem__)
    assert lowest != max(range(len(losses)), key=losses.__getitem__)  # the test can tell the two rules apart
    assert result.best_epoch == lowest and result.best_metric == losses[lowest]
    assert weights_epoch(tmp_path / "run" / BEST) == lowest


def test_a_cancel_during_feature_extraction_stops_it_before_the_first_epoch(colours: Path, tmp_path: Path) -> None:
    """Issue 36: a head-only run's one pass through the backbone (most of a short run's first minute) took no
    cancel: the flag was first read before epoch 1. Now it is read at every batch of the pass (at most every half
    second), and at every event of the start-up."""
    import time

    from tlcore.core.events import STARTING_CHECK_EVERY_S

    config = tiny_config(colours, freeze={"strategy": "feature_extraction"}, feature_views=40, batch_size=4,
                         augment={"preset": "light"})
    events, asked = [], []

    def should_stop() -> bool:
        asked.append(time.monotonic())
        return any(e.kind == "progress" and e.data.get("phase") == "features" for e in events)  # once it started

    with pytest.raises(Cancelled, match="while extracting features"):
        train(config, tmp_path / "run", sink=events.append, should_stop=should_stop)
    features = [e for e in events if e.kind == "progress" and e.data.get("phase") == "features"]
    counts = [e.data["done"] for e in features]
    total = features[0].data["total"]
    assert counts and max(counts) < total  # stopped within the pass, not after it
    assert not [e for e in events if e.kind == "epoch"]
    assert asked and all(b - a >= STARTING_CHECK_EVERY_S * 0.9 for a, b in zip(asked, asked[1:]))  # not every batch
