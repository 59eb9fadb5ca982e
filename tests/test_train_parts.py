"""The loop and its parts (issue 26): the loop calls every part at its named moments in order, a new feature
is a part (here a recording one and a step counter) without touching the loop, and each run gets the parts
its config asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlcore.core.collectives import is_writer
from tlcore.training.parts import Fit, Part, parts_for
from tlcore.training.parts.adabn import AdaBN
from tlcore.training.parts.early_stopping import EarlyStopping
from tlcore.training.parts.fast_path import FastPath
from tlcore.training.parts.labelled_target import LabelledTarget
from tlcore.training.parts.torch_compile import Compile
from tlcore.training.prepare import prepare
from tlcore.training.steps import build_loop
from tlcore.training.train import fit
from train_fixtures import make_colour_classes, tiny_config


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_colour_classes(tmp_path_factory.mktemp("data") / "colours", per_class=8)


class Recorder(Part):
    """A part that writes down each moment it is called at, and counts the steps it wraps."""

    def __init__(self) -> None:
        self.moments: list[str] = []
        self.steps = 0

    def before_fit(self, fit: Fit) -> None:
        self.moments.append("before_fit")

    def step_path(self, fit: Fit):
        self.moments.append("step_path")
        return None

    def wrap_step(self, fit: Fit, step):
        self.moments.append("wrap_step")

        def counted(x, y, share=None):
            self.steps += 1
            return step(x, y, share)
        return counted

    def before_epoch(self, fit: Fit, epoch: int) -> None:
        self.moments.append(f"before_epoch {epoch}")

    def before_step(self, fit: Fit, epoch: int, step: int) -> None:
        self.moments.append(f"before_step {epoch}.{step}")

    def after_step(self, fit: Fit, epoch: int, step: int) -> None:
        self.moments.append(f"after_step {epoch}.{step}")

    def epoch_totals(self, fit: Fit, totals):
        self.moments.append("epoch_totals")
        return totals

    def after_validate(self, fit: Fit, epoch: int, metrics: dict) -> None:
        self.moments.append(f"after_validate {epoch} {'val_loss' in metrics}")
        metrics["recorded_by_a_part"] = epoch  # a metric of its own, recorded with the epoch

    def after_epoch(self, fit: Fit, epoch: int, metrics: dict) -> None:
        self.moments.append(f"after_epoch {epoch} {sorted(metrics)[:2]}")

    def after_fit(self, fit: Fit) -> None:
        self.moments.append("after_fit")


def test_the_loop_calls_a_new_part_at_each_moment_in_order(colours: Path, tmp_path: Path) -> None:
    prep = prepare(tiny_config(colours, epochs=2, batch_size=4))
    loop = build_loop(prep)
    recorder = Recorder()
    events = []
    result = fit(Fit(loop, tmp_path, events.append, lambda: False, writer=is_writer()), parts_for(prep) + [recorder])
    steps = len(loop.train_loader)
    expected = ["before_fit", "step_path", "wrap_step"]
    for epoch in range(2):
        expected.append(f"before_epoch {epoch}")
        for step in range(steps):
            expected += [f"before_step {epoch}.{step}", f"after_step {epoch}.{step}"]
        expected += ["epoch_totals", f"after_validate {epoch} True", f"after_epoch {epoch} ['epoch', 'epoch_seconds']"]
    expected.append("after_fit")
    assert recorder.moments == expected
    assert recorder.steps == 2 * steps  # the loop stepped through the wrapped step, every time
    assert result.epochs_done == 2 and [e.kind for e in events].count("epoch") == 2
    assert [row["recorded_by_a_part"] for row in result.history] == [0, 1]  # after_validate's metrics are kept
    assert (tmp_path / "best.safetensors").is_file()  # the checkpoints part ran beside it


def test_a_part_that_answers_step_path_first_decides_what_the_steps_run_on(colours: Path, tmp_path: Path) -> None:
    config = tiny_config(colours, epochs=1, freeze={"strategy": "feature_extraction"}, feature_cache=True)
    prep = prepare(config)
    parts = parts_for(prep)
    run = Fit(build_loop(prep), tmp_path, lambda e: None, lambda: False)
    fit(run, parts)
    assert run.path.name == "features" and type(run.path.model).__name__ == "HeadOnFeatures"
    plain = prepare(tiny_config(colours, epochs=1))
    (tmp_path / "plain").mkdir()
    run = Fit(build_loop(plain), tmp_path / "plain", lambda e: None, lambda: False)
    fit(run, parts_for(plain))
    assert run.path.name == "pictures" and run.path.model is plain.model


@pytest.mark.parametrize("overrides, wanted, unwanted", [
    ({}, set(), {FastPath, Compile, AdaBN, EarlyStopping}),
    ({"freeze": {"strategy": "feature_extraction"}, "feature_cache": True}, {FastPath}, {Compile}),
    ({"freeze": {"strategy": "feature_extraction"}, "feature_cache": False}, set(), {FastPath}),
    ({"compile": True}, {Compile}, {FastPath}),
    ({"early_stopping": {"metric": "val_loss", "patience": 2}}, {EarlyStopping}, {LabelledTarget}),
])
def test_each_run_gets_the_parts_its_config_asks_for(colours: Path, overrides: dict, wanted: set,
                                                     unwanted: set) -> None:
    kinds = {type(part) for part in parts_for(prepare(tiny_config(colours, **overrides)))}
    assert wanted <= kinds and not (unwanted & kinds)


def test_adabn_runs_get_the_adabn_part(colours: Path, tmp_path: Path) -> None:
    target = make_colour_classes(tmp_path / "target", per_class=4)
    config = tiny_config(colours, adapt={"method": "adabn", "target": str(target)})
    assert AdaBN in {type(p) for p in parts_for(prepare(config))}


def _every_part() -> list[Part]:
    """One of each part, in the order of PARTS (their declarations are class attributes: no run is needed)."""
    from tlcore.training.parts import adaptation, cancel, checkpoints, epoch_report, freeze_stages, overfitting, progress
    from tlcore.training.parts import torchrun

    return [checkpoints.Checkpoints(), AdaBN(), FastPath(), Compile("eager"),
            torchrun.Torchrun(), cancel.Cancel(False), freeze_stages.FreezeStages(), adaptation.Adaptation(),
            progress.StepProgress(), epoch_report.EpochReport(), overfitting.Overfitting(),
            EarlyStopping.__new__(EarlyStopping)]


def test_a_wrong_part_order_is_an_error_when_the_parts_are_chosen() -> None:
    """Issue 40: the order was the position in PARTS, explained by comments; now each part declares what it
    provides, requires and comes after, and a wrong order fails before any training."""
    from tlcore.training.parts import PartOrderError, check_order

    parts = _every_part()
    check_order(parts)  # the order of PARTS holds every declaration
    names = [p.name for p in parts]
    report = parts[names.index("epochreport")]
    wrong = [report] + [p for p in parts if p is not report]  # the epoch reported before its checkpoint is on disk
    with pytest.raises(PartOrderError, match="epochreport requires 'checkpoint_on_disk', and checkpoints provides it "
                                             "after it"):
        check_order(wrong)
    with pytest.raises(PartOrderError, match="adabn requires 'start_epoch', and no part provides it"):
        check_order([p for p in parts if p.name != "checkpoints"])
    swapped = list(parts)
    i, j = names.index("compile"), names.index("torchrun")
    swapped[i], swapped[j] = swapped[j], swapped[i]  # torchrun must wrap the compiled step, outermost
    with pytest.raises(PartOrderError, match="torchrun must come after compile"):
        check_order(swapped)


class Stateful(Part):
    """A part that counts its steps, saves the count with the checkpoint and hears how the run ended."""

    def __init__(self) -> None:
        self.steps, self.errors = 0, []

    def after_step(self, fit: Fit, epoch: int, step: int) -> None:
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state.get("steps", 0)

    def on_exception(self, fit: Fit, error: BaseException) -> None:
        self.errors.append(type(error).__name__)


def test_a_part_saves_its_own_state_and_hears_a_cancel(colours: Path, tmp_path: Path) -> None:
    """Issue 40: resume state was one hard-coded key; there was no moment for an exception, and a cancel was an
    exception raised inside a part. Now each part's state travels with the checkpoint, a cancel is a signal the
    loop acts on, and every part hears the exception that ends the run."""
    from tlcore.core.events import Cancelled

    prep = prepare(tiny_config(colours, epochs=3, batch_size=4))
    steps_per_epoch = len(build_loop(prep).train_loader)
    first = Stateful()
    with pytest.raises(Cancelled, match="cancelled before epoch 3"):  # asked to stop once two epochs are done
        fit(Fit(build_loop(prep), tmp_path, lambda e: None, lambda: first.steps >= 2 * steps_per_epoch),
            parts_for(prep) + [first])
    assert first.errors == ["Cancelled"]
    again = Stateful()
    result = fit(Fit(build_loop(prep), tmp_path, lambda e: None, lambda: False, resume=True), parts_for(prep) + [again])
    assert result.epochs_done == 3 and again.steps == 3 * steps_per_epoch  # 2 epochs' count came back, 1 more added
    assert again.errors == []


def test_progress_events_are_typed_and_read_back_whatever_was_stored() -> None:
    """Issue 40: pages read a progress event's fields (`step.share`), not a dict's keys (`step["phase"]`); what an
    older version or a damaged line stored is None, never a KeyError in the page."""
    from tlcore.core.events import Progress

    features = Progress("features", done=30, total=120)
    assert Progress.from_data(features.to_data()) == features and features.share == 0.25
    training = Progress("train", epoch=2, step=3, steps=4)
    assert Progress.from_data(training.to_data()) == training and training.share == 0.75
    assert Progress("features", done=5, total=0).share == 0.0 and Progress("x", done=9, total=3).share == 1.0
    for stored in (None, [], {}, {"phase": 3}, "features"):
        assert Progress.from_data(stored) is None
    odd = Progress.from_data({"phase": "train", "step": "3", "steps": -1, "epoch": "x", "done": True})
    assert odd == Progress("train") and odd.share == 0.0


def test_parts_tell_a_step_through_its_context_and_never_write_into_the_loops_objects() -> None:
    """Issue 40: the adaptation part set `loop.objective.targets` and `.progress`. Parts now write the run's typed
    `StepContext`; no part module assigns to anything reached through `.loop`, and the objective keeps no run state."""
    import ast

    import tlcore.training.parts as parts_package
    from tlcore.adaptation.adapt import Objective

    def chain(node: ast.expr) -> list[str]:
        names = []
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            if isinstance(node, ast.Attribute):
                names.append(node.attr)
            node = node.value
        return names + ([node.id] if isinstance(node, ast.Name) else [])

    writes = []
    for module in Path(parts_package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                for each in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    if "loop" in chain(each)[1:]:
                        writes.append(f"{module.name}:{node.lineno}")
    assert writes == []
    assert not {"targets", "progress"} & set(vars(Objective(None)))


def test_the_step_context_carries_the_target_batches_and_the_runs_progress(colours: Path, tmp_path: Path) -> None:
    """What an adaptation step sees, step by step: the epoch's target batches and the share of the run done."""
    seen = []

    class Watcher(Part):
        after = ("cancel_check",)

        def before_step(self, fit: Fit, epoch: int, step: int) -> None:
            seen.append((fit.context.epoch, fit.context.step, fit.context.progress, fit.context.targets is not None))

    config = tiny_config(colours, epochs=2, batch_size=4, freeze={"strategy": "full"},
                         adapt={"method": "entropy", "target": str(colours)})
    prep = prepare(config)
    fit(Fit(build_loop(prep), tmp_path, lambda e: None, lambda: False), parts_for(prep) + [Watcher()])
    steps = len(seen) // 2
    assert [(e, s) for e, s, _, _ in seen] == [(e, s) for e in range(2) for s in range(steps)]
    assert [p for _, _, p, _ in seen] == pytest.approx([i / (2 * steps) for i in range(2 * steps)])
    assert all(has for *_, has in seen)
