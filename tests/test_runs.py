"""Run store and background worker: real SQLite, real worker processes, real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch

from conftest import ROOT
from tlcore.runs import CANCELLED, FAILED, RUNNING, SUCCEEDED, RunStore
from tlcore.running.worker import ensure_worker, submit
from train_fixtures import make_colour_classes, tiny_config


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_colour_classes(tmp_path_factory.mktemp("data") / "colours")


def wait_until(predicate, timeout: float = 120.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def test_worker_trains_queued_runs_in_the_background(colours: Path, tl_home: Path) -> None:
    store = RunStore()
    good = submit(tiny_config(colours, epochs=2), store, start=False)
    no_gpu = submit(tiny_config(colours, device="cuda", epochs=1), store)  # starts the worker for both
    wait_until(lambda: store.get(no_gpu.id).status not in ("queued", RUNNING))
    wait_until(lambda: store.get(good.id).status not in ("queued", RUNNING))
    done = store.get(good.id)
    assert done.status == SUCCEEDED, done.error
    assert [m["epoch"] for m in store.metrics(good.id)] == [0, 1]
    artifacts = store.artifacts(good.id)
    assert {"best", "last", "evaluation", "predictions"} <= set(artifacts)
    assert json.loads(Path(artifacts["evaluation"]).read_text())["n"] == 12
    assert store.get(no_gpu.id).status in (FAILED, SUCCEEDED)  # either way it ended, and it did not stop the other
    assert store.get(good.id).status == SUCCEEDED  # a failure leaves earlier runs as they were


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_a_run_that_cannot_start_fails_with_its_reason(colours: Path, tl_home: Path) -> None:
    store = RunStore()
    no_gpu = submit(tiny_config(colours, device="cuda", epochs=1), store)
    failed = wait_until(lambda: (r := store.get(no_gpu.id)).status not in ("queued", RUNNING) and r)
    assert failed.status == FAILED and "a CUDA GPU was requested but none is available" in failed.error


def test_one_worker_starts_however_slow_its_start_and_however_many_ask(colours: Path, tl_home: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSFERLAB_TEST_WORKER_START_DELAY_S", "6")  # as slow as torch's import on a busy machine
    store = RunStore()
    run = submit(tiny_config(colours, epochs=1), store)  # starts the worker
    asked = [ensure_worker(store) for _ in range(10)]  # the Train page polling a queued run
    threads = [threading.Thread(target=lambda: asked.append(ensure_worker(RunStore()))) for _ in range(10)]
    for t in threads:  # two tabs, several pages at once
        t.start()
    for t in threads:
        t.join()
    other_process = subprocess.run([sys.executable, "-c", "from tlcore.running.worker import ensure_worker; "
                                    "print(ensure_worker())"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert other_process.stdout.strip() == "False", other_process.stderr  # the CLI sees the starting worker too
    workers = [p for p in psutil.Process().children() if "worker" in p.cmdline()]
    assert not any(asked) and len(workers) == 1
    done = wait_until(lambda: (r := store.get(run.id)).status not in ("queued", RUNNING) and r)
    assert done.status == SUCCEEDED and done.pid is None
    # The worker exits after its linger and is reaped by this process: no child is left, not even a zombie.
    wait_until(lambda: not psutil.Process().children(), timeout=30)


def test_cancel_stops_a_running_run_and_keeps_its_epochs(colours: Path, tl_home: Path) -> None:
    store = RunStore()
    run = submit(tiny_config(colours, epochs=500), store)
    wait_until(lambda: store.get(run.id).epochs_done >= 2)
    store.request_cancel(run.id)
    final = wait_until(lambda: (r := store.get(run.id)).status == CANCELLED and r)
    assert "can be resumed" in final.error
    assert len(store.metrics(run.id)) == final.epochs_done >= 2
    assert (Path(final.run_dir) / "last.safetensors").exists()
    queued = submit(tiny_config(colours, epochs=1), store, start=False)
    assert store.request_cancel(queued.id).status == CANCELLED


def test_a_killed_worker_is_detected_and_the_run_resumes(colours: Path, tl_home: Path) -> None:
    store = RunStore()
    run = submit(tiny_config(colours, epochs=8), store)  # killed after 3: 5 epochs to spare for the kill itself
    wait_until(lambda: store.get(run.id).epochs_done >= 3)
    pid = store.get(run.id).pid
    os.kill(pid, signal.SIGKILL)
    failed = wait_until(lambda: store.reap_dead() and store.get(run.id))
    assert failed.status == FAILED and "stopped without finishing" in failed.error and "resume" in failed.error
    epochs_before = failed.epochs_done
    store.requeue_for_resume(run.id)
    from tlcore.running.worker import ensure_worker

    assert ensure_worker()
    # a busy machine (CI beside other jobs) may take seconds per epoch: wait as long as that needs
    done = wait_until(lambda: (r := store.get(run.id)).status not in ("queued", RUNNING) and r, timeout=600)
    assert done.status == SUCCEEDED, done.error
    assert [m["epoch"] for m in store.metrics(run.id)] == list(range(8))
    resumed = [e["message"] for e in store.events(run.id) if e["message"].startswith("resumed after epoch")]
    assert resumed and int(resumed[0].split()[3]) >= epochs_before


_WRITER = """
import sys
from tlcore.runs import RunStore
store, run_id, n = RunStore(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for i in range(n):
    store.add_event(run_id, "epoch", f"epoch {i}", {"epoch": i, "val_acc": i / n})
"""


def test_store_survives_concurrent_readers(colours: Path, tl_home: Path) -> None:
    store = RunStore()
    run = store.create(tiny_config(colours))
    # A separate process writes (as the worker does) while threads here read (as pages do).
    writer_args = [sys.executable, "-c", _WRITER, str(store.path), run.id, "300"]
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        reader = RunStore(store.path)
        while not stop.is_set():
            try:
                reader.list()
                reader.metrics(run.id)
                reader.events(run.id)
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    writer = subprocess.run(writer_args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    stop.set()
    for t in readers:
        t.join()
    assert writer.returncode == 0 and errors == [], writer.stderr
    assert len(store.metrics(run.id)) == 300 and store.get(run.id).epochs_done == 300


def test_cli_train_runs_show_and_evaluate(colours: Path, tl_home: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text(tiny_config(colours, epochs=2).to_json())
    env = {**os.environ, "TRANSFERLAB_HOME": str(tl_home)}

    def tl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tlcore", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)

    trained = tl("train", str(config))
    assert trained.returncode == 0, trained.stderr
    assert "epoch 2/2" in trained.stdout and "test accuracy" in trained.stdout
    run_id = trained.stdout.split()[1]
    listing = tl("runs", "list")
    assert run_id in listing.stdout and "succeeded" in listing.stdout
    shown = tl("runs", "show", run_id)
    assert "status: succeeded" in shown.stdout and "val loss" in shown.stdout and " img/s " in shown.stdout
    evaluated = tl("evaluate", run_id)
    assert evaluated.returncode == 0 and "confusion matrix" in evaluated.stdout
    bad = tmp_path / "bad.json"
    bad.write_text('{"epochs": 0}')
    for args, message in ((("train", str(bad)), "invalid epochs"), (("runs", "show", "nope"), "no run with id nope"),
                          (("train", str(tmp_path / "missing.json")), "no such config file")):
        result = tl(*args)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_a_run_cancelled_before_its_first_epoch_does_not_promise_a_resume(colours: Path, tmp_path: Path) -> None:
    """Issue 36 walk: "the last complete epoch is kept and the run can be resumed" beside the page's "Start it again
    (it has no checkpoint yet)", for a run cancelled in its first epoch."""
    from tlcore.running.worker import run_to_end

    status, error, _ = run_to_end(tiny_config(colours, epochs=3), tmp_path / "run", lambda event: None, lambda: True)
    assert status == CANCELLED and "no epoch had completed" in error and "resumed" not in error, error
