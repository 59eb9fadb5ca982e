"""Each run setting is declared once, on the config field (issue 35): the experiment, the comparison axes and the
time estimate's key are derived from it, and reopening a run gives back every field of its config."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tlcore.experiments.compare import candidate_methods
from tlcore.config import ConfigError, RunConfig
from tlcore.errors import TransferLabError
from pages.experiment import PICKED_AXES, RUN_SETTINGS, SETTINGS, Experiment, ExperimentStore
from tlcore.experiments.grid import AXES, put_value
from tlcore.core.schema import Leaf, leaves
from tlcore.experiments.timing import timing_key

LEAVES = leaves(RunConfig)
NAMES = st.sampled_from(["a", "runs/x", "Ünïcode name", "folder with spaces"])


def _value_of(leaf: Leaf) -> st.SearchStrategy:
    """Any value the field's own declaration allows: its options, within its bounds, of its types."""
    meta, kinds = leaf.meta, leaf.kinds
    if meta.options is not None:
        drawn = st.sampled_from([o for o in meta.options if o != "custom"])
    elif meta.suggestions is not None and int not in kinds:  # open choices (model, augmentation preset)
        drawn = st.sampled_from(meta.suggestions)
    elif bool in kinds:
        drawn = st.booleans()
    elif int in kinds:
        low = int(meta.low) if meta.low is not None else 0
        high = int(meta.high) if meta.high is not None else low + 1000
        drawn = st.integers(low, min(high, low + 10_000))
        if str in kinds:  # batch_size: a number or "auto"
            drawn = drawn | st.just("auto")
    elif float in kinds:
        low = meta.low if meta.low is not None else 1e-3  # unbounded below: a value the field's own check takes
        high = meta.high if meta.high is not None else 1e6
        drawn = st.floats(low, high, allow_nan=False, allow_infinity=False)
    elif str in kinds:
        drawn = NAMES
    elif list in kinds and leaf.path == "input_size":
        drawn = st.tuples(st.just(3), st.integers(8, 512), st.integers(8, 512)).map(list)
    elif list in kinds and leaf.path == "evaluate_on":
        drawn = st.lists(NAMES, max_size=3)
    elif list in kinds and leaf.path == "freeze.stages":
        drawn = st.lists(st.integers(-3, 2), min_size=1, max_size=3).map(
            lambda starts: [{"epoch": i * 2, "trainable_from": t} for i, t in enumerate(starts)])
    elif list in kinds and leaf.path == "freeze.lr_scales":
        drawn = st.none()  # scales must match the model's groups: checked when it is built
    elif list in kinds and leaf.path == "augment.transforms":
        drawn = st.just(RunConfig().augment.to_dict()["transforms"])
    else:
        raise AssertionError(f"{leaf.path}: declare how its values are drawn here")
    return st.none() | drawn if type(None) in kinds else drawn


def _repaired(data: dict) -> dict:
    """The draws made into a valid run where fields depend on each other (each rule is the config's own)."""
    if data["freeze"]["strategy"] == "custom" or data["freeze"]["stages"] is not None:
        data["freeze"]["strategy"] = "custom"
        data["freeze"]["stages"] = data["freeze"]["stages"] or [{"epoch": 0, "trainable_from": -1}]
    data["schedule"]["warmup_epochs"] = min(data["schedule"]["warmup_epochs"], data["epochs"] - 0.5)
    data["data"]["val"], data["data"]["test"] = min(data["data"]["val"], 0.4), min(data["data"]["test"], 0.4)
    if data["early_stopping"]["metric"].startswith("labelled"):
        data["adapt"]["labelled"], data["adapt"]["labelled_use"] = "few_labels", "choose"
    if data["adapt"]["method"] != "none":
        data["adapt"]["target"] = data["adapt"]["target"] or "paintings"
    if data["distributed"]["nproc_per_node"] > 1:
        data["adapt"]["method"] = "none"
        data["batch_size"] = max(data["batch_size"], data["distributed"]["nproc_per_node"]) \
            if isinstance(data["batch_size"], int) else 64
    data["augment"] = {"preset": data["augment"]["preset"] or "light"} if data["augment"]["preset"] else \
        data["augment"]
    return data


@st.composite
def run_configs(draw) -> RunConfig:
    data: dict = {}
    for leaf in LEAVES:
        put_value(data, leaf.path, draw(_value_of(leaf)))
    return RunConfig.from_dict(_repaired(data))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=run_configs())
def test_reopening_a_run_gives_back_every_field_of_its_config(config: RunConfig, tmp_path_factory) -> None:
    """Every field of the schema, drawn within its declaration, survives the experiment and its file."""
    opened = Experiment.from_config(config)
    mine = replace(config, name="")  # a run's name is its own: the next run of the experiment is not named after it
    assert opened.run_config() == mine
    store = ExperimentStore(tmp_path_factory.mktemp("experiments"))
    store.save(opened)
    assert store.load(opened.id).run_config() == mine


def test_a_run_with_a_non_default_value_in_every_field_comes_back_whole() -> None:
    """The issue's case: the 19 settings that were lost, each away from its default."""
    data = RunConfig().to_dict()
    changed = {"optimizer.name": "sgd", "seed": 3, "precision": "fp32", "model.head.hidden": 256,
               "model.head.dropout": 0.2, "input_size": [3, 160, 160], "optimizer.label_smoothing": 0.05,
               "optimizer.grad_clip": 2.0, "optimizer.momentum": 0.8, "schedule.warmup_epochs": 1.0,
               "schedule.step_size": 2, "schedule.gamma": 0.5, "early_stopping.min_delta": 0.01,
               "feature_views": 3, "feature_cache": False, "evaluate_on": ["paintings"], "num_workers": 2,
               "decoded_cache_max_gb": 5.0, "freeze.strategy": "freeze_first_k", "freeze.k": 2,
               "adapt.temperature": 3.0, "adapt.max_target": 100, "model.fine_groups": True}
    for path, value in changed.items():
        put_value(data, path, value)
    config = RunConfig.from_dict(data)
    back = Experiment.from_config(config).run_config().to_dict()
    lost = {path for path in changed if _at(back, path) != changed[path]}
    assert not lost


def _at(data: dict, path: str) -> object:
    for key in path.split("."):
        data = data[key]
    return list(data) if isinstance(data, tuple) else data


def test_every_field_declares_how_people_see_it() -> None:
    """A field added without `setting(...)` would have no label or help in the app: the schema refuses it."""
    undeclared = [leaf.path for leaf in LEAVES if leaf.meta.label == leaf.path.split(".")[-1] or not leaf.meta.help]
    assert not undeclared
    assert {s.path for s in RUN_SETTINGS} | {"augment.transforms"} == {leaf.path for leaf in LEAVES}


@pytest.mark.parametrize("leaf", [leaf for leaf in LEAVES if leaf.meta.low is not None or leaf.meta.high is not None],
                         ids=lambda leaf: leaf.path)
def test_a_value_outside_the_declared_bounds_is_refused_naming_the_field(leaf: Leaf) -> None:
    """The bounds the widget offers are the bounds the config accepts: just inside is valid, just outside is not."""
    whole = int in leaf.kinds
    step = 1 if whole else max(abs(leaf.meta.high or leaf.meta.low or 1) * 1e-3, 1e-9)
    for bound, outside in ((leaf.meta.low, -step), (leaf.meta.high, step)):
        if bound is None:
            continue
        inside = _valid_with(leaf, int(bound) if whole else float(bound))
        assert inside is None, inside
        refused = _valid_with(leaf, (int(bound) if whole else float(bound)) + outside)
        assert refused is not None and leaf.path.split(".")[-1] in refused, (leaf.path, refused)


def _valid_with(leaf: Leaf, value: object) -> str | None:
    data = RunConfig().to_dict()
    if leaf.meta.strategies:  # a setting only its strategy reads
        data["freeze"]["strategy"] = leaf.meta.strategies[0]
    put_value(data, leaf.path, value)
    if leaf.path == "schedule.warmup_epochs":
        data["epochs"] = 1000
    if leaf.path.startswith("adapt.") and leaf.path != "adapt.method":
        put_value(data, "adapt.method", "mcc")
        put_value(data, "adapt.target", "paintings")
    if leaf.path == "distributed.nproc_per_node":
        data["batch_size"] = 4096
    if leaf.path in ("data.val", "data.test"):
        data["data"]["test" if leaf.path == "data.val" else "val"] = 0.0
    try:
        RunConfig.from_dict(data)
    except TransferLabError as exc:  # ConfigError, or the section's own (the head's, adaptation's)
        return str(exc)
    return None


def test_comparison_axes_and_their_suggestions_come_from_the_fields() -> None:
    declared = {leaf.path for leaf in LEAVES if leaf.meta.axis is not None}
    assert set(AXES) == declared
    assert "optimizer.name" in PICKED_AXES and PICKED_AXES["optimizer.name"] == ["adamw", "sgd"]
    vary = {s.path: s.default for s in SETTINGS if s.path.startswith("app.vary.")}
    assert set(vary) == {f"app.vary.{path}" for path in AXES}
    assert vary["app.vary.optimizer.lr"] == "3e-3, 1e-3, 3e-4"


def test_the_time_key_ignores_exactly_the_fields_declared_free_of_cost() -> None:
    base = RunConfig()
    for leaf in LEAVES:
        if leaf.meta.cost or leaf.path == "name":
            continue
        data = base.to_dict()
        other = {"optimizer.lr": 1e-4, "seed": 5, "schedule.name": "step", "early_stopping.patience": 0,
                 "freeze.lr_spread": 10.0, "evaluate_on": ["x"], "adapt.weight": 3.0}.get(leaf.path)
        if other is None:
            continue
        put_value(data, leaf.path, other)
        assert timing_key(RunConfig.from_dict(data)) == timing_key(base), leaf.path
    assert timing_key(RunConfig.from_dict({**base.to_dict(), "batch_size": 16})) != timing_key(base)
    # a setting its strategy does not read costs nothing: k under feature extraction
    assert timing_key(RunConfig.from_dict({**base.to_dict(), "freeze": {"strategy": "feature_extraction", "k": 3}})) \
        == timing_key(base)
    assert timing_key(RunConfig.from_dict({**base.to_dict(), "freeze": {"strategy": "freeze_first_k", "k": 3}})) \
        != timing_key(RunConfig.from_dict({**base.to_dict(), "freeze": {"strategy": "freeze_first_k", "k": 1}}))


@pytest.mark.parametrize("freeze, epochs, offers_dann", [
    ({"strategy": "feature_extraction"}, 5, False),
    ({"strategy": "fine_tune", "head_epochs": 1}, 1, False),  # the case: head only in its one epoch
    ({"strategy": "fine_tune", "head_epochs": 3}, 3, False),
    ({"strategy": "fine_tune", "head_epochs": 1}, 2, True),
    ({"strategy": "gradual", "every": 4}, 4, False),
    ({"strategy": "gradual", "every": 1}, 2, True),
    ({"strategy": "full"}, 1, True),
    ({"strategy": "custom", "stages": [{"epoch": 0, "trainable_from": -1}]}, 3, True),  # groups unknown: offered
])
def test_head_only_has_one_definition_from_the_freeze_plan(freeze: dict, epochs: int, offers_dann: bool) -> None:
    """"Auto" offers DANN exactly where the run's own check would accept it (before: by the strategy's name)."""
    config = RunConfig.from_dict({"freeze": freeze, "epochs": epochs, "adapt": {"method": "none"}})
    assert ("dann" in candidate_methods(config)) is offers_dann
    assert config.freeze.trains_only_head(epochs, 6) is (not offers_dann or freeze["strategy"] == "custom")


def test_a_plan_written_as_stages_is_a_custom_freeze_setting(tmp_path: Path) -> None:
    config = RunConfig.from_dict({"freeze": {"stages": [{"epoch": 0, "trainable_from": -1},
                                                        {"epoch": 2, "trainable_from": 0}]}})
    assert config.freeze.strategy == "custom" and config.freeze.name == "custom plan"
    plan = config.freeze.plan(4)
    assert [plan.trainable_from(e, 4) for e in range(4)] == [3, 3, 0, 0]
    with pytest.raises(ConfigError, match="freeze.stages"):
        RunConfig.from_dict({"freeze": {"strategy": "custom"}})


def test_the_python_api_may_give_freeze_as_plain_data() -> None:
    assert RunConfig(freeze={"strategy": "full"}).freeze.strategy == "full"
    assert RunConfig(freeze={"stages": [{"epoch": 0, "trainable_from": -1}]}).freeze.name == "custom plan"
    with pytest.raises(ConfigError, match="freeze"):
        RunConfig(freeze={"strategy": "full", "speed": 3})


def test_a_plan_printed_by_freeze_show_is_a_run_config_freeze_and_a_named_strategy_drops_stages() -> None:
    """Review: `freeze show` printed {"strategy": "gradual", "stages": [...]}, which the typed freeze refused; and a
    custom plan opened in the app could not be left for a named strategy (its stages stuck)."""
    plan = {"strategy": "gradual", "stages": [{"epoch": 0, "trainable_from": -1}, {"epoch": 1, "trainable_from": -2}],
            "lr_spread": 1.0, "lr_scales": None, "train_bn": False}
    config = RunConfig.from_dict({"freeze": plan})
    assert config.freeze.custom and config.freeze.strategy == "custom"
    opened = Experiment.from_config(config)
    opened.set("freeze.strategy", "full")
    left = opened.run_config().freeze
    assert (left.strategy, left.stages, left.custom) == ("full", None, False)
    opened.set("freeze.strategy", "custom")  # and back: the plan was kept in the experiment
    assert opened.run_config().freeze == config.freeze


def test_a_config_still_reads_after_its_module_is_dropped_by_a_reloading_server() -> None:
    """A browser walk: Streamlit's file watcher drops changed project modules from `sys.modules` while the pages
    hold their classes; every config read then failed with "NameError: name 'DataConfig' is not defined" (a red
    traceback over the Compare page's results), since the field types were resolved through `sys.modules` anew."""
    import subprocess
    import sys

    from conftest import ROOT

    script = ("import sys\nfrom tlcore.config import RunConfig\n"
              "data = RunConfig().to_dict()\nRunConfig.from_dict(data)\n"
              "for name in [m for m in sys.modules if m.startswith('tlcore')]:\n    del sys.modules[name]\n"
              "print(RunConfig.from_dict({**data, 'epochs': 4}).epochs)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "4", result.stderr[-800:]
