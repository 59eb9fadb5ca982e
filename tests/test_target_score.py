"""Scoring a run on its target pictures without their labels (issue 29): the two scores' arithmetic, a run's
score kept beside it, and a comparison of adaptation methods that names the one the target pictures favour."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tlcore.results.artifacts import load_trained
from tlcore.errors import TransferLabError
from tlcore.results.evaluate import class_probabilities
from tlcore.core.run_files import TARGET_PROBABILITIES, TARGET_SCORE, read_target_probabilities, read_target_score
from tlcore.results.target_score import (LABEL_FREE_RULE, LABEL_FREE_RULES, consensus_agreement, information_score,
                                         score_target, soft_neighbourhood_density)
from tlcore.running.worker import run_to_end
from test_cli import tlcore
from train_fixtures import make_colour_classes, tiny_config

ONE_HOT = np.repeat(np.eye(3), 30, axis=0)  # 90 confident answers, 30 per class
COLLAPSED = np.tile([1.0, 0.0, 0.0], (90, 1))  # every picture given the same class


def test_snd_is_the_entropy_of_each_pictures_neighbours() -> None:
    """Known values: with one-hot answers a picture's neighbours are the 29 others of its class (not itself);
    a collapse makes all 89 others neighbours, the highest density there is, which is SND's blind spot."""
    assert soft_neighbourhood_density(ONE_HOT) == pytest.approx(math.log(29), abs=1e-3)
    assert soft_neighbourhood_density(COLLAPSED) == pytest.approx(math.log(89), abs=1e-9)
    uncertain = np.random.default_rng(0).dirichlet([1, 1, 1], 90)
    assert soft_neighbourhood_density(uncertain) < soft_neighbourhood_density(ONE_HOT)
    with pytest.raises(ValueError, match="two pictures"):
        soft_neighbourhood_density(ONE_HOT[:1])


def test_the_information_score_wants_confident_answers_spread_over_the_classes() -> None:
    assert information_score(ONE_HOT) == pytest.approx(math.log(3), abs=1e-6)  # its maximum
    assert information_score(COLLAPSED) == pytest.approx(0.0, abs=1e-6)  # a collapse gets nothing
    assert information_score(np.full((90, 3), 1 / 3)) == pytest.approx(0.0, abs=1e-6)  # unsure of everything
    half_sure = 0.5 * ONE_HOT + 0.5 / 3
    assert 0 < information_score(half_sure) < information_score(ONE_HOT)


@pytest.fixture(scope="module")
def shift(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Colour classes, and darker, smaller target pictures of the same classes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("shift")
    source = make_colour_classes(root / "source")
    target = make_colour_classes(root / "target", per_class=8, size=28)
    for picture in target.rglob("*.png"):
        Image.fromarray((np.asarray(Image.open(picture)) * 0.4).astype(np.uint8)).save(picture)
    return source, target


def test_a_finished_run_is_scored_on_its_target_pictures(shift, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    source, target = shift
    events = []
    config = tiny_config(source, epochs=1, adapt={"method": "adabn", "target": str(target)})
    status, error, _ = run_to_end(config, tmp_path / "run", events.append, lambda: False)
    assert status == "succeeded", error
    stored = read_target_score(tmp_path / "run")
    assert stored["pictures"] == 24 and sum(stored["predicted_shares"].values()) == pytest.approx(1.0)
    said = [e for e in events if e.kind == "log" and "target pictures (no labels used)" in e.message]
    assert said and said[0].data["target_im"] == stored["im"]
    # an AdaBN run is scored as it is used on the target: BatchNorm measured on the target pictures first
    trained = load_trained(tmp_path / "run")
    items = [(p, 0) for p in sorted(target.rglob("*.png"))]
    adapted = class_probabilities(trained, items, own_statistics=True)
    plain = class_probabilities(load_trained(tmp_path / "run"), items, own_statistics=False)
    assert stored["im"] == pytest.approx(information_score(adapted), abs=1e-6)
    assert stored["im"] != pytest.approx(information_score(plain), abs=1e-6)
    # the answers themselves are kept, in the scan's order, for rules that compare runs on the same pictures
    kept = read_target_probabilities(tmp_path / "run")
    assert kept.shape == (24, 3) and np.allclose(kept, adapted, atol=1e-5)
    (tmp_path / "run" / TARGET_PROBABILITIES).write_bytes(b"\x93NUMPY garbage")
    assert read_target_probabilities(tmp_path / "run") is None  # damaged: none, not a crash


def test_a_run_without_target_pictures_is_not_scored(shift, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    source, _ = shift
    status, _, _ = run_to_end(tiny_config(source, epochs=1), tmp_path / "run", lambda event: None, lambda: False)
    assert status == "succeeded" and not (tmp_path / "run" / TARGET_SCORE).exists()
    with pytest.raises(TransferLabError, match="names no target pictures"):
        score_target(tmp_path / "run")
    (tmp_path / "run" / TARGET_SCORE).write_text("{not json")
    assert read_target_score(tmp_path / "run") is None  # damaged: no score, not a crash


def test_auto_compares_every_method_that_fits_and_names_the_one_the_target_favours(shift, tl_home: Path,
                                                                                  tmp_path: Path) -> None:
    from tlcore.experiments.compare import chosen_without_labels, sweep_rows
    from tlcore.runs import RunStore

    source, target = shift
    config_path = tmp_path / "base.json"
    config_path.write_text(tiny_config(source, epochs=1, freeze={"strategy": "feature_extraction"},
                                       adapt={"method": "none", "target": str(target)}).to_json())
    result = tlcore("compare", str(config_path), "--methods", "auto", home=tl_home)
    assert result.returncode == 0, result.stderr
    # head only: DANN (which trains the backbone) is left out
    assert ("5 runs queued (5 setting(s) x 1 seed(s): adapt none, adapt adabn, adapt mcc, adapt entropy, "
            "adapt adabn+mcc)") in result.stdout
    sweep = result.stdout.split()[1].rstrip(":")
    rows = sweep_rows(RunStore(), sweep)
    scores = {r.strategy: r.target_score for r in rows}
    assert all(isinstance(s, float) for s in scores.values())
    choice = chosen_without_labels(rows)
    assert choice.rule == LABEL_FREE_RULE and choice.scores == pytest.approx(scores)  # head only: the suite's rule
    answers = {r.strategy: r.target_answers for r in rows}
    changed = float((answers["adapt adabn"].argmax(1) != answers["adapt none"].argmax(1)).mean())
    assert choice.changed == pytest.approx(changed)
    assert choice.label == ("adapt adabn" if changed > 0.08 else "adapt none")
    assert all(information_score(answers[name]) == pytest.approx(scores[name], abs=1e-4) for name in scores)
    assert chosen_without_labels(rows, "im").label == max(scores, key=scores.get)
    assert f"Chosen without target labels: {choice.label} (" in result.stdout
    stored = json.loads((Path(RunStore().get(rows[0].run_id).run_dir) / TARGET_SCORE).read_text())
    assert stored["im"] == pytest.approx(scores["adapt none"])


def test_consensus_agreement_does_not_reward_a_confident_outlier() -> None:
    """Three candidates on 4 pictures: two agree (unsure), one is sure and disagrees on 3 of 4 pictures."""
    unsure = np.array([[0.6, 0.4], [0.6, 0.4], [0.4, 0.6], [0.4, 0.6]])
    outlier = np.array([[0.01, 0.99], [0.01, 0.99], [0.99, 0.01], [0.01, 0.99]])
    answers = {"none": unsure, "mcc": outlier, "adabn": unsure.copy()}
    agreement = consensus_agreement(answers)
    assert agreement == {"none": 1.0, "mcc": 0.25, "adabn": 1.0}
    assert LABEL_FREE_RULES["consensus"](answers, "none") == "none"  # a tie keeps no adaptation
    assert LABEL_FREE_RULES["im"](answers, "none") == "mcc"  # IM rewards the confident outlier
    assert LABEL_FREE_RULES["none"](answers, "none") == "none"


def test_a_guarded_rule_keeps_no_adaptation_unless_the_margin_is_passed() -> None:
    none = np.array([[0.7, 0.3], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6]])
    a_little = np.array([[0.703, 0.297], [0.297, 0.703], [0.603, 0.397], [0.397, 0.603]])  # IM up by less than 10%
    a_lot = np.array([[0.95, 0.05], [0.05, 0.95], [0.9, 0.1], [0.1, 0.9]])
    assert information_score(none) < information_score(a_little) < 1.1 * information_score(none)
    assert LABEL_FREE_RULES["im+10%"]({"none": none, "x": a_little}, "none") == "none"
    assert LABEL_FREE_RULES["im"]({"none": none, "x": a_little}, "none") == "x"
    assert LABEL_FREE_RULES["im+10%"]({"none": none, "x": a_little, "y": a_lot}, "none") == "y"
    assert LABEL_FREE_RULES["im+10%"]({"x": a_little, "y": a_lot}, None) == "y"  # no baseline: the best
