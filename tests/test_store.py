"""The run store under damage: corrupt, read-only, deleted mid-run, lost; every case one line, no run lost
(issue 13, items 13 and 18)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT
from tlcore.errors import TransferLabError
from tlcore.runs.store.lifecycle import RunLifecycle
from tlcore.runs import CANCELLED, FAILED, RUNNING, SUCCEEDED, RunStore, StoreError
from tlcore.runs.store.database import REBUILT_SINCE_LAST_USED, Database
from tlcore.runs.store.rebuild import fill_from_run_folders
from tlcore.running.worker import run_worker, submit
from train_fixtures import make_colour_classes, tiny_config


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_colour_classes(tmp_path_factory.mktemp("data") / "colours")


def tl(*args: str, home: Path, user: int | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tlcore", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TRANSFERLAB_HOME": str(home)}, timeout=timeout, user=user)


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and all(n in errors[0] for n in needles), result.stderr


def wait_until(predicate, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def two_runs(colours: Path, tl_home: Path) -> tuple[str, str]:
    """A finished run and a cancelled one (with a checkpoint) in this test's data folder."""
    store = RunStore()
    done = submit(tiny_config(colours, epochs=2), store, start=False)
    run_worker(store)
    stopped = submit(tiny_config(colours, epochs=50), store, start=False)
    worker = threading.Thread(target=run_worker, args=(store,))
    worker.start()
    wait_until(lambda: store.get(stopped.id).epochs_done >= 2)
    store.request_cancel(stopped.id)
    worker.join()
    assert store.get(stopped.id).status == CANCELLED
    return done.id, stopped.id


@pytest.mark.parametrize("damage", [b"this is not a database" * 100, b"\0" * 8192])
def test_a_corrupt_store_is_set_aside_and_rebuilt_from_the_run_folders(two_runs, tl_home: Path, damage: bytes) -> None:
    done, _ = two_runs
    store_file = tl_home / "runs.sqlite"
    for extra in ("-wal", "-shm"):
        Path(str(store_file) + extra).unlink(missing_ok=True)
    store_file.write_bytes(damage)
    listing = tl("runs", "list", home=tl_home)
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    assert "set aside as runs.sqlite.damaged-" in listing.stderr and "built from the run folders" in listing.stderr
    assert done in listing.stdout and "succeeded" in listing.stdout
    aside = list(tl_home.glob("runs.sqlite.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damage  # set aside, never overwritten
    shown = tl("runs", "show", done, home=tl_home)
    assert shown.returncode == 0 and "status: succeeded" in shown.stdout and "    2 " in shown.stdout  # its epochs


def test_a_lost_store_finds_every_run_again_and_an_unfinished_one_can_resume(two_runs, tl_home: Path) -> None:
    done, stopped = two_runs
    for path in tl_home.glob("runs.sqlite*"):
        path.unlink()
    store = RunStore()
    assert any("2 run(s) were found in their folders" in note for note in store.notes)
    assert store.get(done).status == SUCCEEDED and len(store.metrics(done)) == 2
    assert store.artifacts(done).keys() >= {"best", "evaluation"}
    found = store.get(stopped)  # as the store last said (its folder's record), with its own words
    assert found.status == CANCELLED and "the run can be resumed" in found.error
    store.requeue_for_resume(stopped)
    run_worker(store)
    assert store.get(stopped).status == SUCCEEDED


class _DeletedWhileOpen(Database):
    """A store file deleted just after the next connection opens: the race CI met once, made certain.

    `delete_next` True deletes the file and its journal; "journal" deletes only its -wal/-shm once the connection
    holds them: what another process does when it rebuilds the store between the deletion of the file and of its
    journal (CI met that one too: the worker's next write failed with "disk I/O error")."""

    delete_next: bool | str = False

    def _setup(self):
        db = super()._setup()
        if self.delete_next is True:
            self.delete_next = False
            for path in self.path.parent.glob(self.path.name + "*"):
                path.unlink()
        return db

    def _journal_identity(self):
        found = super()._journal_identity()
        if self.delete_next == "journal":
            self.delete_next = False
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink()
        return found


def _deleted_while_open_store() -> RunStore:
    return RunStore.over(_DeletedWhileOpen(RunStore().path, fill_from_run_folders))


@pytest.mark.parametrize("deleted", [True, "journal"], ids=["file", "journal"])
@pytest.mark.parametrize("operation", ["finish", "add_event", "heartbeat"])
def test_a_store_deleted_between_opening_and_writing_loses_no_write(colours: Path, tl_home: Path,
                                                                    operation: str, deleted) -> None:
    store = _deleted_while_open_store()
    run = store.create(tiny_config(colours, epochs=1))
    store.claim(run.id, os.getpid())
    Path(run.run_dir).mkdir(parents=True, exist_ok=True)  # made by create; as the worker does when training starts: what a rebuild reads
    (Path(run.run_dir) / "config.json").write_text(json.dumps(run.config))
    store.database.delete_next = deleted
    if operation == "finish":
        store.finish(run.id, SUCCEEDED)
    elif operation == "add_event":
        store.add_event(run.id, "log", "written after the store went")
    else:
        store.heartbeat(run.id)
    again = RunStore()
    if operation == "finish":
        assert again.get(run.id).status == SUCCEEDED
    elif operation == "add_event":
        assert [e["message"] for e in again.events(run.id)] == ["written after the store went"]
    else:
        assert again.get(run.id).heartbeat is not None
    if deleted == "journal":  # the file whose journal went is not trusted: set aside, and the rebuild said
        assert list(tl_home.glob("runs.sqlite.damaged-*"))
        assert any("journal files were deleted" in note for note in store.database.notes)


@pytest.mark.parametrize("how", ["delete", "corrupt"])
def test_the_store_lost_during_a_run_does_not_crash_the_worker(colours: Path, tl_home: Path, how: str) -> None:
    store = RunStore()
    run = submit(tiny_config(colours, epochs=8), store)
    wait_until(lambda: store.get(run.id).epochs_done >= 2)
    lost_after = store.get(run.id).epochs_done
    files = list(tl_home.glob("runs.sqlite*"))
    if how == "delete":
        for path in files:
            path.unlink()
    else:
        (tl_home / "runs.sqlite").write_bytes(b"garbage" * 1000)
    time.sleep(0.5)

    def ended():
        """The run once it ended. While this process and the worker both rebuild the store from the run folders,
        a read can land on a store still being put in place and miss the run (seen once in 3 full runs, and in
        CI): asked again, not a failure; a run lost for good still fails the test, by its time limit."""
        try:
            run_now = RunStore().get(run.id)
        except TransferLabError:
            return None
        return run_now if run_now.status not in ("queued", RUNNING) else None

    final = wait_until(ended)
    assert final.status == SUCCEEDED, final.error  # the worker carried on; the rebuilt store records the end
    assert lost_after < 8 and final.epochs_done == 8  # the store went mid-run, and every epoch was recorded
    log = (tl_home / "worker.log").read_text() if (tl_home / "worker.log").exists() else ""
    assert "Traceback" not in log, log[-2000:]


@contextlib.contextmanager
def read_only_copy(folder: Path):
    """The data folder, read-only for this user: permissions, or for root (who ignores them) a read-only mount."""
    copy = Path(f"/tmp/tl-readonly-{os.getpid()}-{time.monotonic_ns()}")
    shutil.copytree(folder, copy)
    view = copy.with_name(copy.name + "-ro")
    try:
        if os.geteuid() == 0:
            view.mkdir()
            mounted = subprocess.run(["mount", "--bind", str(copy), str(view)], capture_output=True)
            if mounted.returncode or subprocess.run(["mount", "-o", "remount,bind,ro", str(view)],
                                                    capture_output=True).returncode:
                subprocess.run(["umount", str(view)], capture_output=True)
                pytest.skip("running as root, and this machine does not allow a read-only bind mount")
        else:
            view = copy
            for path in [copy, *copy.rglob("*")]:
                os.chmod(path, 0o555 if path.is_dir() else 0o444)
        yield view
    finally:
        if view != copy:
            subprocess.run(["umount", str(view)], capture_output=True)
            view.rmdir()
        for path in [copy, *copy.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        shutil.rmtree(copy)


def test_a_read_only_store_can_be_read_and_refuses_writes_in_one_line(two_runs, tl_home: Path) -> None:
    done, stopped = two_runs
    with read_only_copy(tl_home) as readonly:
        listing = tl("runs", "list", home=readonly)
        assert listing.returncode == 0 and done in listing.stdout and "Traceback" not in listing.stderr, listing.stderr
        shown = tl("runs", "show", done, home=readonly)
        assert shown.returncode == 0 and "status: succeeded" in shown.stdout, shown.stderr
        one_line_error(tl("runs", "resume", stopped, home=readonly), "read-only")


@pytest.mark.parametrize("command", [("runs", "show"), ("runs", "resume"), ("runs", "cancel"), ("evaluate",),
                                     ("export", None), ("predict", None)])
def test_an_absurd_run_id_is_one_line(tl_home: Path, tmp_path: Path, command: tuple) -> None:
    run_id = "x" * 100_000
    args = [c for c in command if c] + [run_id] + ([str(tmp_path / "out")] if None in command else [])
    one_line_error(tl(*args, home=tl_home), "x" * 10)


def test_resume_right_after_a_kill_does_not_say_running(colours: Path, tl_home: Path) -> None:
    store = RunStore()
    run = submit(tiny_config(colours, epochs=80), store)
    wait_until(lambda: store.get(run.id).epochs_done >= 2)
    os.kill(store.get(run.id).pid, signal.SIGKILL)
    wait_until(lambda: store.live_worker() is None, timeout=30)
    resumed = tl("runs", "resume", run.id, home=tl_home)
    assert resumed.returncode == 0 and "queued to resume" in resumed.stdout, resumed.stderr


def test_a_foreground_train_waits_its_turn_instead_of_running_beside_the_worker(colours: Path, tl_home: Path,
                                                                                tmp_path: Path) -> None:
    store = RunStore()
    running = submit(tiny_config(colours, epochs=200), store)
    wait_until(lambda: store.get(running.id).status == RUNNING)
    config = tmp_path / "run.json"
    config.write_text(tiny_config(colours, epochs=1).to_json())
    one_line_error(tl("train", str(config), home=tl_home), "another run is training", "--background")
    assert len(store.list(status=RUNNING)) == 1 and len(store.list()) == 1
    store.request_cancel(running.id)


def test_a_store_outside_the_data_folder_finds_its_runs_after_a_rebuild(colours: Path, tl_home: Path,
                                                                         tmp_path: Path) -> None:
    """A run's folder sits beside the store that made it, where the rebuild looks (it was put under the data
    folder, so a store elsewhere lost its runs when rebuilt)."""
    store = RunStore(tmp_path / "elsewhere" / "runs.sqlite")
    run = store.create(tiny_config(colours, epochs=1))
    assert Path(run.run_dir).parent == tmp_path / "elsewhere" / "runs"
    Path(run.run_dir).mkdir(parents=True, exist_ok=True)  # made by create, with its record
    (Path(run.run_dir) / "config.json").write_text(json.dumps(run.config))
    for path in (tmp_path / "elsewhere").glob("runs.sqlite*"):
        path.unlink()
    again = RunStore(tmp_path / "elsewhere" / "runs.sqlite")
    assert [r.id for r in again.list()] == [run.id]
    assert abs(again.get(run.id).created - run.created) < 2  # read from the id, not the folder's time


def test_starting_a_worker_is_never_done_twice_when_the_store_is_rebuilt_under_it(tl_home: Path) -> None:
    """start_worker_once starts a process: after a rebuild it is not retried (a retry would start a second
    worker); it says so in one line instead, before any process is started (the slot is reserved first).
    Operations that only touch the database are retried."""
    store = _deleted_while_open_store()
    spawned = []
    store.database.delete_next = True
    with pytest.raises(StoreError) as caught:
        store.start_worker_once(lambda env: spawned.append(os.getpid()) or os.getpid())
    assert caught.value.rebuilt and spawned == []
    store.database.delete_next = True
    assert store.list() == []  # a read: retried on the rebuilt store, no error
    retried = [name for name in dir(RunStore) if getattr(getattr(RunStore, name), "retried_after_a_rebuild", False)]
    assert "start_worker_once" not in retried and {"get", "list", "finish", "heartbeat", "claim_next"} <= set(retried)


def test_a_store_rebuilt_during_a_command_is_said_when_it_ends(colours: Path, tl_home: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The README promises a note when the store is rebuilt; one rebuilt in the middle of a command (not when it
    opened) was rebuilt silently."""
    import tlcore.runs
    from conftest import tlcore_in_process

    store = RunStore()
    run = store.create(tiny_config(colours, epochs=1))
    Path(run.run_dir).mkdir(parents=True, exist_ok=True)  # made by create, with its record
    (Path(run.run_dir) / "config.json").write_text(json.dumps(run.config))

    class DeletedAfterOpening(RunStore):
        def __init__(self, path=None) -> None:
            super().__init__(path)
            self._compose(_DeletedWhileOpen(self.path, fill_from_run_folders))
            self.database.delete_next = True

    monkeypatch.setattr(tlcore.runs, "RunStore", DeletedAfterOpening)
    result = tlcore_in_process("runs", "show", run.id)
    assert result.returncode == 0, result.stderr
    assert "note: the run store was deleted or replaced while in use; it was rebuilt" in result.stderr
    assert f"run {run.id}" in result.stdout


def _lose_the_store(home: Path) -> RunStore:
    for path in home.glob("runs.sqlite*"):
        path.unlink()
    return RunStore()


def test_queued_and_cancelled_runs_come_back_when_the_store_is_lost(colours: Path, tl_home: Path) -> None:
    """Issues 37 and 40: a queued run had no folder, so a rebuilt store listed 0 runs and said nothing; the
    comparison a run belonged to was lost too."""
    store = RunStore()
    queued = submit(tiny_config(colours, epochs=1), store, start=False, sweep="cmp-20261205-120000-abcd")
    cancelled = submit(tiny_config(colours, epochs=1), store, start=False)
    store.request_cancel(cancelled.id)
    again = _lose_the_store(tl_home)
    back = again.get(queued.id)
    assert back.status == "queued" and back.sweep == "cmp-20261205-120000-abcd" and back.config == queued.config
    assert again.get(cancelled.id).status == CANCELLED
    assert any("2 run(s) were found in their folders" in note for note in again.notes)
    run_worker(again)  # the queued run is trained as if nothing had happened
    assert again.get(queued.id).status == SUCCEEDED and again.get(cancelled.id).status == CANCELLED


def test_a_store_lost_mid_run_keeps_every_epoch_and_event(colours: Path, tl_home: Path) -> None:
    """Issue 37: `runs.sqlite` deleted after epoch 1: the rebuilt store had no epoch-1 metrics and no earlier log."""
    store = RunStore()
    run = submit(tiny_config(colours, epochs=3), store, start=False)
    worker = threading.Thread(target=run_worker, args=(store,))
    worker.start()
    wait_until(lambda: store.get(run.id).epochs_done >= 1)
    logged = [e["message"] for e in store.events(run.id) if e["kind"] != "progress"]
    again = _lose_the_store(tl_home)
    worker.join(timeout=300)
    rebuilt = RunStore()
    assert rebuilt.get(run.id).status in ("running", "succeeded")
    assert [m["epoch"] for m in rebuilt.metrics(run.id)][:1] == [0]  # epoch 1's metrics, from the history
    messages = [e["message"] for e in rebuilt.events(run.id)]
    assert all(message in messages for message in logged)  # the log before the loss, from the run's folder
    assert again is not None
    # and the run's own log says so (before: the worker went on with the rebuilt store without a word). Which of
    # the three ways the worker met the loss (mid-operation, the file gone, or the test's store in its place) is
    # the threads' race; each says that the store was deleted or replaced
    said = [m for m in messages if m.startswith("while this run trained, the run store was deleted or replaced")]
    assert said and all(m.endswith("no epoch or event of the run was lost") for m in said)


def test_a_store_found_gone_says_so_even_when_another_process_rebuilt_it(tl_home: Path) -> None:
    """CI of stop 44: a worker that found `runs.sqlite` gone rebuilt it without a note when no run folder was new
    to it, or when another process's rebuild was put in place first, so the run's log never said the store was
    lost (the test above failed on the threads' race)."""
    store = RunStore()
    store.list()  # this process has used the store
    for path in tl_home.glob("runs.sqlite*"):
        path.unlink()
    assert store.list() == []
    assert store.notes == [REBUILT_SINCE_LAST_USED]
    fresh = RunStore()  # a store never used before says nothing of a loss it never saw
    assert fresh.notes == []
    for path in tl_home.glob("runs.sqlite*"):
        path.unlink()
    RunStore()  # another process rebuilds first: the one that used the old store says so all the same
    assert store.list() == [] and store.notes == [REBUILT_SINCE_LAST_USED] * 2


def test_a_store_error_while_recording_an_event_does_not_fail_the_run(colours: Path, tl_home: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 40: the training sink's `store.add_event` could raise a StoreError and mark a healthy run failed."""
    from tlcore.runs.store.event_log import EventLog

    original = EventLog.add_event
    calls = []

    def flaky(self, run_id, kind, message, data=None, ts=None):
        calls.append(kind)
        if len(calls) == 3:
            raise StoreError("the run store is busy", "try again")
        return original(self, run_id, kind, message, data, ts)

    monkeypatch.setattr(EventLog, "add_event", flaky)
    store = RunStore()
    run = submit(tiny_config(colours, epochs=1), store, start=False)
    run_worker(store)
    assert store.get(run.id).status == SUCCEEDED
    folder_log = (Path(store.get(run.id).run_dir) / "events.jsonl").read_text()
    assert "the run store could not record an event" in folder_log


def test_a_worker_is_spawned_outside_the_stores_write_lock(tl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 40: the worker process was spawned while start_worker_once held SQLite's write lock, so every other
    writer (a heartbeat, an event) waited for the spawn. Now a slot is reserved under the lock and the process is
    spawned after it; exactly one worker still starts, whether it registers before or after its starter records it."""
    import sqlite3

    from tlcore.runs.store.workers import STARTING_SLOT_S, WORKER_SLOT_ENV

    store = RunStore()
    free_while_spawning = []

    def spawn(env: dict) -> int:
        other = sqlite3.connect(store.path, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")  # raises "database is locked" if the starter still held the lock
            other.execute("COMMIT")
            free_while_spawning.append(True)
        finally:
            other.close()
        assert int(env[WORKER_SLOT_ENV]) < 0
        return os.getpid()

    assert store.start_worker_once(spawn) == os.getpid() and free_while_spawning == [True]
    assert store.start_worker_once(spawn) is None  # one is alive: no second start
    assert store.live_worker() == os.getpid()
    store.unregister_worker(os.getpid())

    def registers_first(env: dict) -> int:  # the worker is quicker than its starter: it takes its own slot
        monkeypatch.setenv(WORKER_SLOT_ENV, env[WORKER_SLOT_ENV])
        assert store.register_worker(os.getpid())
        return os.getpid()

    assert store.start_worker_once(registers_first) == os.getpid()
    with store.database.connect() as db:
        assert [r["pid"] for r in db.execute("SELECT pid FROM workers")] == [os.getpid()]  # no slot left behind
    store.unregister_worker(os.getpid())
    monkeypatch.delenv(WORKER_SLOT_ENV)

    def fails(env: dict) -> int:
        raise OSError("no such interpreter")

    with pytest.raises(OSError):
        store.start_worker_once(fails)
    assert store.live_worker() is None  # a failed spawn frees its slot at once
    with store.database.connect() as db:  # a starter killed between its slot and its spawn: the slot ages out
        db.execute("INSERT INTO workers (pid, started) VALUES (?, ?)", (-5, time.time() - STARTING_SLOT_S - 1))
    assert store.start_worker_once(lambda env: os.getpid()) == os.getpid()


def test_a_resume_is_keyed_by_the_status_it_read(colours: Path, tl_home: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 40: requeue_for_resume read the run, then updated it by id alone: a second resume at the same moment
    (or a retry after a rebuild) that had read "failed" queued it again over the first, resetting it. The update
    is now keyed by (run, the status read), and the late one is told the run changed."""
    store = RunStore()
    run = store.create(tiny_config(colours, epochs=1))
    store.claim(run.id, os.getpid())
    store.finish(run.id, FAILED, "killed")
    stale = store.get(run.id)  # what a second caller read before the first resumed it
    assert store.requeue_for_resume(run.id).status == "queued"
    lifecycle = store.lifecycle
    monkeypatch.setattr(lifecycle, "get", lambda run_id: stale if run_id == run.id else
                        RunLifecycle.get(lifecycle, run_id))
    monkeypatch.setattr(lifecycle, "reap_dead", lambda *a, **k: [])
    with pytest.raises(TransferLabError, match="it changed while being resumed"):
        store.requeue_for_resume(run.id)
    monkeypatch.undo()
    assert store.get(run.id).status == "queued"


def test_a_process_taken_for_dead_does_not_finish_a_run_another_process_holds_now(colours: Path,
                                                                                  tl_home: Path) -> None:
    """Issue 40: `finish` was keyed by run only. A worker taken for dead (no heartbeat) while it went on training,
    its run resumed and claimed by a new worker, overwrote the new worker's run with its own end when it finished."""
    store = RunStore()
    run = store.create(tiny_config(colours, epochs=1))
    old, new = 10**6 + 1, os.getpid()
    store.claim(run.id, old)
    store.finish(run.id, FAILED, "no heartbeat")  # what reap_dead records for it
    store.requeue_for_resume(run.id)
    store.claim(run.id, new)
    assert not store.finish(run.id, SUCCEEDED, pid=old)  # the old process ends late: not recorded
    assert store.get(run.id).status == "running" and store.get(run.id).pid == new
    assert store.finish(run.id, SUCCEEDED, pid=new) and store.get(run.id).status == SUCCEEDED
    resumed = store.create(tiny_config(colours, epochs=1))  # reaped, resumed, not yet claimed: the user's resume
    store.claim(resumed.id, old)
    store.finish(resumed.id, FAILED, "no heartbeat")
    store.requeue_for_resume(resumed.id)
    assert not store.finish(resumed.id, FAILED, "late", pid=old) and store.get(resumed.id).status == "queued"
    queued = store.create(tiny_config(colours, epochs=1))
    store.claim(queued.id, new)
    assert not store.finish(queued.id, FAILED, "stranded", only_if="queued")  # claimed meanwhile: it goes on
    assert store.get(queued.id).status == "running"


def test_the_worker_imports_a_queued_runs_libraries_before_it_claims_the_run(colours: Path, tl_home: Path,
                                                                            monkeypatch) -> None:
    """Issue 36: a fresh worker's first picture run spent 1.7 s importing timm and the augmentations inside its
    clock, which its time estimate leaves out (real/estimated 1.37); they are imported while the run waits for the
    worker, and the run's clock starts after them."""
    from tlcore.modality.pictures import Pictures

    warmed: list[float] = []
    monkeypatch.setattr(Pictures, "warm_up", lambda self: warmed.append(time.time()))
    store = RunStore()
    run = submit(tiny_config(colours, epochs=1), store, start=False)
    run_worker(store)
    finished = store.get(run.id)
    assert finished.status == SUCCEEDED and warmed and warmed[0] <= finished.started


def test_a_library_that_fails_to_import_before_a_claim_does_not_kill_the_worker(colours: Path, tl_home: Path,
                                                                               monkeypatch) -> None:
    """Review: transformers' lazy import raises RuntimeError, not ImportError; raised before the claim, it killed
    the worker and left the run queued for good. The run is claimed and says what happened itself."""
    from tlcore.modality.pictures import Pictures
    from tlcore.running import worker as worker_module

    def broken(self) -> None:
        raise RuntimeError("Failed to import a library")

    monkeypatch.setattr(Pictures, "warm_up", broken)
    monkeypatch.setattr(worker_module, "_WARM_UP_FAILED", set())
    store = RunStore()
    run = submit(tiny_config(colours, epochs=1), store, start=False)
    assert run_worker(store) == 1 and store.get(run.id).status == SUCCEEDED


def test_a_store_error_while_asking_for_a_cancel_does_not_fail_the_run(colours: Path, tl_home: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Full suite of this stop: the store deleted mid-run made `cancel_requested` raise "disk I/O error" inside the
    training loop's cancel check, and the healthy run ended failed with "free some disk space"."""
    original = RunLifecycle.cancel_requested
    calls = []

    def flaky(self, run_id):
        calls.append(run_id)
        if len(calls) == 1:
            raise StoreError("the run store could not be written (disk I/O error)", "free some disk space")
        return original(self, run_id)

    monkeypatch.setattr(RunLifecycle, "cancel_requested", flaky)
    store = RunStore()
    run = submit(tiny_config(colours, epochs=1), store, start=False)
    run_worker(store)
    assert len(calls) > 1 and store.get(run.id).status == SUCCEEDED, store.get(run.id).error
    folder_log = (Path(store.get(run.id).run_dir) / "events.jsonl").read_text()
    assert "the run store could not say whether the run was cancelled (the run store could not be written" in folder_log


def test_a_connection_set_up_while_the_store_files_change_is_tried_again(tl_home: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Full suite of this stop: SQLite's "disk I/O error" while the WAL files were deleted under a connection's
    setup was taken for a full disk. Now the setup is tried again when the files changed under it; an error on
    files that stayed as they were is still the error it is."""
    store = RunStore()
    store.list()
    database = store.database
    real_setup = Database._setup
    failures = []

    def setup_meets_a_deletion(self):
        if len(failures) < 2:  # what a deletion by hand and a rebuild do to the files SQLite is setting up
            failures.append(1)
            wal = Path(f"{self.path}-wal")
            wal.unlink() if wal.exists() else wal.write_bytes(b"")
            raise StoreError(f"the run store {self.path} could not be written (disk I/O error)", "free some disk space")
        return real_setup(self)

    monkeypatch.setattr(Database, "_setup", setup_meets_a_deletion)
    assert store.list() == [] and len(failures) == 2  # tried again, and answered

    def setup_fails(self):
        failures.append(1)
        raise StoreError(f"the run store {self.path} could not be written (disk I/O error)", "free some disk space")

    monkeypatch.setattr(Database, "_setup", setup_fails)
    with pytest.raises(StoreError, match="disk I/O error"):
        store.list()
    assert len(failures) == 3  # files that did not change: said at once, not tried again
    assert database is store.database


@pytest.mark.parametrize("failures", [2, 3])
def test_a_store_error_while_recording_the_end_keeps_the_end_and_the_worker(colours: Path, tl_home: Path,
                                                                             monkeypatch: pytest.MonkeyPatch,
                                                                             failures: int) -> None:
    """A store error in the worker's last write (`finish`) killed the worker with a traceback and left the run
    "running" until it was taken for dead. Now the end is tried again; when every try fails it is in the run's
    folder, which a rebuilt store reads, and the worker goes on."""
    monkeypatch.setattr("tlcore.running.worker.FINISH_PAUSE_S", 0.0)
    original = RunLifecycle.finish
    calls = []

    def flaky(self, run_id, status, error=None, **kwargs):
        calls.append(status)
        if len(calls) <= failures:
            raise StoreError("the run store could not be written (disk I/O error)", "free some disk space")
        return original(self, run_id, status, error, **kwargs)

    monkeypatch.setattr(RunLifecycle, "finish", flaky)
    asked = RunLifecycle.cancel_requested

    def cancel_check_fails_first(self, run_id):  # an earlier trouble of the run's: each kind is said, not only the first
        if run_id == first.id and not getattr(cancel_check_fails_first, "failed", False):
            cancel_check_fails_first.failed = True
            raise StoreError("the run store is busy", "try again")
        return asked(self, run_id)

    monkeypatch.setattr(RunLifecycle, "cancel_requested", cancel_check_fails_first)
    store = RunStore()
    first = submit(tiny_config(colours, epochs=1), store, start=False)
    second = submit(tiny_config(colours, epochs=1), store, start=False)
    assert run_worker(store) == 2  # the worker lived on to train the second run
    assert store.get(second.id).status == SUCCEEDED
    if failures == 2:
        assert store.get(first.id).status == SUCCEEDED
    else:
        assert store.get(first.id).status == RUNNING  # this store never heard the end; the folder did
        for path in tl_home.glob("runs.sqlite*"):
            path.unlink()
        assert RunStore().get(first.id).status == SUCCEEDED
        folder_log = (Path(first.run_dir) / "events.jsonl").read_text()
        assert "the run store could not record that the run succeeded" in folder_log
        assert "the run store could not say whether the run was cancelled" in folder_log


def test_the_latest_events_of_some_kinds_are_read_without_the_rest(colours: Path, tl_home: Path) -> None:
    """The Train and Compare pages read their runs' latest progress every second; the store decoded every event of
    the run (an hour of progress: 3,600) to keep the last one."""
    store = RunStore()
    run = store.create(tiny_config(colours, epochs=1))
    for i in range(6):
        store.add_event(run.id, "progress" if i % 2 else "log", f"event {i}", {"i": i})
    assert [e["message"] for e in store.events(run.id, kinds=("progress",), last=1)] == ["event 5"]
    assert [e["message"] for e in store.events(run.id, kinds=("log",), last=2)] == ["event 2", "event 4"]  # oldest first
    assert [e["data"]["i"] for e in store.events(run.id)] == list(range(6))
    first = store.events(run.id)[0]["id"]
    assert [e["message"] for e in store.events(run.id, after=first, kinds=("log", "progress"), last=10)] == [
        f"event {i}" for i in range(1, 6)]
    assert store.events(run.id, kinds=("epoch",), last=1) == [] and store.events(run.id, kinds=()) == []
