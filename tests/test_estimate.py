"""Time estimates before a run: measured steps on this machine, put together the way an epoch spends time."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace
from pathlib import Path

import pytest
import torch

from tlcore.experiments import estimate as estimate_module
from tlcore.config import RunConfig
from tlcore.experiments.estimate import TimeEstimate, estimate_time, format_duration
from tlcore.experiments.timing import timing_key
from tlcore.training.train import prepare, train
from test_cli import tlcore
from train_fixtures import make_colour_classes, tiny_config


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_colour_classes(tmp_path_factory.mktemp("colours"), per_class=20)


def test_an_epoch_is_its_training_steps_plus_its_validation(colours: Path, monkeypatch) -> None:
    """With fixed step times the arithmetic shows: pictures / batch size steps, plus each pass's start-up."""
    monkeypatch.setattr(estimate_module, "_forward_seconds", lambda loop, measure: (0.5, 0.25))
    monkeypatch.setattr(estimate_module, "_train_step_seconds",
                        lambda loop, config, epoch, measure, warm_up=True: (2.0, 1.0, 100))
    monkeypatch.setattr(estimate_module, "_checkpoint_seconds", lambda loop: 0.125)
    config = tiny_config(colours, epochs=3, batch_size=8)  # 60 pictures: 30 train, 15 val, 15 test
    result = estimate_time(config)
    assert result.epoch_s == pytest.approx((2.0 * 30 / 8 + 1.0 + 0.5 * 15 / 8 + 0.25 + 0.125,) * 3)
    assert result.finish_s == pytest.approx(0.5 * 15 / 8 + 0.25)  # the test split's evaluation, after the epochs
    assert result.total_s == pytest.approx(result.setup_s + sum(result.epoch_s) + result.finish_s)
    assert len(result.epoch_s) == 3


def test_stages_between_the_measured_ones_are_interpolated_by_what_trains(colours: Path, monkeypatch) -> None:
    """Gradual unfreezing: first and last stage measured, the ones between lie between them, growing."""
    calls = []

    def step_seconds(loop, config, epoch, measure, warm_up=True):
        calls.append(epoch)
        groups = loop.prep.built.groups
        start = loop.prep.plan.trainable_from(epoch, len(groups))
        trainable = sum(g.params for g in groups[start:])
        return trainable / 1e5, 0.0, trainable  # a step costs in proportion to what trains

    monkeypatch.setattr(estimate_module, "_forward_seconds", lambda loop, measure: (0.0, 0.0))
    monkeypatch.setattr(estimate_module, "_train_step_seconds", step_seconds)
    monkeypatch.setattr(estimate_module, "_checkpoint_seconds", lambda loop: 0.0)
    config = tiny_config(colours, epochs=4, freeze={"strategy": "gradual", "every": 1})
    result = estimate_time(config)
    assert calls == [0, 3]  # only the first and the last stage are measured
    prep = prepare(config)
    groups = prep.built.groups
    trainable = [sum(g.params for g in groups[prep.plan.trainable_from(e, len(groups)):]) for e in range(4)]
    assert len(set(trainable)) == 4  # four different stages, two of them never measured
    # linear in what trains, as the stub's cost is: the interpolated stages come out exact
    assert result.epoch_s == pytest.approx(tuple(t / 1e5 * 30 / 8 for t in trainable))


def test_a_real_measurement_leaves_autograd_on_and_nothing_on_disk(colours: Path, tl_home: Path) -> None:
    before = sorted(p.relative_to(tl_home) for p in tl_home.rglob("*"))
    result = estimate_time(tiny_config(colours, epochs=2))
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    assert len(result.epoch_s) == 2 and all(s > 0 for s in result.epoch_s) and result.setup_s > 0
    assert "measured on this machine's cpu" in result.basis
    after = sorted(p.relative_to(tl_home) for p in tl_home.rglob("*") if "splits" not in p.parts)
    assert after == [p for p in before if "splits" not in p.parts]
    assert TimeEstimate.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_head_only_runs_pay_extraction_once_then_read_the_cache(colours: Path, tmp_path: Path) -> None:
    config = tiny_config(colours, epochs=3, freeze={"strategy": "feature_extraction"})
    first = estimate_time(config)
    assert "features extracted once" in first.basis
    train(config, tmp_path / "run")  # fills the feature cache
    second = estimate_time(config)
    assert "features already cached" in second.basis
    assert second.setup_s < first.setup_s or second.setup_s < 0.5
    assert all(s < 0.1 for s in second.epoch_s)


def test_durations_read_as_people_say_them() -> None:
    assert [format_duration(s) for s in (12.4, 89, 90, 209, 594, 600, 5399, 7200)] == [
        "12 s", "89 s", "1 min 30 s", "3 min 30 s", "9 min 50 s", "10 min", "90 min", "2.0 h"]  # 209 s was "3 min"


def test_cli_estimates_several_configs_one_line_each(colours: Path, tl_home: Path, tmp_path: Path) -> None:
    paths = []
    for strategy in ("full", "feature_extraction"):
        paths.append(tmp_path / f"{strategy}.json")
        paths[-1].write_text(tiny_config(colours, epochs=2, freeze={"strategy": strategy}).to_json())
    result = tlcore("estimate", *map(str, paths), "--json", home=tl_home)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2 and all(len(line["epoch_s"]) == 2 for line in lines)
    assert "features extracted once" in lines[1]["basis"] and "features" not in lines[0]["basis"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(paths[0].read_text()), "epochs": 0}))
    failed = tlcore("estimate", str(paths[0]), str(bad), home=tl_home)
    assert failed.returncode != 0 and failed.stdout == "" and "epochs" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_the_cli_says_each_phase_of_the_measuring_with_its_count(colours: Path, tl_home: Path, tmp_path: Path) -> None:
    """A page follows the progress file: every phase of both measurements, in order, counted over both."""
    paths = []
    for strategy in ("full", "feature_extraction"):
        paths.append(tmp_path / f"{strategy}.json")
        paths[-1].write_text(tiny_config(colours, epochs=2, freeze={"strategy": strategy}).to_json())
    progress = tmp_path / "progress.jsonl"
    result = tlcore("estimate", *map(str, paths), "--json", "--progress", str(progress), home=tl_home)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    phases = estimate_module.ESTIMATE_PHASES  # the second setting is timed on the model the first one built
    assert [line["done"] for line in lines] == list(range(len(phases) + 1))
    assert {line["total"] for line in lines} == {len(phases) + 1} and {line["phase"] for line in lines} == {"estimate"}
    assert [line["words"] for line in lines] == ([f"setting 1 of 2: {words}" for words in phases]
                                                 + ["setting 2 of 2: timing training steps"])
    alone = tmp_path / "alone.jsonl"
    assert tlcore("estimate", str(paths[0]), "--progress", str(alone), home=tl_home).returncode == 0
    assert [json.loads(line)["words"] for line in alone.read_text().splitlines()] == list(phases)


def test_a_later_seed_finds_the_features_its_own_run_cached(colours: Path, tmp_path, monkeypatch) -> None:
    from tlcore.experiments.estimate import _features_cached
    from tlcore.training.train import build_loop

    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    config = tiny_config(colours, seed=1, freeze={"strategy": "feature_extraction"}, epochs=1)
    train(config, tmp_path / "run")
    assert _features_cached(build_loop(prepare(config)))  # it looked for seed 1's views under seed 1000's keys


def test_batch_size_auto_is_estimated_at_the_batch_the_run_would_use(colours: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    estimate = estimate_time(tiny_config(colours, batch_size="auto", epochs=1), measure=1)
    assert estimate.typical_epoch_s > 0 and "steps of 32 pictures" in estimate.basis


def _counting_estimates(monkeypatch) -> list[RunConfig]:
    """`estimate_time` replaced by one that records what it measured: 1 s to start, 2 s per epoch."""
    measured: list[RunConfig] = []

    def fake(config: RunConfig, *, measure: int = 3, on_phase=None, shared=None) -> TimeEstimate:
        measured.append(config)
        return TimeEstimate(1.0, (2.0,) * config.epochs, "counted")

    monkeypatch.setattr(estimate_module, "estimate_time", fake)
    return measured


def test_a_grid_is_measured_once_per_step_cost_not_per_learning_rate_or_seed(colours: Path, monkeypatch) -> None:
    """2 strategies x 2 learning rates x 2 seeds x 2 epoch counts: 16 runs, 2 measurements, each at the most epochs."""
    measured = _counting_estimates(monkeypatch)
    grid = [tiny_config(colours, freeze={"strategy": s}, optimizer={"lr": lr}, seed=seed, epochs=epochs,
                        schedule={"name": schedule}, name=f"{s}-{lr}-{seed}")
            for s in ("feature_extraction", "full") for lr in (1e-3, 1e-2) for seed in (0, 1) for epochs in (2, 5)
            for schedule in ("constant",)]
    seen = []
    results = estimate_module.estimate_times(grid, on_each=lambda index, e: seen.append(index))
    assert sorted(c.freeze.strategy for c in measured) == ["feature_extraction", "full"]
    assert all(c.epochs == 5 for c in measured)  # the shorter runs take the longer one's first epochs
    assert [len(r.epoch_s) for r in results] == [c.epochs for c in grid]
    assert [r.total_s for r in results] == [1.0 + 2.0 * c.epochs for c in grid]
    assert seen == list(range(len(grid)))


def test_what_changes_a_steps_cost_is_measured_again(colours: Path, monkeypatch) -> None:
    measured = _counting_estimates(monkeypatch)
    base = tiny_config(colours, freeze={"strategy": "full"})
    others = [tiny_config(colours, freeze={"strategy": "full"}, batch_size=4),
              tiny_config(colours, freeze={"strategy": "full"}, input_size=[3, 48, 48]),
              tiny_config(colours, freeze={"strategy": "full"}, augment={"preset": "light"}),
              tiny_config(colours, freeze={"strategy": "freeze_first_k", "k": 1}),
              tiny_config(colours, freeze={"strategy": "full"}, model={"name": "test_vit", "weights": "random"}),
              tiny_config(colours, freeze={"strategy": "full"}, adapt={"method": "adabn", "target": str(colours)})]
    estimate_module.estimate_times([base] + others)
    assert len(measured) == 1 + len(others)
    assert len({timing_key(c) for c in [base] + others}) == 1 + len(others)


def test_a_staged_plan_keeps_its_epochs_apart(colours: Path, monkeypatch) -> None:
    """Under gradual unfreezing, 1 epoch may train the head alone (the fast path) where 4 epochs do not: the
    one-epoch run is not read off the four-epoch measurement."""
    measured = _counting_estimates(monkeypatch)
    runs = [tiny_config(colours, freeze={"strategy": "gradual"}, epochs=e) for e in (1, 4)]
    results = estimate_module.estimate_times(runs)
    assert [c.epochs for c in measured] == [1, 4] and [len(r.epoch_s) for r in results] == [1, 4]
    one_stage = [tiny_config(colours, freeze={"strategy": "full"}, epochs=e) for e in (1, 4)]
    assert timing_key(one_stage[0]) == timing_key(one_stage[1]) and timing_key(runs[0]) != timing_key(runs[1])


def test_a_shorter_estimate_cannot_speak_for_more_epochs() -> None:
    estimate = TimeEstimate(1.0, (2.0, 3.0), "x")
    assert estimate.for_epochs(1) == TimeEstimate(1.0, (2.0,), "x")
    with pytest.raises(ValueError, match="2 epoch"):
        estimate.for_epochs(3)


def test_adabn_adds_a_forward_over_the_training_pictures_and_one_over_the_targets(colours: Path, tmp_path: Path,
                                                                                 monkeypatch) -> None:
    target = make_colour_classes(tmp_path / "target", per_class=8)  # 24 target pictures
    monkeypatch.setattr(estimate_module, "_forward_seconds", lambda loop, measure: (0.5, 0.25))
    monkeypatch.setattr(estimate_module, "_train_step_seconds", lambda loop, config, epoch, measure, warm_up=True: (2.0, 1.0, 100))
    monkeypatch.setattr(estimate_module, "time", SimpleNamespace(perf_counter=lambda: 0.0))  # building takes 0 s
    plain = estimate_module.estimate_time(tiny_config(colours, epochs=2))
    adapted = estimate_module.estimate_time(tiny_config(colours, epochs=2, adapt={"method": "adabn",
                                                                                 "target": str(target)}))
    assert adapted.epoch_s == plain.epoch_s
    # 30 training pictures and 24 target pictures in batches of 8, plus each pass's start
    assert adapted.setup_s - plain.setup_s == pytest.approx(0.5 * (30 / 8 + 24 / 8) + 2 * 0.25)
    assert "AdaBN" in adapted.basis and "AdaBN" not in plain.basis


def _finished_run(store, config, epoch_seconds: float) -> str:
    import os

    run = store.create(config)
    store.claim(run.id, os.getpid())
    store.add_event(run.id, "epoch", "epoch 1", {"epoch": 0, "epoch_seconds": epoch_seconds})
    store.finish(run.id, "succeeded")
    return run.id


def test_the_time_note_quotes_a_run_of_the_same_step_cost_and_the_experiments_own_first(tl_home) -> None:
    """The issue's case: freeze first k with k = 5 quoted a comparison's freeze_first_half run (same strategy name);
    the experiment's own identical run was ignored."""
    from tlcore.runs import RunStore
    from tlcore.experiments.timing import measured_epoch_seconds

    store = RunStore()
    base = RunConfig().to_dict()
    mine = RunConfig.from_dict({**base, "freeze": {"strategy": "freeze_first_k", "k": 5}, "seed": 1})
    own = _finished_run(store, mine, 12.0)
    other_lr = _finished_run(store, RunConfig.from_dict({**base, "freeze": {"strategy": "freeze_first_k", "k": 5},
                                                         "optimizer": {"lr": 1e-4}}), 14.0)
    half = _finished_run(store, RunConfig.from_dict({**base, "freeze": {"strategy": "freeze_first_k"}}), 30.1)
    assert half  # the newest run of the strategy, at another step cost
    assert measured_epoch_seconds(store, mine)[:2] == (14.0, other_lr)  # the newest of the same cost, not k = half
    assert measured_epoch_seconds(store, mine, first=[own])[:2] == (12.0, own)  # the experiment's own first
    assert measured_epoch_seconds(store, RunConfig.from_dict({**base, "batch_size": 8})) is None


def test_a_stored_runs_step_cost_is_read_once_not_on_every_rerun_of_the_page(tl_home, monkeypatch) -> None:
    """Each rerun of the Train and Compare pages parsed every finished run's config again to find one of the same
    step cost: about 10 ms a run, a second a rerun with a hundred runs."""
    from tlcore.runs import RunStore
    from tlcore.experiments import timing

    store = RunStore()
    base = RunConfig().to_dict()
    for lr in (1e-3, 1e-4, 1e-5):
        _finished_run(store, RunConfig.from_dict({**base, "optimizer": {"lr": lr}}), 10.0)
    parsed = []
    real = RunConfig.from_dict
    monkeypatch.setattr(timing.RunConfig, "from_dict", staticmethod(lambda data: parsed.append(1) or real(data)))
    mine = real({**base, "seed": 3})
    assert timing.measured_epoch_seconds(store, mine)[0] == 10.0
    read = len(parsed)
    assert 1 <= read <= 3
    for _ in range(3):  # three reruns of the page
        assert timing.measured_epoch_seconds(store, mine)[0] == 10.0
    assert len(parsed) == read


def test_every_epoch_counts_its_checkpoint_writes_timed_on_the_data_folders_disk(colours: Path, tl_home: Path,
                                                                                monkeypatch) -> None:
    """A head on a cached text encoder's features spent 1.2 s of a 1.6 s run writing its 90 MB model three times
    an epoch, and the estimate counted 0.05 s an epoch (real/estimated 5.4)."""
    from tlcore.training.prepare import prepare
    from tlcore.training.steps import build_loop

    loop = build_loop(prepare(tiny_config(colours, epochs=1)))
    saving = estimate_module._checkpoint_seconds(loop)
    assert saving > 0 and not [p for p in tl_home.iterdir() if p.name.startswith(".estimate-")]  # nothing left
    monkeypatch.setattr(estimate_module, "_checkpoint_seconds", lambda loop: 0.75)
    head_only = estimate_time(tiny_config(colours, epochs=2, freeze={"strategy": "feature_extraction"}))
    assert head_only.epoch_s == pytest.approx((estimate_module.HEAD_EPOCH_S + 0.75,) * 2)


def test_a_comparisons_strategies_are_timed_on_one_built_model_each_stage_once(colours: Path, tl_home: Path,
                                                                             monkeypatch) -> None:
    """The issue's case: estimating a comparison of 5 strategies built the model and timed its forward pass 5
    times (34 s for 100 s of work). Now once; a stage two strategies share (full, and freeze_first_k with k = 0)
    is timed once; and each estimate is what it would be alone."""
    monkeypatch.setattr(estimate_module, "_forward_seconds", lambda loop, measure: (0.5, 0.25))
    monkeypatch.setattr(estimate_module, "_checkpoint_seconds", lambda loop: 0.125)
    monkeypatch.setattr(estimate_module, "time", SimpleNamespace(perf_counter=lambda: 0.0))  # building takes 0 s
    stages: list[int] = []

    def step_seconds(loop, config, epoch, measure, warm_up=True):
        groups = loop.prep.built.groups
        start = loop.prep.plan.trainable_from(epoch, len(groups))
        stages.append(start)
        return 0.1 * (len(groups) - start), 0.01, sum(g.params for g in groups[start:])

    monkeypatch.setattr(estimate_module, "_train_step_seconds", step_seconds)
    built = []
    real_prepare = estimate_module.prepare
    monkeypatch.setattr(estimate_module, "prepare", lambda config: built.append(config) or real_prepare(config))
    configs = [tiny_config(colours, epochs=3, freeze=freeze, optimizer={"lr": lr})
               for freeze, lr in (({"strategy": "feature_extraction"}, 1e-3), ({"strategy": "full"}, 1e-3),
                                  ({"strategy": "freeze_first_k", "k": 0}, 1e-4),
                                  ({"strategy": "freeze_first_k", "k": 1}, 1e-3),
                                  ({"strategy": "gradual", "every": 1}, 1e-3))]
    together = estimate_module.estimate_times(configs)
    assert len(built) == 1 and sorted(stages) == sorted(set(stages))  # one build; no stage timed twice
    alone = []
    for config in configs:
        built.clear()
        alone.append(estimate_time(config))
        assert len(built) == 1
    assert together == alone
    assert len({e.total_s for e in together}) == 4  # full and k = 0 cost the same; the others do not


def test_two_steps_that_agree_are_enough_and_steps_that_do_not_are_timed_up_to_measure(monkeypatch) -> None:
    """A comparison's estimate took 30.2 s beside a busy loop (its bound is 30 s): a stage whose first two timed
    steps agree within 10% is not timed a third time; noisy steps still are, and their median is the estimate."""
    clock = [0.0]
    monkeypatch.setattr(estimate_module, "time", SimpleNamespace(perf_counter=lambda: clock[0]))

    def timed(durations: list[float]) -> tuple[tuple[float, float], int]:
        left = list(durations)
        taken = []

        def step(x, y) -> None:
            taken.append(left[0])
            clock[0] += left.pop(0)
        result = estimate_module._time_per_batch(lambda: iter([(0, 0)] * 10), 3, step, warm_up=False)
        return result, len(taken)

    # the first (a pass's start-up), then steps
    (per_batch, first), steps = timed([2.0, 1.0, 1.05, 9.0])
    assert steps == 3 and per_batch == pytest.approx(1.025) and first == pytest.approx(0.975)
    (per_batch, first), steps = timed([2.0, 1.0, 1.5, 1.2, 9.0])
    assert steps == 4 and per_batch == pytest.approx(1.2) and first == pytest.approx(0.8)
    assert timed([2.0, 1.0, 1.5, 1.2, 9.0, 9.0])[1] == 4  # never more than `measure` after the first


def test_an_estimate_kept_from_before_a_run_cached_the_features_drops_their_extraction(tl_home, colours) -> None:
    """Issue 36 walk: Compare reused the Train page's estimate of feature extraction (6 s, extraction counted) after
    the Train run had cached the features; the run took 2.6 s."""
    import time

    from tlcore.experiments.timing import EXTRACTED_ONCE, features_cached_by
    from tlcore.runs import RunStore

    store = RunStore()
    config = tiny_config(colours, epochs=2, freeze={"strategy": "feature_extraction"})
    measured_at = time.time()
    assert features_cached_by(store, config, measured_at - 1) is None
    run = _finished_run(store, config, 0.1)
    assert features_cached_by(store, config, measured_at - 1) == run  # finished after the estimate
    assert features_cached_by(store, config, time.time() + 1) is None  # finished before it: the estimate knew
    assert features_cached_by(store, replace(config, seed=5), measured_at - 1) is None  # other views
    assert features_cached_by(store, replace(config, optimizer=replace(config.optimizer, lr=0.5)),
                              measured_at - 1) == run  # the learning rate does not change the features
    kept = TimeEstimate(5.0, (0.1, 0.1), f"5 steps; {EXTRACTED_ONCE}", 0.5, 4.0)
    assert TimeEstimate.from_dict(kept.to_dict()) == kept
    cached = kept.for_epochs(2).with_features_cached(run)
    assert cached.setup_s == pytest.approx(1.0) and cached.extract_s == 0.0 and cached.total_s == pytest.approx(1.7)
    assert f"features cached by run {run}" in cached.basis and EXTRACTED_ONCE not in cached.basis


def test_a_head_only_setting_timed_after_a_training_one_still_finds_its_cached_features(colours: Path, tmp_path,
                                                                                      monkeypatch) -> None:
    """Review: the timed steps of `full` changed the shared model's weights and BatchNorm statistics, which the
    feature cache's key reads, so feature extraction estimated after it was told its cached features were not
    there. Each setting now starts from the model as built; settings that differ in `train_bn` are timed apart."""
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    head_only = tiny_config(colours, epochs=1, freeze={"strategy": "feature_extraction"})
    train(head_only, tmp_path / "run")  # caches the features
    assert "features already cached" in estimate_time(head_only, measure=1).basis
    full = tiny_config(colours, epochs=1, freeze={"strategy": "full"})
    together = estimate_module.estimate_times([full, head_only], measure=1)
    assert "features already cached" in together[1].basis, together[1].basis
    timed = []
    real = estimate_module._train_step_seconds
    monkeypatch.setattr(estimate_module, "_train_step_seconds",
                        lambda loop, config, *a, **k: timed.append(config.freeze.train_bn) or real(loop, config, *a, **k))
    first_k = [tiny_config(colours, epochs=1, freeze={"strategy": "freeze_first_k", "k": 1, "train_bn": bn})
               for bn in (False, True)]
    estimate_module.estimate_times(first_k, measure=1)
    assert timed == [False, True]  # the same stage, with and without frozen BatchNorm statistics updated


def test_a_shared_prepared_run_refuses_a_setting_of_other_data_model_or_step_cost(colours: Path, tmp_path: Path) -> None:
    """Review of issue 36: `replanned` took any config and timed it on the first setting's model and data, so a
    setting of another model, augmentation or data folder would have been quoted the first one's time."""
    from tlcore.training.prepare import replanned

    config = tiny_config(colours, epochs=1)
    prep = prepare(config)
    shared = replanned(prep, replace(config, freeze=replace(config.freeze, strategy="feature_extraction"), epochs=3,
                                     optimizer=replace(config.optimizer, lr=0.5), seed=7))  # what may differ
    assert shared.built is prep.built and shared.config.freeze.strategy == "feature_extraction"
    assert shared.config.epochs == 3 and shared.config.optimizer.lr == 0.5
    other = make_colour_classes(tmp_path / "other")
    for changed, named in ((replace(config, data=replace(config.data, source=str(other))), "data.source"),
                           (replace(config, model=replace(config.model, name="resnet18")), "model.name"),
                           (replace(config, batch_size=config.batch_size * 2), "batch_size"),
                           (replace(config, augment=replace(config.augment, preset="heavy")), "augment")):
        with pytest.raises(ValueError, match=rf"these differ: .*{named}"):
            replanned(prep, changed)


def test_a_comparisons_estimate_says_which_settings_it_times_and_why_a_time_shrank(colours: Path) -> None:
    """A walk: the bar said "setting 1 of 4" of 5 chosen settings, and after the runs the caption's feature
    extraction went from 11 s to 2 s without a word."""
    from tlcore.experiments.compare import sweep_configs
    from tlcore.experiments.timing import (EXTRACTED_ONCE, comparison_estimate_words, timing_words)

    five = sweep_configs(tiny_config(colours, epochs=2))  # full and full discriminative step alike
    assert len(five) == 5
    assert timing_words(five) == ("Timing a few steps of the 4 of 5 settings whose steps differ (the others step "
                                  "alike)")
    assert timing_words(five[:3]) == "Timing a few steps of each setting"
    head = TimeEstimate(9.0, (1.0, 1.0), f"up to 5 steps of 8 pictures measured on this machine's cpu; {EXTRACTED_ONCE}",
                        extract_s=8.0)
    full = TimeEstimate(2.0, (30.0, 30.0), "up to 5 steps of 8 pictures measured on this machine's cpu")
    said = comparison_estimate_words(["feature extraction", "full"], [head, full], seeds=2)
    assert said == ("Estimated time: about 2 min 30 s in all, one run after the other (feature extraction 11 s, full 62 s, "
                    "each x 2 seeds; up to 5 steps of 8 pictures measured on this machine's cpu).")
    cached = comparison_estimate_words(["feature extraction", "full"], [head.with_features_cached("r1"), full], 1)
    assert "(feature extraction 3 s now that its features are cached, full 62 s;" in cached
