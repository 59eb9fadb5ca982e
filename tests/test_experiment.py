"""The experiment as one typed object: settings by dotted path, the run they make, the file that keeps them."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tlcore.config import ConfigError, FreezeConfig, RunConfig
from pages.experiment import SETTINGS, Experiment, ExperimentError, ExperimentStore, setting
from tlcore.experiments.run_labels import run_label

# A valid value other than the default, for each run setting (strings cannot be guessed).
OTHER_TEXT = {"data.source": "/data/photos", "data.manifest": "/data/split.json", "model.name": "resnet50",
              "model.weights": "random", "augment.preset": "heavy", "freeze.strategy": "full",
              "schedule.name": "onecycle", "batch_size": "auto", "decoded_cache": "on", "augment_on": "cpu",
              "adapt.method": "adabn", "adapt.target": "/data/paintings", "adapt.weight": 0.5,
              "freeze.lr_spread": 10.0, "data.text_column": "review", "data.label_column": "stars",
              "adapt.labelled": "/data/paintings_labelled", "adapt.labelled_use": "train",
              "early_stopping.metric": "val_acc"}
OTHER_TEXT.update({"name": "mine", "adapt.labelled": "/data/paintings_labelled"})
OTHER_STRUCTURED = {"evaluate_on": ["/data/cartoons"], "input_size": [3, 64, 64],
                    "freeze.stages": [{"epoch": 0, "trainable_from": -2}], "freeze.lr_scales": [0.1, 1.0]}
STRATEGY_FOR = {"freeze.k": "freeze_first_k", "freeze.every": "gradual", "freeze.head_epochs": "fine_tune",
                "freeze.stages": "custom", "freeze.lr_scales": "custom"}


def _other(s) -> object:
    if s.path in OTHER_TEXT:
        return OTHER_TEXT[s.path]
    if isinstance(s.default, bool):
        return not s.default
    if isinstance(s.default, int):
        return s.default + 2
    if isinstance(s.default, float):
        return s.default / 2 if s.default else 0.05
    if s.leaf is not None and s.leaf.meta.options:
        return next(o for o in s.leaf.meta.options if o not in (s.default, "custom"))
    if s.path in OTHER_STRUCTURED:
        return OTHER_STRUCTURED[s.path]
    if s.default is None and int in s.kinds:
        return 2
    raise AssertionError(f"no other value for {s.path}: add one to OTHER_TEXT")


@pytest.mark.parametrize("s", [s for s in SETTINGS if s.in_run], ids=lambda s: s.path)
def test_every_run_setting_reaches_the_run_config(s) -> None:
    """A setting that the run never sees would be a widget that does nothing: each one changes the config."""
    experiment = Experiment("0" * 12)
    if s.path in STRATEGY_FOR:
        experiment.set("freeze.strategy", STRATEGY_FOR[s.path])
        if STRATEGY_FOR[s.path] == "custom":
            experiment.set("freeze.stages", [{"epoch": 0, "trainable_from": -1}])
    if s.path == "adapt.method":
        experiment.set("adapt.target", "/data/paintings")  # adabn needs target pictures
    before = experiment.run_config().to_dict()
    experiment.set(s.path, _other(s))
    after = experiment.run_config().to_dict()
    assert after != before
    if s.path not in ("augment.preset", "freeze.strategy"):
        node = after
        for key in s.path.split("."):
            node = node[key]
        assert json.loads(json.dumps(node)) == experiment.get(s.path)


def test_the_default_experiment_is_the_default_run() -> None:
    config = Experiment("0" * 12).run_config()
    assert config.freeze == FreezeConfig()  # feature extraction, the strategy's own lr spread
    assert config == RunConfig(data=config.data)  # every field at the config's own default
    assert (config.epochs, config.optimizer.lr, config.batch_size, config.augment.preset) == (5, 3e-3, 32, "light")


def test_a_strategys_own_settings_go_into_the_run_only_with_it_and_are_kept_across_a_switch() -> None:
    experiment = Experiment("0" * 12)
    experiment.set("freeze.strategy", "freeze_first_k")
    experiment.set("freeze.k", 3)
    assert experiment.run_config().freeze.k == 3
    experiment.set("freeze.strategy", "full")
    assert experiment.run_config().freeze.k is None  # full reads no k: the run's config holds the default
    experiment.set("freeze.strategy", "freeze_first_k")
    assert experiment.run_config().freeze.k == 3


def test_unknown_settings_and_wrong_types_are_refused_by_name() -> None:
    experiment = Experiment("0" * 12)
    with pytest.raises(ExperimentError, match="no setting 'train.lr'"):
        experiment.get("train.lr")
    with pytest.raises(ExperimentError, match="no setting"):
        experiment.set("optimizer.lrr", 1e-3)
    for path, value in (("epochs", "5"), ("epochs", True), ("epochs", 2.5), ("optimizer.lr", float("nan")),
                        ("optimizer.lr", "1e-3"), ("app.rank_models", "resnet50"), ("compile", 1)):
        with pytest.raises(ExperimentError, match=path.replace(".", r"\.")):
            experiment.set(path, value)
        assert experiment.get(path) == setting(path).default  # a refused value leaves the setting as it was
    experiment.set("optimizer.lr", 1)  # a whole number is a learning rate too
    assert experiment.get("optimizer.lr") == 1.0 and isinstance(experiment.get("optimizer.lr"), float)


def test_an_invalid_combination_is_a_config_error_naming_the_field() -> None:
    experiment = Experiment("0" * 12)
    experiment.set("data.val", 0.6)
    experiment.set("data.test", 0.5)
    with pytest.raises(ConfigError, match="data.val/test"):
        experiment.run_config()
    experiment.set("data.val", 0.15)
    experiment.set("app.augment_json", "{not json")
    with pytest.raises(ConfigError, match="augmentation JSON"):
        experiment.run_config()


run_values = st.fixed_dictionaries({
    "epochs": st.integers(1, 1000), "optimizer.lr": st.floats(1e-7, 10), "batch_size": st.sampled_from([8, 32, "auto"]),
    "freeze.strategy": st.sampled_from(["feature_extraction", "freeze_first_k", "full", "gradual", "fine_tune"]),
    "freeze.k": st.integers(0, 6), "freeze.every": st.integers(1, 5), "freeze.head_epochs": st.integers(1, 4),
    "freeze.lr_spread": st.sampled_from([1.0, 10.0, 100.0]), "augment.preset": st.sampled_from(["light", "heavy", "none"]),
    "data.split_seed": st.integers(0, 2**31 - 1), "adapt.method": st.sampled_from(["none", "adabn"]),
    "adapt.target": st.just("/data/t"), "model.weights": st.sampled_from(["auto", "random", "/w.safetensors"]),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run_values)
def test_a_runs_settings_opened_again_make_the_same_run(values: dict) -> None:
    """"Open this run's settings" (Experiment.from_config) gives back exactly the run it came from."""
    experiment = Experiment("0" * 12)
    for path, value in values.items():
        experiment.set(path, value)
    config = experiment.run_config()
    assert Experiment.from_config(config).run_config() == config


def test_an_edited_augmentation_opens_as_the_users_json() -> None:
    experiment = Experiment("0" * 12)
    experiment.set("app.augment_json", json.dumps({"transforms": [{"__class_fullname__": "HorizontalFlip", "p": 0.3}]}))
    config = experiment.run_config()
    opened = Experiment.from_config(config)
    assert opened.get("app.augment_json") and opened.run_config() == config


def test_the_store_keeps_settings_results_and_runs(tl_home) -> None:
    store = ExperimentStore()
    experiment = store.new({"epochs": 9})
    experiment.results["ranking"] = {"asked": ["a"], "scores": []}
    experiment.remember_run("abc123")
    experiment.remember_sweep("sweep1")
    store.save(experiment)
    loaded = store.load(experiment.id)
    assert (loaded.get("epochs"), loaded.results, loaded.runs, loaded.sweeps) == \
        (9, {"ranking": {"asked": ["a"], "scores": []}}, ["abc123"], ["sweep1"])
    assert json.loads(store.path(experiment.id).read_text())["config"]["epochs"] == 9  # readable by people too


def test_an_older_versions_file_is_read_with_its_old_names(tl_home) -> None:
    store = ExperimentStore()
    store.root.mkdir(parents=True, exist_ok=True)
    old = {"id": "a" * 12, "created": 1.0, "updated": 2.0, "config": None, "choices": {
        "train.epochs": 7, "train.lr": 1e-4, "model.random_init": True, "train.run_id": "run1",
        "compare.sweep": "sw1", "compare.strategies": ["full"], "compare.text.optimizer.lr": "1e-3, 1e-4",
        "data.kind": "Folder on this computer", "gone.setting": 3, "train.compile": "yes",
        "compare.what": "adaptation methods"}}
    store.path("a" * 12).write_text(json.dumps(old))
    loaded = store.load("a" * 12)
    assert (loaded.get("epochs"), loaded.get("optimizer.lr"), loaded.get("model.weights")) == (7, 1e-4, "random")
    assert loaded.runs == ["run1"] and loaded.sweeps == ["sw1"]
    assert loaded.get("app.vary.freeze.strategy") == ["full"] and loaded.get("app.vary.optimizer.lr") == "1e-3, 1e-4"
    assert loaded.get("app.compare_what") == "adapt.method"  # named in words before grids
    assert loaded.get("compile") is False  # a value of the wrong type falls back to the default, not a crash


def test_bad_ids_and_damaged_files_are_one_line(tl_home) -> None:
    store = ExperimentStore()
    with pytest.raises(ExperimentError, match="not an experiment id"):
        store.load("../etc/passwd")
    with pytest.raises(ExperimentError, match="no experiment"):
        store.load("b" * 12)
    store.root.mkdir(parents=True, exist_ok=True)
    for text in ("{", "[]", json.dumps({"id": "c" * 12, "values": 3})):
        store.path("c" * 12).write_text(text)
        with pytest.raises(ExperimentError, match="damaged"):
            store.load("c" * 12)
    experiment = store.new()
    experiment.set("app.folder", "x" * 4000)
    experiment.set("app.ray_address", "y" * 4000)
    experiment.results["estimates"] = {str(i): "z" * 4000 for i in range(600)}
    with pytest.raises(ExperimentError, match="too large"):
        store.save(experiment)


def test_one_absurd_value_costs_that_value_not_the_experiment(tl_home) -> None:
    """Issue 37's probe: `values.epochs = 10**4000` made the whole file "damaged", so every other setting was lost
    (and past 4,300 digits Python refuses to read the number at all)."""
    store = ExperimentStore()
    experiment = store.new()
    experiment.set("optimizer.lr", 3e-4)
    experiment.set("epochs", 7)
    store.save(experiment)
    path = store.path(experiment.id)
    saved = path.read_text()
    assert saved.count('"epochs": 7') == 2  # the value, and the run config kept beside it
    for absurd in ("1" + "0" * 4000, "1" + "0" * 5000, "1e999"):
        for edited in (saved.replace('"epochs": 7', f'"epochs": {absurd}', 1),  # the value alone
                       saved.replace('"epochs": 7', f'"epochs": {absurd}')):  # and the run config's copy
            path.write_text(edited)
            loaded = store.load(experiment.id)
            assert loaded.get("optimizer.lr") == 3e-4 and loaded.get("epochs") == Experiment("0" * 12).get("epochs")
    path.write_text(saved)
    assert store.load(experiment.id).get("epochs") == 7


def test_run_labels_tell_apart_runs_that_differ_in_method_or_a_setting() -> None:
    plain = Experiment("0" * 12)
    plain.set("data.source", "/data/photo")
    adapted = Experiment("1" * 12)
    adapted.values = dict(plain.values)
    adapted.set("adapt.method", "adabn")
    adapted.set("adapt.target", "/data/paintings")
    adapted.set("optimizer.lr", 1e-3)
    a, b = plain.run_config().to_dict(), adapted.run_config().to_dict()
    assert run_label(a) == "photo · tf_efficientnet_lite0 · feature extraction"
    assert run_label(b, a) == "photo · tf_efficientnet_lite0 · feature extraction · adapt adabn · lr 0.001"
    assert run_label(a, a) == run_label(a)  # nothing differs from itself


def test_run_labels_say_what_an_unset_value_means() -> None:
    """The issue's labels: "k none · spread none", and freeze_first_half shown as "freeze first k · k none"."""
    from tlcore.config import RunConfig

    base = RunConfig().to_dict()
    half = {**base, "freeze": {**base["freeze"], "strategy": "freeze_first_k", "k": None}}
    five = {**base, "freeze": {**base["freeze"], "strategy": "freeze_first_k", "k": 5, "lr_spread": 10.0}}
    assert run_label(half).endswith("· freeze first half")
    assert run_label(five, half).endswith("· freeze first 5 · spread 10")
    assert run_label(half, five).endswith("· freeze first half · spread the strategy's own")
    assert "none" not in run_label(half, five)
    from tlcore.experiments.grid import expand, parse_axis

    cells = expand(RunConfig.from_dict({"freeze": {"strategy": "freeze_first_k"}}), [parse_axis("freeze.k=none,2")])
    assert [c.label for c in cells] == ["k half", "k 2"]


def test_an_experiment_owns_the_runs_of_its_comparisons() -> None:
    experiment = Experiment("0" * 12)
    experiment.remember_run("r1")
    experiment.remember_sweep("cmp-1")
    assert experiment.owns("r1") and experiment.owns("r2", "cmp-1")
    assert not experiment.owns("r2") and not experiment.owns("r3", "cmp-2")


def test_an_experiment_file_of_the_older_version_keeps_what_its_defaults_meant(tmp_path) -> None:
    """Review: k was 1 and the spread 1 by the app's old defaults; with the config's own (half, the strategy's own)
    an old experiment's freeze_first_k would have changed meaning without a word."""
    store = ExperimentStore(tmp_path)
    experiment = store.new({"freeze.strategy": "freeze_first_k"})
    path = store.path(experiment.id)
    data = json.loads(path.read_text())
    data.pop("version")
    path.write_text(json.dumps(data))
    old = store.load(experiment.id)
    assert old.run_config().freeze.k == 1 and old.get("freeze.lr_spread") == 1.0
    assert store.load(store.new({"freeze.strategy": "freeze_first_k"}).id).run_config().freeze.k is None  # new files
