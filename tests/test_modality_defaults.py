"""Texts follow the field's own practice (issue 35): a whole encoder fine-tuned at lr 1e-4 with a warm-up, not at
the picture head's 3e-3, which left MiniLM at chance on held-out news; values a user typed are never changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlcore.config import RunConfig
from tlcore.errors import TransferLabError
from tlcore.training.preflight import check_before_queueing, model_for_the_data
from tlcore.core.schema import recommended_values

ROOT = Path(__file__).resolve().parents[1]
TEXTS = str(ROOT / "sample_data" / "support_tickets.csv")
SHAPES = str(ROOT / "sample_data" / "shapes")


@pytest.mark.parametrize("source, freeze, warned", [
    (TEXTS, {"strategy": "full"}, True),
    (TEXTS, {"strategy": "fine_tune", "head_epochs": 1}, True),
    (TEXTS, {"strategy": "feature_extraction"}, False),  # only the head trains: the head's rate is right
    (TEXTS, {"strategy": "gradual", "every": 10}, False),  # 5 epochs: still head only
    (SHAPES, {"strategy": "full"}, False),
])
def test_a_run_at_the_picture_defaults_is_told_the_texts_values_and_keeps_its_own(source: str, freeze: dict,
                                                                                  warned: bool) -> None:
    """A config holds what it says (a comparison's "lr 0.003" cell trains at 0.003); the log says the field's usual."""
    config, note = model_for_the_data(RunConfig.from_dict({"data": {"source": source}, "freeze": freeze}))
    assert (config.optimizer.lr, config.schedule.warmup_epochs) == (3e-3, 0.0)
    said = "optimizer.lr is 0.003, the picture default; with texts and the encoder training the usual is 0.0001"
    assert (said in (note or "")) is warned and ("schedule.warmup_epochs is 0" in (note or "")) is warned


def test_a_learning_rate_the_user_gave_is_not_questioned() -> None:
    config, note = model_for_the_data(RunConfig.from_dict({"data": {"source": TEXTS}, "freeze": {"strategy": "full"},
                                                           "optimizer": {"lr": 1e-4}}))
    assert config.optimizer.lr == 1e-4 and "optimizer.lr" not in (note or "")


def test_values_the_app_chose_follow_back_and_typed_ones_stay() -> None:
    from tlcore.core.schema import leaves

    values = {leaf.path: leaf.default for leaf in leaves(RunConfig)}
    to_texts = recommended_values(RunConfig, values, "texts", True)
    assert {p: v for p, (v, _) in to_texts.items()} == {"optimizer.lr": 1e-4, "schedule.warmup_epochs": 0.5}
    values.update({"optimizer.lr": 1e-4, "schedule.warmup_epochs": 0.5})
    applied = {"optimizer.lr": 1e-4, "schedule.warmup_epochs": 0.5}
    back = recommended_values(RunConfig, values, "texts", False, applied)  # head only again: the head's rate
    assert {p: v for p, (v, _) in back.items()} == {"optimizer.lr": 3e-3, "schedule.warmup_epochs": 0.0}
    assert recommended_values(RunConfig, values, "texts", False) == {}  # without the record: the user's values
    values["optimizer.lr"] = 2e-5  # typed by the user
    assert "optimizer.lr" not in recommended_values(RunConfig, values, "texts", False, applied)


def test_a_text_run_with_labelled_target_items_is_refused_before_it_is_queued() -> None:
    """Before: accepted by the check before queueing, then refused by prepare after it was queued."""
    config = RunConfig.from_dict({"data": {"source": TEXTS}, "adapt": {"labelled": "/data/few", "method": "none"}})
    with pytest.raises(TransferLabError, match="adapt.labelled.*is for pictures so far"):
        check_before_queueing(config)
