"""Freeze-strategy comparisons on a tiny model: one split for all, independent runs, a self-contained report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import ROOT, tlcore_in_process
from tlcore.experiments.compare import launch_sweep, resume_sweep, sweep_configs, sweep_rows, verdict
from tlcore.experiments.report import cells_csv, report_html, write_report
from tlcore.errors import TransferLabError
from tlcore.runs import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, SUCCEEDED, RunStore
from train_fixtures import make_colour_classes, tiny_config


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_colour_classes(tmp_path_factory.mktemp("data") / "colours")


def wait_all_finished(store: RunStore, sweep: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while any(r.status not in FINISHED for r in store.list(sweep=sweep)):
        assert time.monotonic() < deadline, "comparison did not finish"
        time.sleep(0.2)


def test_configs_differ_only_in_what_is_frozen(colours: Path) -> None:
    configs = sweep_configs(tiny_config(colours), ["feature_extraction", "gradual", "full_discriminative"])
    manifests = {c.data.manifest for c in configs}
    assert len(manifests) == 1 and Path(manifests.pop()).is_file()
    stripped = [{k: v for k, v in json.loads(c.to_json()).items() if k not in ("name", "freeze")} for c in configs]
    assert stripped[0] == stripped[1] == stripped[2]
    assert [c.freeze.strategy for c in configs] == ["feature_extraction", "gradual", "full"]
    with pytest.raises(TransferLabError, match="unknown strategy name"):
        sweep_configs(tiny_config(colours), ["melt_everything"])


def test_a_sweep_runs_every_strategy_on_the_same_split(colours: Path, tl_home: Path, tmp_path: Path) -> None:
    store = RunStore()
    strategies = ["feature_extraction", "freeze_first_half", "gradual", "full_discriminative", "full"]
    sweep = launch_sweep(tiny_config(colours, epochs=2), strategies, store)
    wait_all_finished(store, sweep)
    runs = store.list(sweep=sweep)
    assert sorted(r.name for r in runs) == sorted(s.replace("_", " ") for s in strategies)  # as the chips say them
    assert all(r.status == SUCCEEDED for r in runs), [r.error for r in runs]
    split_ids = {json.loads((Path(r.run_dir) / "split.json").read_text())["id"] for r in runs}
    assert len(split_ids) == 1
    rows = sweep_rows(store, sweep)
    assert all(r.test_accuracy is not None and r.trainable_params for r in rows)
    text = verdict(rows)  # paired on the same test pictures, the test named
    assert "Paired on the same 12 test pictures (McNemar's exact test" in text
    assert text.count("cannot tell") + text.count(" is better than ") + text.count("is as good") == 4
    head_only = next(r for r in rows if r.strategy == "feature extraction")
    full = next(r for r in rows if r.strategy == "full")
    assert head_only.trainable_params < full.trainable_params
    text = verdict(rows)
    assert ("won with" in text or "tied at the top" in text) and "span" in text
    html_path, csv_path, cells_path = write_report(store, sweep, tmp_path / "report")
    assert cells_path.is_file() and cells_path.read_text().startswith(cells_csv(rows)[:20])
    page = html_path.read_text()
    assert all(s.replace("_", " ") in page for s in strategies) and "Verdict:" in page
    assert page.count("Plotly.newPlot") == 3  # three charts
    assert not re.search(r'<script[^>]+src="http', page)  # self-contained: plotly.js inline, nothing fetched
    assert len(csv_path.read_text().strip().splitlines()) == 1 + len(strategies)


def test_cancelling_one_run_leaves_the_others_and_it_resumes(colours: Path, tl_home: Path) -> None:
    store = RunStore()
    # The run to cancel goes first and is not the fast path, whose 40 epochs can end between two polls.
    sweep = launch_sweep(tiny_config(colours, epochs=12), ["full", "feature_extraction", "gradual"], store)
    first = sorted(store.list(sweep=sweep), key=lambda r: r.created)[0]
    deadline = time.monotonic() + 120
    while not (store.get(first.id).status == RUNNING and store.get(first.id).epochs_done >= 1):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    store.request_cancel(first.id)
    wait_all_finished(store, sweep)
    statuses = {r.name: r.status for r in store.list(sweep=sweep)}
    assert statuses == {"full": CANCELLED, "feature extraction": SUCCEEDED, "gradual": SUCCEEDED}
    assert "1 run was cancelled" in verdict(sweep_rows(store, sweep))
    assert resume_sweep(store, sweep) == [first.id]
    wait_all_finished(store, sweep)
    assert store.get(first.id).status == SUCCEEDED
    assert len(store.metrics(first.id)) == 12


def test_report_of_an_unfinished_comparison_still_holds_every_run(colours: Path, tl_home: Path) -> None:
    store = RunStore()
    sweep = launch_sweep(tiny_config(colours), ["feature_extraction", "full"], store, start=False)
    rows = sweep_rows(store, sweep)
    page = report_html(rows, "t")
    assert "feature extraction" in page and "full" in page and "No run has finished yet." in page


def test_cli_compare(colours: Path, tl_home: Path, tmp_path: Path) -> None:
    config = tmp_path / "base.json"
    config.write_text(tiny_config(colours, epochs=2).to_json())
    result = tlcore_in_process("compare", str(config), "--vary", "freeze.strategy=feature_extraction,full", "--vary", "optimizer.lr=0.01,0.003", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "4 runs queued (4 setting(s) x 1 seed(s): feature extraction · lr 0.01, feature extraction · lr 0.003, " \
           "full · lr 0.01, full · lr 0.003)" in result.stdout
    assert "verdict:" in result.stdout and result.stdout.count(" succeeded ") == 4
    assert list((tmp_path / "out").glob("cmp-*.html")) and list((tmp_path / "out").glob("cmp-*.csv"))
    cells = next((tmp_path / "out").glob("cmp-*-cells.csv")).read_text().splitlines()
    assert len(cells) == 1 + 4 + 1 and cells[-1].startswith("# verdict:")
    bad = tlcore_in_process("compare", str(config), "--strategies", "nope")
    assert bad.returncode == 1 and "unknown strategy name(s): nope" in bad.stderr


def test_seeds_repeat_a_setting_and_share_cached_feature_views(colours: Path, tl_home: Path) -> None:
    """Pretrained weights: seed 1 reads the view it shares with seed 0. Random weights differ per seed, and so do
    their features: nothing may be shared (the cache once keyed random weights by the word "random" alone)."""
    from tlcore.experiments.grid import parse_axis

    store = RunStore()
    pretrained = tiny_config(colours, epochs=2, model={"name": "tf_efficientnet_lite0", "weights": "auto"},
                             input_size=[3, 64, 64])
    logs = {}
    for name, base in (("pretrained", pretrained), ("random", tiny_config(colours, epochs=2))):
        sweep = launch_sweep(base, store=store, seeds=2, axes=[parse_axis("freeze.strategy=feature_extraction")])
        wait_all_finished(store, sweep)
        runs = sorted(store.list(sweep=sweep), key=lambda r: r.config["seed"])
        assert [r.config["seed"] for r in runs] == [0, 1] and {r.status for r in runs} == {SUCCEEDED}
        logs[name] = [" ".join(e["message"] for e in store.events(r.id)) for r in runs]
        rows = sweep_rows(store, sweep)
        assert [r.seed for r in rows] == [0, 1] and "over 2 seeds" in verdict(rows)
    assert "computed once and cached" in logs["pretrained"][0] and "read from the cache" not in logs["pretrained"][0]
    assert "(1 of 2 training view(s) read from the cache, shared with an earlier run or seed" in logs["pretrained"][1]
    assert all("computed once and cached" in log and "read from the cache" not in log for log in logs["random"])


@pytest.mark.slow("kills a worker mid-comparison")
def test_cli_compare_ends_its_wait_when_the_worker_dies(colours: Path, tl_home: Path, tmp_path: Path) -> None:
    import signal

    from tlcore.running.worker import submit

    store = RunStore()
    busy = submit(tiny_config(colours, epochs=400), store)  # a background worker, as the app starts it
    deadline = time.monotonic() + 120
    while store.get(busy.id).status != RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    config = tmp_path / "base.json"
    config.write_text(tiny_config(colours, epochs=2).to_json())
    compare = subprocess.Popen([sys.executable, "-m", "tlcore", "compare", str(config), "--strategies",
                                "feature_extraction,full"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "TRANSFERLAB_HOME": str(tl_home)})
    while len(store.list()) < 3:  # its two runs are queued behind the busy one
        assert compare.poll() is None and time.monotonic() < deadline, compare.communicate()
        time.sleep(0.2)
    time.sleep(1.0)
    os.kill(store.get(busy.id).pid, signal.SIGKILL)
    out, err = compare.communicate(timeout=60)  # it used to wait forever
    assert compare.returncode == 1 and "Traceback" not in err, err
    sweep = re.search(r"comparison (\S+):", out).group(1)
    assert f"python -m tlcore compare --resume {sweep}" in err
    assert {r.status for r in store.list(sweep=sweep)} == {"failed"}
    assert all("resume" in r.error for r in store.list(sweep=sweep))


def test_the_comparison_table_picks_the_best_epoch_by_the_training_rule_with_min_delta(colours: Path,
                                                                                     tl_home: Path) -> None:
    from tlcore.config import EarlyStoppingConfig

    history = [{"epoch": 0, "val_acc": 0.50}, {"epoch": 1, "val_acc": 0.53}, {"epoch": 2, "val_acc": 0.52}]
    rule = EarlyStoppingConfig(metric="val_acc", min_delta=0.05, patience=0)
    assert rule.best_epoch(history) == 0  # +0.03 is not an improvement of more than 0.05
    store = RunStore()
    run = store.create(tiny_config(colours, early_stopping={"metric": "val_acc", "min_delta": 0.05, "patience": 0}),
                       sweep="cmp-test")
    for row in history:
        store.add_event(run.id, "epoch", "", {**row, "val_loss": 1.0, "epoch_seconds": 1.0, "images_per_s": 1.0,
                                              "trainable_params": 1, "peak_memory_mb": 1.0})
    assert sweep_rows(store, "cmp-test")[0].best_epoch == 1  # 1-based: epoch 0, as training chose (not epoch 1)


def _run(status: str, started: float, finished: float | None, resume: bool):
    from tlcore.runs import Run

    return Run(id="r", name="n", config={}, status=status, error=None, created=0.0, started=started,
               finished=finished, pid=None, heartbeat=None, run_dir="", cancel_requested=False, resume=resume,
               sweep="s", epochs_done=2)


def test_a_resumed_runs_seconds_count_its_work_not_the_time_it_sat_cancelled() -> None:
    """Issue 25: a comparison run cancelled, left, then resumed showed 338 s for about 150 s of work."""
    from tlcore.experiments.compare import active_seconds

    assert active_seconds(_run(SUCCEEDED, 100.0, 250.0, resume=False), 140.0) == 150.0  # start to finish
    assert active_seconds(_run(SUCCEEDED, 100.0, 438.0, resume=True), 140.0) == 140.0  # its epochs, not 338 s
    assert active_seconds(_run(CANCELLED, 100.0, 150.0, resume=False), 40.0) == 40.0
    assert active_seconds(_run(RUNNING, 100.0, None, resume=False), None) is None


def test_the_progress_line_agrees_with_the_verdict_after_a_cancel() -> None:
    """After Cancel the bar said "8 of 8 runs finished" while the verdict said "5 runs are not finished yet"."""
    from tlcore.experiments.compare import SweepRow, progress_words

    def row(status: str, accuracy: float | None) -> SweepRow:
        return SweepRow(run_id=status, strategy="s", status=status, test_accuracy=accuracy, macro_f1=None,
                        test_images=10 if accuracy is not None else None, best_epoch=None, epochs_done=1,
                        wall_seconds=1.0, images_per_s=None, trainable_params=None, peak_memory_mb=None, val_acc=[],
                        val_loss=[], error=None)

    rows = [row(SUCCEEDED, 0.9)] * 3 + [row(CANCELLED, None)] * 5
    assert progress_words(rows) == "3 of 8 runs evaluated; 5 cancelled"
    assert verdict(rows).endswith(". 5 runs were cancelled.")  # before: "not finished yet", as if they would
    waiting = rows + [row(QUEUED, None), row(FAILED, None)]
    assert verdict(waiting).endswith(". 1 run is not finished yet; 5 runs were cancelled; 1 run failed.")


def test_the_comparison_bar_counts_the_running_runs_progress_inside_them(tl_home: Path, colours: Path) -> None:
    """Issue 36: Compare showed "0 of 2 runs evaluated; 1 running" for minutes; the running run's own progress
    (its epoch and batch, or its feature extraction) now moves the bar and is said."""
    from tlcore.core.events import Progress
    from tlcore.experiments.compare import running_progress

    store = RunStore()
    config = tiny_config(colours, epochs=4)
    sweep = "cmp-test"
    first, second = (store.create(config, sweep=sweep) for _ in range(2))
    store.claim(first.id, os.getpid())
    rows = sweep_rows(store, sweep)
    name = next(r.strategy for r in rows if r.run_id == first.id)  # the run's label in the table
    assert running_progress(store, rows) == (0.0, f"{name}: starting")  # claimed, nothing said yet
    store.add_event(first.id, "progress", "features", Progress("features", done=30, total=120).to_data())
    share, words = running_progress(store, sweep_rows(store, sweep))
    assert share == 0.0 and words == f"{name}: features of 30 of 120 pictures"
    store.add_event(first.id, "epoch", "epoch 1", {"epoch": 0, "val_loss": 1.0, "val_acc": 0.5, "train_loss": 1.0,
                                                    "train_acc": 0.5, "lr": 0.01, "epoch_seconds": 2.0,
                                                    "images_per_s": 10.0, "trainable_params": 100, "peak_memory_mb": 1.0})
    store.add_event(first.id, "progress", "step", Progress("train", epoch=1, step=5, steps=10).to_data())
    share, words = running_progress(store, sweep_rows(store, sweep))
    assert words == f"{name}: epoch 2 of 4, batch 5 of 10"
    assert share == pytest.approx((1 + 0.5) / 4 * 0.95 / 2)  # 1.5 of 4 epochs of one of the two runs
    assert running_progress(store, [])[0] == 0.0
    # scored on the test split, still running (scoring a labelled target folder): counted once, not twice (the
    # page's bar was given 1.475 and Streamlit raised)
    store.add_event(first.id, "progress", "step", Progress("train", epoch=3, step=10, steps=10).to_data())
    rows = [replace(r, test_accuracy=0.9) if r.run_id == first.id else r for r in sweep_rows(store, sweep)]
    share, words = running_progress(store, rows)
    assert share == pytest.approx(0.5) and words == f"{name}: evaluating"
    store.claim(second.id, os.getpid() + 1)
    store.add_event(second.id, "progress", "preparing: splitting", Progress("prepare", done=1, total=4).to_data())
    rows = [replace(r, test_accuracy=0.9) if r.run_id == first.id else r for r in sweep_rows(store, sweep)]
    share, words = running_progress(store, rows)
    assert share == pytest.approx(0.5) and f"{name}: evaluating" in words and ": preparing" in words


def test_charts_before_any_run_finishes_say_so_on_plain_axes() -> None:
    """Issue 36: before any run finished, Compare's charts showed plotly's empty axes, -1 to 6 epochs and -100% to
    400% accuracy; now accuracy runs from 0 to 100% and the chart says what will appear."""
    from tlcore.experiments.compare import SweepRow
    from tlcore.experiments.report import figures

    waiting = SweepRow(run_id="r", strategy="full", status=RUNNING, test_accuracy=None, macro_f1=None,
                       test_images=None, best_epoch=None, epochs_done=0, wall_seconds=None, images_per_s=None,
                       trainable_params=None, peak_memory_mb=None, val_acc=[], val_loss=[], error=None)
    charts = figures([waiting])
    for name, words in (("curves", "No epoch has finished yet"), ("time", "No run has been evaluated yet"),
                        ("params", "No run has been evaluated yet")):
        layout = charts[name].layout
        assert list(layout.yaxis.range) == [0, 1] and words in layout.annotations[0].text, name
    ran = SweepRow(**{**waiting.__dict__, "status": SUCCEEDED, "test_accuracy": 0.8, "wall_seconds": 5.0,
                      "trainable_params": 1000, "val_acc": [0.5, 0.7], "epochs_done": 2})
    drawn = figures([ran])
    assert not drawn["curves"].layout.annotations and not drawn["time"].layout.annotations
    assert drawn["time"].layout.yaxis.range[0] < 0.8 < drawn["time"].layout.yaxis.range[1]
    for name in ("time", "params"):  # one point: the axis stays within 0-100% (it ran from -20% to 180%)
        low, high = drawn[name].layout.yaxis.range
        assert -0.05 < low < 0.8 < high < 1.05, (name, low, high)
    one_epoch = figures([SweepRow(**{**ran.__dict__, "val_acc": [0.75], "epochs_done": 1})])["curves"]
    low, high = one_epoch.layout.yaxis.range  # a browser walk saw 0% to 150% for one epoch's point
    assert -0.05 < low < 0.75 < high < 1.05, (low, high)


def test_a_count_that_stands_still_says_for_how_long(tl_home: Path, colours: Path) -> None:
    """Issue 36: "building the model (5 of 6)" and "features of 0 of 372" each stood still for about 4 s; a count
    older than 1 s now says how long it has stood, on Compare as on Train (from 2 s, the redraw a second later let
    batch counts stand up to 4 s without it in a walk on a busy machine)."""
    from tlcore.core.events import Progress, standing
    from tlcore.experiments.compare import running_progress

    assert standing(100.0, 100.9) == "" and standing(100.0, 101.1) == ", 1 s on this so far"
    assert standing(100.0, 104.2) == ", 4 s on this so far"
    store = RunStore()
    run = store.create(tiny_config(colours, epochs=2), sweep="cmp-still")
    store.claim(run.id, os.getpid())
    said = store.get(run.id).started + 30  # counted from the count, not from the run's start
    store.add_event(run.id, "progress", "preparing: building tf_efficientnet_lite0 (5 of 6)",
                    Progress("prepare", done=4, total=6).to_data(), ts=said)
    rows = sweep_rows(store, "cmp-still")
    name = rows[0].strategy
    assert running_progress(store, rows, now=said + 0.5)[1] == f"{name}: preparing: building tf_efficientnet_lite0 (5 of 6)"
    assert running_progress(store, rows, now=said + 4)[1] == (f"{name}: preparing: building tf_efficientnet_lite0 "
                                                              "(5 of 6), 4 s on this so far")
    store.add_event(run.id, "progress", "features", Progress("features", done=0, total=204).to_data(), ts=said + 10)
    assert running_progress(store, rows, now=said + 13)[1] == f"{name}: features of 0 of 204 pictures, 3 s on this so far"
    store.add_event(run.id, "progress", "features", Progress("features", 0, 372, unit="picture views").to_data(),
                    ts=said + 11)  # each training picture once per augmented view: not "372 pictures" for 240
    assert running_progress(store, rows, now=said + 14)[1] == f"{name}: features of 0 of 372 picture views, 3 s on this so far"
    store.add_event(run.id, "epoch", "epoch 1", {"epoch": 0, "val_loss": 1.0, "val_acc": 0.5, "train_loss": 1.0,
                                                  "train_acc": 0.5, "lr": 0.01, "epoch_seconds": 1.0,
                                                  "images_per_s": 10.0, "trainable_params": 100,
                                                  "peak_memory_mb": 1.0}, ts=said + 20)
    assert running_progress(store, rows, now=said + 20.5)[1] == f"{name}: epoch 2 of 2"  # an epoch's end: counted anew
    from tlcore.experiments.compare import progress_rows, progress_words

    light = progress_rows(store, "cmp-still")  # what the page reads every second: the same words and share
    assert running_progress(store, light, now=said + 24) == running_progress(store, rows, now=said + 24)
    assert progress_words(light) == progress_words(sweep_rows(store, "cmp-still"))
    assert running_progress(store, rows, now=said + 24)[1] == f"{name}: epoch 2 of 2, 4 s on this so far"
    store.add_event(run.id, "epoch", "epoch 2", {"epoch": 1, "val_loss": 1.0, "val_acc": 0.5, "train_loss": 1.0,
                                                  "train_acc": 0.5, "lr": 0.01, "epoch_seconds": 1.0,
                                                  "images_per_s": 10.0, "trainable_params": 100,
                                                  "peak_memory_mb": 1.0}, ts=said + 30)
    assert running_progress(store, progress_rows(store, "cmp-still"), now=said + 33)[1] == (
        f"{name}: evaluating on the held-out test pictures, 3 s on this so far")  # was "epoch 2 of 2", unexplained


def test_a_claimed_run_that_has_said_nothing_yet_is_starting_not_in_its_first_epoch(tl_home: Path,
                                                                                   colours: Path) -> None:
    """A walk: "feature extraction: epoch 1 of 5" showed before "features of 0 of 372 picture views"."""
    from tlcore.experiments.compare import running_progress

    store = RunStore()
    run = store.create(tiny_config(colours, epochs=2), sweep="cmp-new")
    store.claim(run.id, os.getpid())
    started = store.get(run.id).started
    words = running_progress(store, sweep_rows(store, "cmp-new"), now=started + 0.5)[1]
    assert words == f"{run.name}: starting"
    assert running_progress(store, sweep_rows(store, "cmp-new"), now=started + 2.2)[1] == (
        f"{run.name}: starting, 2 s on this so far")


def test_a_tie_at_the_top_is_called_a_tie_not_a_win() -> None:
    """Issue 36 walk: "gradual won with 91.7% test accuracy, 0.0 points ahead of freeze_first_half"."""
    from tlcore.experiments.compare import SweepRow

    def row(strategy: str, accuracy: float) -> SweepRow:
        return SweepRow(f"run-{strategy}", strategy, SUCCEEDED, accuracy, 0.9, 12, 2, 2, 10.0, 5.0, 100, 1.0,
                        [0.5], [1.0], None)

    text = verdict([row("gradual", 11 / 12), row("freeze first half", 11 / 12), row("full", 0.75)])
    assert text.startswith("gradual and freeze first half tied at the top with") or text.startswith(
        "freeze first half and gradual tied at the top with"), text
    assert "won" not in text and "0.0 points ahead" not in text and "span 16.7 points (full last)" in text
    alone = verdict([row("gradual", 11 / 12), row("full", 0.75)])
    assert alone.startswith("gradual won with") and "16.7 points ahead of full" in alone


def test_queueing_a_comparison_counts_its_checks_and_runs(colours: Path, tl_home: Path) -> None:
    """A walk: 2.4 s with nothing on the page after "Run the comparison" (the first check imports the model's
    library). The queueing now says each setting checked and each run queued."""
    said = []
    sweep = launch_sweep(tiny_config(colours), ["feature_extraction", "full"], RunStore(), start=False, seeds=2,
                         on_progress=lambda words, done, total: said.append((words, done, total)))
    assert said == [("checking setting 1 of 2", 0, 6), ("checking setting 2 of 2", 1, 6),
                    ("queueing run 1 of 4", 2, 6), ("queueing run 2 of 4", 3, 6), ("queueing run 3 of 4", 4, 6),
                    ("queueing run 4 of 4", 5, 6)]
    assert len(RunStore().list(sweep=sweep)) == 4
