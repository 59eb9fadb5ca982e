"""Domain adaptation: each method's mechanism, resume, what the target may and may not do, evaluating on folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tlcore.adaptation.adapt import AdaptError, GradientReverse, adabn, dann_coefficient, mcc_loss
from tlcore.results.artifacts import ADAPTED, BEST, LAST
from tlcore.config import ConfigError
from tlcore.results.evaluate import evaluate_folder, evaluate_run
from tlcore.models import ModelSpec, build_model
from tlcore.training.train import Cancelled, train
from test_cli import tlcore
from train_fixtures import make_colour_classes, tiny_config


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_colour_classes(tmp_path_factory.mktemp("source"), per_class=16)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same classes, darker and smaller: another domain (its class folders are labelled, for evaluation)."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("target")
    rng = np.random.default_rng(1)
    for index, label in enumerate(("red", "green", "blue")):
        (root / label).mkdir()
        for i in range(8):
            pixels = rng.integers(0, 60, (28, 28, 3))
            pixels[..., index] += 70
            Image.fromarray(pixels.astype(np.uint8)).save(root / label / f"{label}_{i}.png")
    return root


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _learned(history: list[dict]) -> list[dict]:
    """An epoch's numbers without its timings and memory, which vary from run to run."""
    return [{k: v for k, v in h.items() if k not in ("images_per_s", "epoch_seconds", "peak_memory_mb")}
            for h in history]


def test_adabn_changes_only_batchnorm_statistics() -> None:
    model = build_model(ModelSpec(name="test_efficientnet", weights="random"), 3, input_size=(3, 32, 32), seed=0).model
    before_params = {n: p.detach().clone() for n, p in model.named_parameters()}
    before_buffers = {n: b.clone() for n, b in model.named_buffers()}
    batches = [(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(i)) * 3 + 1, torch.zeros(4))
               for i in range(3)]
    layers = adabn(model, batches, torch.device("cpu"))
    assert layers > 0
    assert all(torch.equal(p, before_params[n]) for n, p in model.named_parameters())
    changed = {n for n, b in model.named_buffers() if not torch.equal(b, before_buffers[n])}
    assert changed and all(n.endswith(("running_mean", "running_var", "num_batches_tracked")) for n in changed)
    assert any(n.endswith("running_mean") for n in changed)
    again = {n: b.clone() for n, b in model.named_buffers()}
    adabn(model, batches, torch.device("cpu"))  # from nothing each time: the same statistics again
    assert all(torch.allclose(b, again[n]) for n, b in model.named_buffers())
    assert not model.training


def test_adabn_refuses_a_model_without_batchnorm(colours: Path, target: Path, tmp_path: Path) -> None:
    config = tiny_config(colours, model={"name": "test_vit", "weights": "random"},
                         adapt={"method": "adabn", "target": str(target)})
    with pytest.raises(AdaptError, match="test_vit has no BatchNorm layer"):
        train(config, tmp_path / "run")


def test_gradient_reversal_flips_the_gradient() -> None:
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = GradientReverse.apply(x, 0.5)
    assert torch.equal(y, x.detach())  # identity going forward
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([-0.5, -1.0, -1.5]))
    assert dann_coefficient(0.0) == 0.0 and 0.99 < dann_coefficient(1.0) < 1.0
    assert dann_coefficient(0.25) < dann_coefficient(0.5)


def test_mcc_is_zero_for_confident_distinct_classes_and_high_for_confusion() -> None:
    confident = torch.tensor([[20.0, 0, 0], [0, 20.0, 0], [0, 0, 20.0]])
    confused = torch.zeros(3, 3)
    assert mcc_loss(confident, 1.0) < 1e-6 < mcc_loss(confused, 1.0)


def test_l2sp_with_strength_zero_is_plain_training(colours: Path, tmp_path: Path) -> None:
    plain = train(tiny_config(colours, epochs=2), tmp_path / "plain")
    zero = train(tiny_config(colours, epochs=2, adapt={"method": "l2sp", "weight": 0.0}), tmp_path / "zero")
    a, b = _weights(tmp_path / "plain" / LAST), _weights(tmp_path / "zero" / LAST)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _learned(plain.history) == _learned(zero.history)
    train(tiny_config(colours, epochs=2, adapt={"method": "l2sp", "weight": 10.0}), tmp_path / "pulled")
    c = _weights(tmp_path / "pulled" / LAST)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # a strength that matters changes the weights


def test_dann_and_l2sp_refuse_a_frozen_backbone_by_name(colours: Path, target: Path, tmp_path: Path) -> None:
    for method in ("dann", "l2sp"):
        config = tiny_config(colours, freeze={"strategy": "feature_extraction"},
                             adapt={"method": method, "target": str(target)})
        with pytest.raises(AdaptError, match=f"{method} .* only the new head trains"):
            train(config, tmp_path / method)


@pytest.mark.parametrize("method,strategy", [("adabn", "full"), ("dann", "full"), ("l2sp", "fine_tune"),
                                             ("mcc", "full"), ("mcc", "feature_extraction")])
def test_every_method_resumes_after_a_cancel(colours: Path, target: Path, tmp_path: Path, method: str,
                                             strategy: str) -> None:
    config = tiny_config(colours, epochs=2, freeze={"strategy": strategy}, augment={"preset": "light"},
                         adapt={"method": method, "target": str(target)})
    whole = train(config, tmp_path / "whole")
    epochs_seen = []
    with pytest.raises(Cancelled):
        train(config, tmp_path / "parts", sink=lambda e: epochs_seen.append(e) if e.kind == "epoch" else None,
              should_stop=lambda: len(epochs_seen) >= 1)
    rest = train(config, tmp_path / "parts", resume=True)
    assert [h["val_loss"] for h in whole.history] == [h["val_loss"] for h in rest.history]
    for name in (LAST, BEST) + ((ADAPTED,) if method == "adabn" else ()):
        a, b = _weights(tmp_path / "whole" / name), _weights(tmp_path / "parts" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_target_labels_never_reach_training(colours: Path, target: Path, tmp_path: Path) -> None:
    """The same target pictures under wrong class folders, or under none, train exactly the same model.

    (The folders are named so the pictures keep their order: the order of target batches is the only thing a
    folder layout may change.)"""
    relabelled = tmp_path / "relabelled"
    wrong = {"blue": "a_green", "green": "b_red", "red": "c_blue"}
    for path in sorted(target.rglob("*.png")):
        (relabelled / wrong[path.parent.name]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, relabelled / wrong[path.parent.name] / path.name)
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted(target.rglob("*.png")):
        shutil.copy(path, flat / path.name)
    runs = {}
    for name, folder in (("labelled", target), ("relabelled", relabelled), ("flat", flat)):
        runs[name] = train(tiny_config(colours, epochs=2, adapt={"method": "mcc", "target": str(folder)}),
                           tmp_path / name)
    a = _weights(tmp_path / "labelled" / LAST)
    for other in ("relabelled", "flat"):
        b = _weights(tmp_path / other / LAST)
        assert all(torch.equal(a[k], b[k]) for k in a), other
        assert _learned(runs["labelled"].history) == _learned(runs[other].history)
    plain = train(tiny_config(colours, epochs=2), tmp_path / "plain")
    assert _learned(plain.history) != _learned(runs["flat"].history)  # the target pictures did take part


def test_the_target_never_chooses_the_best_epoch(colours: Path, target: Path, tmp_path: Path) -> None:
    """Validation (early stopping, the best checkpoint) is the source's val split: the history's numbers are
    that split's, for the weights of each epoch."""
    config = tiny_config(colours, epochs=2, early_stopping={"metric": "val_acc", "patience": 0},
                         adapt={"method": "mcc", "target": str(target)})
    result = train(config, tmp_path / "run")
    on_val = evaluate_run(tmp_path / "run", split="val", checkpoint=LAST)
    assert result.history[-1]["val_acc"] == pytest.approx(on_val.accuracy)
    assert on_val.n == 12  # the source's val pictures, not the 24 target ones
    best = max(range(2), key=lambda e: (result.history[e]["val_acc"], -e))
    assert result.best_epoch == best


def test_a_target_with_no_or_one_readable_picture_is_refused(colours: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.jpg").write_bytes(b"not a picture")
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(next(colours.rglob("*.png")), one / "only.png")
    for folder, words in ((empty, "no readable picture"), (one, "only one readable picture")):
        with pytest.raises(AdaptError, match=words):
            train(tiny_config(colours, adapt={"method": "mcc", "target": str(folder)}), tmp_path / folder.name)
    with pytest.raises(ConfigError, match="mcc needs target pictures"):
        tiny_config(colours, adapt={"method": "mcc"})


def test_evaluate_on_another_folder_from_the_cli(colours: Path, target: Path, tl_home: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(tiny_config(colours, epochs=2, adapt={"method": "adabn", "target": str(target)}).to_json())
    trained = tlcore("train", str(config_path), home=tl_home)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.startswith("run ")
    assert "preparing: splitting 48 pictures (2 of 6)" in trained.stdout  # issue 37: the wait before epoch 1
    run_id = trained.stdout.split()[1]
    result = tlcore("evaluate", run_id, "--data", str(target), "--json", home=tl_home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["n"] == 24 and 0 <= data["accuracy"] <= 1 and len(data["confusion"]) == 3
    assert sum(map(sum, data["confusion"])) == 24
    assert data["accuracy"] == pytest.approx(sum(data["confusion"][i][i] for i in range(3)) / 24)
    from tlcore.cli import main  # the plain output, in this process (no second start-up of torch)

    progress = tmp_path / "progress.jsonl"
    assert main(["evaluate", run_id, "--data", str(target), "--progress", str(progress)]) == 0
    assert f"run {run_id} on 24 pictures of {target}: accuracy {data['accuracy']:.3f}" in capsys.readouterr().out
    steps = [json.loads(line) for line in progress.read_text().splitlines()]
    assert {"phase": "adapting BatchNorm", "done": 24, "total": 24} in steps  # AdaBN reads the folder first
    assert steps[-1] == {"phase": "classifying", "done": 24, "total": 24}
    stored = tl_home / "runs" / run_id / "evaluations" / target.name
    assert json.loads((stored / "evaluation.json").read_text())["accuracy"] == data["accuracy"]
    assert (stored / "predictions.csv").read_text().count("\n") == 25

    wrong = tmp_path / "wrong"
    shutil.copytree(target, wrong)
    (wrong / "red").rename(wrong / "purple")
    failed = tlcore("evaluate", run_id, "--data", str(wrong), home=tl_home)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "not in the run: purple" in failed.stderr and "missing: red" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1


def test_evaluations_on_several_folders_are_kept_side_by_side(colours: Path, target: Path, tmp_path: Path) -> None:
    train(tiny_config(colours, epochs=1), tmp_path / "run")
    copy = tmp_path / "winter"
    shutil.copytree(target, copy)
    seen = []
    first, where_first = evaluate_folder(tmp_path / "run", target, on_progress=lambda *step: seen.append(step))
    second, where_second = evaluate_folder(tmp_path / "run", copy)
    # the Evaluate page's progress: the steps in order, then every picture counted once
    assert [phase for phase, _, _ in seen[:2]] == ["loading the model", "reading the folder"]
    classified = [(done, total) for phase, done, total in seen if phase == "classifying"]
    assert classified[-1] == (first.n, first.n) and [d for d, _ in classified] == sorted(d for d, _ in classified)
    from tlcore.results.artifacts import read_folder_evaluations

    kept = read_folder_evaluations(tmp_path / "run")
    assert set(kept) == {target.name, "winter"} and where_first != where_second
    assert kept["winter"]["accuracy"] == second.accuracy and kept["winter"]["source"] == str(copy)
    assert first.accuracy == second.accuracy  # the same pictures, the same model


def test_compare_adaptation_methods_with_a_target_test_folder(colours: Path, target: Path, tl_home: Path,
                                                              tmp_path: Path) -> None:
    config_path = tmp_path / "base.json"
    config_path.write_text(tiny_config(colours, epochs=1, adapt={"method": "none", "target": str(target)}).to_json())
    result = tlcore("compare", str(config_path), "--methods", "none,mcc", "--evaluate-on", str(target), home=tl_home)
    assert result.returncode == 0, result.stderr
    assert "2 runs queued (2 setting(s) x 1 seed(s): adapt none, adapt mcc)" in result.stdout
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("adapt ")}
    assert set(lines) == {"none", "mcc"}
    from tlcore.experiments.compare import sweep_rows
    from tlcore.runs import RunStore

    sweep = result.stdout.split()[1].rstrip(":")
    rows = sweep_rows(RunStore(), sweep)
    assert [r.strategy for r in rows] == ["adapt none", "adapt mcc"]
    assert all(set(r.folders) == {target.name} for r in rows)
    for r in rows:  # the table's last column is the accuracy on the target test folder
        assert lines[r.strategy.split()[1]].split()[-1] == f"{r.folders[target.name]:.3f}"
    configs = [RunStore().get(r.run_id).config for r in rows]
    assert [c["adapt"]["method"] for c in configs] == ["none", "mcc"]
    assert configs[0]["data"]["manifest"] == configs[1]["data"]["manifest"] and configs[0]["seed"] == configs[1]["seed"]
    assert configs[0]["freeze"] == configs[1]["freeze"]


def test_a_target_that_is_the_data_set_itself_is_warned_about(colours: Path, target: Path, tmp_path: Path) -> None:
    """Issue 28, item 7: its own val/test pictures as the unlabeled target trained without a word."""
    config = tiny_config(colours, epochs=1, freeze={"strategy": "full"}, adapt={"method": "adabn", "target": str(colours)})
    events = []
    train(config, tmp_path / "own", sink=events.append)
    warned = [e.message for e in events if e.kind == "warning" and "target pictures are pictures of the labelled" in e.message]
    assert len(warned) == 1 and "test)" in warned[0]
    other = []
    train(tiny_config(colours, epochs=1, freeze={"strategy": "full"}, adapt={"method": "adabn", "target": str(target)}),
          tmp_path / "other", sink=other.append)
    assert not [e for e in other if e.kind == "warning" and "labelled data set" in e.message]


@pytest.mark.parametrize("method", ["dann", "entropy"])
def test_dann_and_entropy_change_what_trains(colours: Path, target: Path, tmp_path: Path, method: str) -> None:
    """Against a no-adaptation twin (same split, seed and batches), the method's term changes the trained weights;
    the twin run twice does not (so the difference is the method, not noise). A method that fell back to plain
    cross-entropy, or whose gradient never reached the model, fails here."""
    def weights(name: str, adapt: dict) -> dict[str, torch.Tensor]:
        train(tiny_config(colours, epochs=1, adapt=adapt), tmp_path / name)
        return _weights(tmp_path / name / LAST)

    plain, again = weights("plain", {"method": "none"}), weights("again", {"method": "none"})
    adapted = weights(method, {"method": method, "target": str(target)})
    assert all(torch.equal(plain[k], again[k]) for k in plain)
    changed = [k for k in plain if not torch.equal(plain[k], adapted[k])]
    backbone = [k for k in changed if not k.startswith("classifier")]
    assert backbone, f"{method} changed no backbone weight"


@pytest.mark.parametrize("model, freeze, adapt, says", [
    ("test_efficientnet", "feature_extraction", "dann", "only the new head trains"),
    ("test_efficientnet", "feature_extraction", "l2sp", "only the new head trains"),
    ("test_vit", "full", "adabn", "test_vit has no BatchNorm layer"),
    ("test_efficientnet", "full", "missing-target", "no such folder or zip"),
])
def test_a_run_that_cannot_start_is_refused_before_it_is_queued(colours: Path, target: Path, tmp_path: Path,
                                                                 tl_home: Path, model: str, freeze: str, adapt: str,
                                                                 says: str) -> None:
    """Issue 28: these were queued, then failed in the worker, and stayed in the run list as failed runs."""
    from conftest import tlcore_in_process
    from tlcore.runs import RunStore

    method, where = (("mcc", str(tmp_path / "nowhere")) if adapt == "missing-target" else (adapt, str(target)))
    config = tiny_config(colours, model={"name": model, "weights": "random"}, freeze={"strategy": freeze},
                         adapt={"method": method, "target": where})
    path = tmp_path / "run.json"
    path.write_text(config.to_json())
    for command in (["train", str(path), "--background"], ["compare", str(path), "--strategies", freeze,
                                                           "--background"]):
        result = tlcore_in_process(*command)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert result.returncode == 1 and len(errors) == 1 and says in errors[0], result.stderr
        assert RunStore().list() == []  # nothing queued, nothing failed in the list
