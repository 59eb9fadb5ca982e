"""Ranking models before training: LogME and a probe on frozen features, and the `models rank` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, tlcore_in_process
from tlcore.experiments.rank import logme, probe_accuracy, rank_models


def _clusters(n: int = 300, classes: int = 3, dims: int = 64, spread: float = 2.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    return rng.normal(size=(classes, dims))[labels] * spread + rng.normal(size=(n, dims)), labels


def test_logme_scores_class_structure_above_shuffled_labels_and_grows_with_separation() -> None:
    features, labels = _clusters()
    structured = logme(features, labels)
    shuffled = logme(features, np.random.default_rng(1).permutation(labels))
    assert structured > shuffled + 1.0
    assert logme(*_clusters(spread=0.5)) < logme(*_clusters(spread=1.0)) < structured
    with pytest.raises(ValueError, match="two classes"):
        logme(features, np.zeros(len(labels)))


def test_the_probe_learns_separable_features_and_not_noise() -> None:
    features, labels = _clusters(n=400)
    x, y = torch.tensor(features, dtype=torch.float32), torch.tensor(labels)
    assert probe_accuracy(x[:300], y[:300], x[300:], y[300:]) > 0.95
    noise = torch.randn(400, 64, generator=torch.Generator().manual_seed(0))
    assert probe_accuracy(noise[:300], y[:300], noise[300:], y[300:]) < 0.6


def test_a_pretrained_model_ranks_above_its_random_twin_and_a_missing_one_is_said(tl_home: Path) -> None:
    from tlcore.config import RunConfig

    base = RunConfig.from_dict({"data": {"source": str(ROOT / "sample_data")}, "input_size": [3, 96, 96], "device": "cpu"})
    seen = []
    scores = rank_models(base, ["tf_efficientnet_lite0@random", "resnet18", "tf_efficientnet_lite0"],
                         lambda done, total, score: seen.append((done, total, score.candidate)))
    assert seen == [(1, 3, "tf_efficientnet_lite0@random"), (2, 3, "resnet18"), (3, 3, "tf_efficientnet_lite0")]
    assert [s.candidate for s in scores] == ["tf_efficientnet_lite0", "tf_efficientnet_lite0@random", "resnet18"]
    pretrained, random, missing = scores
    assert pretrained.logme > random.logme and pretrained.probe_accuracy > random.probe_accuracy
    assert "RANDOM INIT" in random.label and "no pretrained weights for 'resnet18'" in missing.error
    again = rank_models(base, ["tf_efficientnet_lite0"])[0]  # the features are cached now
    assert again.features_from_cache and again.logme == pytest.approx(pretrained.logme)


def test_cli_models_rank(tl_home: Path, tmp_path: Path) -> None:
    from train_fixtures import make_colour_classes

    colours = make_colour_classes(tmp_path / "colours")
    result = tlcore_in_process("models", "rank", "--data", str(colours), "--models", "test_efficientnet@random,nope_net", "--input-size", "32", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["candidate"] for line in lines] == ["test_efficientnet@random", "nope_net"]
    assert lines[0]["logme"] is not None and 0 <= lines[0]["probe_accuracy"] <= 1 and lines[1]["error"]
    bad = tlcore_in_process("models", "rank")
    assert bad.returncode == 1 and "give the pictures to rank models on" in bad.stderr and "Traceback" not in bad.stderr
    from tlcore.cli import main  # no model scored at all: an error, not success (issue 28); in this process

    assert main(["models", "rank", "--data", str(colours), "--models", "nope_net,other_nope", "--input-size", "32"]) == 1


def test_texts_rank_the_text_encoder_above_its_random_twin_and_refuse_an_image_model(tl_home: Path) -> None:
    """Issue 27: with texts, `models rank` scored the image default's name ("tf_efficientnet_lite0: 6.7 s")
    while it built the text encoder, gave no baseline, and spoke of img/s."""
    tickets = str(ROOT / "sample_data" / "support_tickets.csv")
    done = tlcore_in_process("models", "rank", "--data", tickets)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == [line for line in lines if line.startswith("[")]  # two candidates, by their text names
    assert lines[0].startswith("[1/2] all-MiniLM-L6-v2: ") and lines[1].startswith("[2/2] all-MiniLM-L6-v2@random: ")
    table = [line.split() for line in lines if line[:1].isdigit()]
    assert [row[1] for row in table] == ["all-MiniLM-L6-v2", "all-MiniLM-L6-v2"]  # pretrained first (rank 1)
    assert "RANDOM INIT" in next(line for line in lines if line.startswith("2 "))  # its random twin second
    assert "texts/s" in done.stdout and "img/s" not in done.stdout
    refused = tlcore_in_process("models", "rank", "--data", tickets, "--models", "resnet50")
    assert refused.returncode != 0 and "holds texts, and resnet50 is a model for pictures" in refused.stderr
    assert "Traceback" not in refused.stderr
