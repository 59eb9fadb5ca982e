"""Runs on a local Ray instance (ray.init(num_cpus=2)): the store follows remote runs, folders come back, a dead
worker fails only its run. Needs `pip install -r requirements-scale.txt`; skipped with that reason without it."""

from __future__ import annotations

import json
import re
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, ray_or_skip  # noqa: E402

ray = ray_or_skip()

from tlcore.config import RunConfig  # noqa: E402
from tlcore.experiments.compare import launch_sweep, sweep_rows, verdict  # noqa: E402
from tlcore.running.on_ray import RAY_RUNNER, connect, drive  # noqa: E402
from tlcore.runs import FAILED, QUEUED, RUNNING, SUCCEEDED, RunStore  # noqa: E402
from tlcore.running.worker import run_worker, submit  # noqa: E402
from train_fixtures import make_colour_classes, tiny_config  # noqa: E402

TICKETS = ROOT / "sample_data" / "support_tickets.csv"


@pytest.fixture(scope="module")
def local_ray():
    """A Ray instance for the module. Its processes must not carry the first test's data folder in their
    environment: that test's teardown stops every process of its folder, and a stopped raylet ends this driver
    (pytest itself) with it."""
    home = os.environ.pop("TRANSFERLAB_HOME", None)
    try:
        connect(num_cpus=2)
    finally:
        if home is not None:
            os.environ["TRANSFERLAB_HOME"] = home
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def ray_for_tests_that_use_it(request: pytest.FixtureRequest) -> None:
    """Starts the module's Ray instance for the tests that run on it (the slow ones), not for the others."""
    if request.node.get_closest_marker("slow") is not None:
        request.getfixturevalue("local_ray")


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_colour_classes(tmp_path_factory.mktemp("data") / "colours")


@pytest.mark.slow("a Ray instance")
def test_a_comparison_runs_on_ray_and_the_store_follows_it(colours: Path, tl_home: Path) -> None:
    store = RunStore()
    strategies = ["feature_extraction", "gradual", "full"]
    sweep = launch_sweep(tiny_config(colours, epochs=2), strategies, store, runner=RAY_RUNNER)
    assert run_worker(store) == 0  # the local worker leaves runs queued for Ray alone
    assert {r.status for r in store.list(sweep=sweep)} == {QUEUED}
    seen = []
    results = drive(store, [r.id for r in store.list(sweep=sweep)], on_event=lambda run, kind, msg: seen.append(kind))
    assert set(results.values()) == {SUCCEEDED}
    for run in store.list(sweep=sweep):
        assert run.status == SUCCEEDED, run.error
        messages = [e["message"] for e in store.events(run.id)]
        assert any(m.startswith("sent to a local Ray instance") for m in messages)
        assert any(m.startswith("started on Ray node") for m in messages)
        assert len(store.metrics(run.id)) == 2  # epochs written into the store as they came
        folder = Path(run.run_dir)
        assert (folder / "evaluation.json").is_file() and (folder / "best.safetensors").is_file()
    assert seen.count("epoch") == 6
    for run in store.list(sweep=sweep):  # its clock starts when a Ray worker takes it, not when it was sent
        sent = next(e["ts"] for e in store.events(run.id) if e["message"].startswith("sent to"))
        began = next(e["ts"] for e in store.events(run.id) if e["message"].startswith("started on Ray node"))
        assert sent <= run.started <= began + 1e-3
    rows = sweep_rows(store, sweep)
    assert all(r.test_accuracy is not None for r in rows) and re.search("won with|tied at the top", verdict(rows))
    assert len(list((tl_home / "runs" / "tensorboard" / sweep).iterdir())) == 3


@pytest.mark.slow("a Ray instance")
def test_a_run_keeps_its_cpus_for_its_whole_run(colours: Path, tl_home: Path) -> None:
    """A Ray task blocked in ray.get lends its CPUs to the next task: runs that each take both CPUs must still
    train one after the other (they overlapped, and each ran 3x slower, while the task waited on Ray calls)."""
    store = RunStore()
    runs = [submit(tiny_config(colours, epochs=25, name=f"r{i}"), store, runner=RAY_RUNNER) for i in range(2)]
    assert set(drive(store, [r.id for r in runs], cpus_per_run=2).values()) == {SUCCEEDED}
    first, second = sorted((store.get(r.id) for r in runs), key=lambda r: r.started)
    first_trained_until = max(e["ts"] for e in store.events(first.id) if e["kind"] == "epoch")
    assert second.started >= first_trained_until, (second.started - first_trained_until)


@pytest.mark.slow("a Ray instance")
def test_a_run_on_ray_is_cancelled_from_the_store(colours: Path, tl_home: Path) -> None:
    from tlcore.runs import CANCELLED

    store = RunStore()
    run = submit(tiny_config(colours, epochs=400), store, runner=RAY_RUNNER)
    results = {}
    driver = threading.Thread(target=lambda: results.update(drive(store, [run.id])))
    driver.start()
    deadline = time.monotonic() + 300  # a Ray instance starting on a busy machine
    while store.get(run.id).epochs_done < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    store.request_cancel(run.id)  # what the pages' Cancel button and `runs cancel` do
    driver.join(timeout=180)
    assert results == {run.id: CANCELLED} and "can be resumed" in store.get(run.id).error
    assert store.get(run.id).epochs_done < 400


@pytest.mark.slow("a Ray instance")
def test_shipped_data_trains_elsewhere_and_the_run_folder_comes_back(colours: Path, tl_home: Path) -> None:
    store = RunStore()
    run = submit(tiny_config(colours, epochs=1), store, runner=RAY_RUNNER)
    before = set(Path(tempfile.gettempdir()).glob("transferlab-ray-*"))
    assert drive(store, [run.id], data_mode="ship") == {run.id: SUCCEEDED}
    # the worker's own copy is gone once the folder came back (each run left 346 MB in /tmp and filled CI's disk)
    assert set(Path(tempfile.gettempdir()).glob("transferlab-ray-*")) - before == set()
    messages = [e["message"] for e in store.events(run.id)]
    assert any("data shipped" in m for m in messages)
    folder = Path(store.get(run.id).run_dir)
    assert {"evaluation.json", "predictions.csv", "best.safetensors", "history.json"} <= {p.name for p in
                                                                                        folder.iterdir()}
    assert str(colours) not in (folder / "predictions.csv").read_text()  # it read its own copy of the pictures


@pytest.mark.slow("a Ray instance, a text encoder")
def test_a_text_run_ships_its_table_to_ray_and_trains_there(tl_home: Path, tmp_path: Path) -> None:
    """A text run's split is rows of one table: the table travels (once), and the run reads its rows there."""
    store = RunStore()
    config = RunConfig.from_dict({"data": {"source": str(TICKETS), "split_seed": 0}, "augment": {"preset": "none"},
                                  "epochs": 1, "batch_size": 16, "device": "cpu", "num_workers": 0})
    run = submit(config, store, runner=RAY_RUNNER)
    assert drive(store, [run.id], data_mode="ship") == {run.id: SUCCEEDED}, store.get(run.id).error
    messages = " ".join(e["message"] for e in store.events(run.id))
    assert "data shipped" in messages and "168 train / 36 val texts" in messages and "on 36 held-out texts" in messages
    evaluation = json.loads((Path(store.get(run.id).run_dir) / "evaluation.json").read_text())
    assert evaluation["n"] == 36 and evaluation["accuracy"] > 0.6  # 4 classes: chance is 0.25


def test_a_text_split_ships_its_table_once_and_is_read_from_the_copy(tl_home: Path, tmp_path: Path) -> None:
    """Without Ray: what travels for a text split is the table (not a file per row), and the unpacked config
    reads the same rows. Before, every row was sent as "support_tickets.csv#109", a file that does not exist."""
    from tlcore.modality import resolve_manifest
    from tlcore.running.on_ray import _split_files, _split_payload, _unpack_split
    from tlcore.text.data import read_texts

    config = RunConfig.from_dict({"data": {"source": str(TICKETS), "split_seed": 0}})
    manifest, files, size = _split_files(config)
    assert files == ["support_tickets.csv"] and size == TICKETS.stat().st_size
    there = _unpack_split(_split_payload(manifest, files), manifest.to_dict(), tmp_path / "node", config.to_dict())
    assert Path(there["data"]["source"]) == tmp_path / "node" / "shipped" / "split" / "pictures" / "support_tickets.csv"
    copy, _ = resolve_manifest(RunConfig.from_dict(there).data)
    assert copy.missing_files() == [] and copy.items == manifest.items
    rows = {r.path: r.text for r in read_texts(there["data"]["source"]).images}
    assert {i.path for i in manifest.items} <= rows.keys()


@pytest.mark.slow("a Ray instance")
def test_a_killed_ray_worker_fails_its_run_with_the_reason_and_the_others_finish(colours: Path,
                                                                                 tl_home: Path) -> None:
    store = RunStore()
    doomed = submit(tiny_config(colours, epochs=300, name="doomed"), store, runner=RAY_RUNNER)
    others = [submit(tiny_config(colours, epochs=1, name=f"ok{i}"), store, runner=RAY_RUNNER) for i in range(2)]
    results = {}
    driver = threading.Thread(target=lambda: results.update(drive(store, [doomed.id] + [r.id for r in others])))
    driver.start()
    deadline = time.monotonic() + 180
    pid = None
    while pid is None or store.get(doomed.id).epochs_done < 1:
        assert time.monotonic() < deadline, "the long run never started on Ray"
        pid = next((e["data"]["ray_pid"] for e in store.events(doomed.id) if "ray_pid" in e["data"]), None)
        time.sleep(0.2)
    assert store.get(doomed.id).status == RUNNING
    os.kill(pid, signal.SIGKILL)
    driver.join(timeout=240)
    assert not driver.is_alive()
    failed = store.get(doomed.id)
    assert failed.status == FAILED and "the Ray worker running it died" in failed.error
    assert f"runs resume {doomed.id}" in failed.error
    assert [store.get(r.id).status for r in others] == [SUCCEEDED, SUCCEEDED]
    again = store.requeue_for_resume(doomed.id, RAY_RUNNER)  # and it resumes, on Ray, from its last epoch
    assert again.status == QUEUED and again.runner == RAY_RUNNER


@pytest.mark.slow("a Ray instance")
def test_cli_train_and_compare_on_ray(colours: Path, tl_home: Path, tmp_path: Path, capsys) -> None:
    from tlcore.cli import main

    config = tmp_path / "base.json"
    config.write_text(tiny_config(colours, epochs=1).to_json())
    assert main(["train", str(config), "--ray"]) == 0
    out = capsys.readouterr().out
    assert "goes to Ray" in out and "started on Ray node" in out and ": succeeded" in out
    assert main(["compare", str(config), "--vary", "freeze.strategy=feature_extraction,full", "--seeds", "2",
                 "--ray", "--ship-data", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "4 runs queued (2 setting(s) x 2 seed(s)" in out and out.count(" succeeded ") == 4 and "verdict:" in out
    assert main(["compare", str(config), "--ray", "--background"]) == 1
    assert "--background and --ray do not go together" in capsys.readouterr().err


def test_the_data_mode_is_chosen_before_any_picture_is_read() -> None:
    from tlcore.errors import TransferLabError
    from tlcore.running.on_ray import SHIP_LIMIT_BYTES, choose_data_mode

    assert choose_data_mode(None, SHIP_LIMIT_BYTES * 10) == "shared"  # a local instance reads in place
    assert choose_data_mode("auto", SHIP_LIMIT_BYTES) == "ship"
    assert choose_data_mode("auto", SHIP_LIMIT_BYTES * 10, "shared") == "shared"
    for address, forced in (("auto", None), (None, "ship")):
        with pytest.raises(TransferLabError, match="too many to ship"):
            choose_data_mode(address, SHIP_LIMIT_BYTES + 1, forced)
    with pytest.raises(TransferLabError, match="unknown data mode"):
        choose_data_mode("auto", 0, "copy")

