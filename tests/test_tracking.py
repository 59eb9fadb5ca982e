"""Runs in TensorBoard (event files read back with tensorboard's own reader) and MLflow (a local file store)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from tlcore.config import RunConfig
from tlcore.runs import SUCCEEDED, RunStore
from tlcore.running.worker import run_worker, submit
from train_fixtures import make_colour_classes, tiny_config

TICKETS = ROOT / "sample_data" / "support_tickets.csv"


def test_a_run_writes_tensorboard_events_and_logs_to_mlflow(tl_home: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this opt-in to a plain folder store
    store = RunStore()
    run = submit(tiny_config(make_colour_classes(tmp_path / "colours"), epochs=3, name="tracked",
                             freeze={"strategy": "gradual", "every": 1}), store, sweep="cmp-tracking", start=False)
    run_worker(store)
    finished = store.get(run.id)
    assert finished.status == SUCCEEDED, finished.error
    assert not [e for e in store.events(run.id, kinds=("warning",)) if "logged" in e["message"]]

    folders = list((tl_home / "runs" / "tensorboard" / "cmp-tracking").iterdir())
    assert [f.name for f in folders] == [f"tracked seed 0 ({run.id})"]
    events = EventAccumulator(str(folders[0]), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    val = events.Scalars("accuracy/val")
    assert [e.step for e in val] == [1, 2, 3]
    assert [round(e.value, 6) for e in val] == [round(m["val_acc"], 6) for m in store.metrics(run.id)]
    groups = [t for t in tags["scalars"] if t.startswith("lr/")]
    assert len(groups) >= 3 and {"loss/train", "loss/val", "test/accuracy"} <= set(tags["scalars"])
    assert tags["images"] == ["test/confusion_matrix"]
    assert events.Images("test/confusion_matrix")[0].width > 48 * 3

    client = MlflowClient(tracking_uri=uri)
    (logged,) = client.search_runs([client.get_experiment_by_name("cmp-tracking").experiment_id])
    assert logged.data.tags["transferlab.run_id"] == run.id and logged.info.status == "FINISHED"
    assert logged.data.params["optimizer.lr"] == "0.01" and logged.data.params["freeze.strategy"] == "gradual"
    history = client.get_metric_history(logged.info.run_id, "accuracy/val")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert logged.data.metrics["test_accuracy"] == pytest.approx(
        [e for e in store.events(run.id) if "test_accuracy" in e["data"]][0]["data"]["test_accuracy"])
    files = {a.path for a in client.list_artifacts(logged.info.run_id)} | {
        a.path for a in client.list_artifacts(logged.info.run_id, "model")}
    assert {"evaluation.json", "predictions.csv", "model/best.safetensors"} <= files, files


def test_a_text_run_writes_the_same_tensorboard_events(tl_home: Path) -> None:
    """Issue 27: a text run reaches TensorBoard as a picture run does: curves per epoch, test accuracy and the
    confusion matrix over its classes."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    store = RunStore()
    config = RunConfig.from_dict({"name": "tickets", "data": {"source": str(TICKETS), "split_seed": 0},
                                  "augment": {"preset": "none"}, "epochs": 2, "batch_size": 16, "device": "cpu",
                                  "num_workers": 0})
    run = submit(config, store, sweep="cmp-texts", start=False)
    run_worker(store)
    assert store.get(run.id).status == SUCCEEDED, store.get(run.id).error
    (folder,) = (tl_home / "runs" / "tensorboard" / "cmp-texts").iterdir()
    events = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    val = events.Scalars("accuracy/val")
    assert [e.step for e in val] == [1, 2]
    assert [round(e.value, 6) for e in val] == [round(m["val_acc"], 6) for m in store.metrics(run.id)]
    test_accuracy = json.loads((Path(store.get(run.id).run_dir) / "evaluation.json").read_text())["accuracy"]
    assert events.Scalars("test/accuracy")[0].value == pytest.approx(test_accuracy)
    assert events.Images("test/confusion_matrix")[0].width > 48 * 4  # a cell per class, 4 classes


def test_mlflow_asked_for_but_missing_is_said_and_the_run_goes_on(tl_home: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tlcore.results.tracking import RunTracker

    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as on a machine without it: `import mlflow` fails
    said = []
    tracker = RunTracker("r1", "x", None, {"seed": 0}, tmp_path / "run", warn=said.append)
    tracker.epoch({"epoch": 0, "train_loss": 1.0, "val_acc": 0.5})
    tracker.close("succeeded")
    assert said == ["MLFLOW_TRACKING_URI is set but mlflow is not installed: pip install mlflow-skinny; this run is "
                    "not logged to MLflow"]
    assert list((tl_home / "runs" / "tensorboard" / "single runs").iterdir())  # TensorBoard still written


def test_an_mlflow_server_that_does_not_answer_is_said_at_once(tl_home: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 28, item 18: a closed local port kept a run silent for 249 s before training started."""
    import socket
    import time

    from tlcore.results.tracking import RunTracker

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    said = []
    started = time.monotonic()
    tracker = RunTracker("r1", "x", None, {"seed": 0}, tmp_path / "run", warn=said.append)
    tracker.epoch({"epoch": 0, "train_loss": 1.0, "val_acc": 0.5})
    tracker.close("succeeded")
    assert time.monotonic() - started < 30
    assert len(said) == 1 and said[0].startswith(f"this run is not logged to MLflow: 127.0.0.1:{port} does not answer")
