"""A process killed (SIGKILL) at each write of the run store loses nothing.

One life of two runs is played in a forked child, the way the CLI and the worker write the store: run A and run B
queued, A claimed and executed by the worker (its training replaced by two events, a history and an evaluation,
so only the store's own writes remain), A finished, B cancelled while queued, then queued again to resume. Every
write of the store (each SQLite connection, each whole-file write of a run folder, each line of a run's events
file) is a point where the child can die: before it, or after it. For each point, a child is killed there, and
then the store a user opens next, and a store rebuilt from the run folders alone, must both hold every run the
child had been told about, with no run left "running", the statuses its last finished step allows, and every
event and epoch it had recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import pytest

from tlcore.core import files as files_module
from tlcore.core.events import Event
from tlcore.core.run_files import EVALUATION, HISTORY
from tlcore.runs import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, RunStore
from tlcore.runs.store import database as database_module
from tlcore.runs.store import lifecycle as lifecycle_module
from tlcore.running import worker as worker_module

CONFIG = {"data": {"source": "nowhere"}, "epochs": 1}
EPOCH = {"epoch": 0, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.1, "val_acc": 0.5, "images_per_s": 9.0,
         "epoch_seconds": 0.1}


def _life(home: Path, notes: Path) -> None:
    """The scripted life; each finished step is noted (a plain append, not a store write)."""
    from tlcore.config import RunConfig

    def note(step: str) -> None:
        with notes.open("a") as fh:
            fh.write(step + "\n")

    def training(config, run_dir, sink, should_stop, resume=False):  # the store's writes of a run, nothing else
        sink(Event("log", "training starts"))
        note("event log")
        files_module.atomic_write(Path(run_dir) / HISTORY, lambda tmp: tmp.write_text(json.dumps([EPOCH])))
        sink(Event("epoch", "epoch 1/1", dict(EPOCH)))
        note("event epoch")
        files_module.atomic_write(Path(run_dir) / EVALUATION, lambda tmp: tmp.write_text('{"accuracy": 0.5}'))
        return SUCCEEDED, None, None

    worker_module.run_to_end = training
    worker_module.HEARTBEAT_EVERY_S = 3600.0  # no heartbeat thread between the points: each point is one write
    store = RunStore(home / "runs.sqlite")
    a = store.create(RunConfig.from_dict({**CONFIG, "name": "A"}))
    note(f"created a {a.id}")
    b = store.create(RunConfig.from_dict({**CONFIG, "name": "B"}))
    note(f"created b {b.id}")
    note("claiming a")
    claimed = store.claim_next(os.getpid())
    assert claimed is not None and claimed.id == a.id
    note("claimed a")
    assert worker_module.execute(store, claimed) == SUCCEEDED
    note("finished a")
    note("cancelling b")
    store.request_cancel(b.id)
    note("cancelled b")
    note("requeueing b")
    store.requeue_for_resume(b.id)
    note("requeued b")


def _points(kill_at: int | None, log: list[str]) -> None:
    """Wrap every write of the store so the process counts them, and dies at point `kill_at` (2 per write)."""
    count = [0]

    def point(where: str) -> None:
        log.append(where)
        if count[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        count[0] += 1

    def counted(function, what: str):
        def wrapper(*args, **kwargs):
            point(f"before {what}")
            result = function(*args, **kwargs)
            point(f"after {what}")
            return result
        return wrapper

    connect = database_module.Database.connect

    @contextmanager
    def counted_connect(self, *args, **kwargs):
        point("before a store connection")
        with connect(self, *args, **kwargs) as db:
            yield db
        point("after a store connection")

    database_module.Database.connect = counted_connect
    files_module.atomic_write = counted(files_module.atomic_write, "a whole-file write")
    lifecycle_module.atomic_write = files_module.atomic_write
    worker_module.append_event = counted(worker_module.append_event, "an events-file line")


def _play(home: Path, kill_at: int | None) -> tuple[list[str], list[str], int]:
    """The life in a forked child: (steps it finished, points it passed, its exit signal or status)."""
    notes, passed = home / "notes.txt", home / "points.txt"
    home.mkdir(parents=True)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        code = 0
        try:
            log: list[str] = []
            _points(kill_at, log)
            try:
                _life(home, notes)
            finally:
                passed.write_text("\n".join(log))
        except BaseException:  # noqa: BLE001 - the child reports by its exit status only
            code = 3
        os._exit(code)
    _, status = os.waitpid(child, 0)
    steps = notes.read_text().splitlines() if notes.exists() else []
    points = passed.read_text().splitlines() if passed.exists() else []
    return steps, points, status


def _check(home: Path, steps: list[str], where: str) -> None:
    """What the next command sees, and what a store rebuilt from the folders sees, lose nothing."""
    ids = {step.split()[1]: step.split()[2] for step in steps if step.startswith("created")}
    known_before = set()
    if (home / "runs.sqlite").exists():  # what the killed child's store held, read before anything opens it
        with sqlite3.connect(f"file:{home / 'runs.sqlite'}?mode=ro", uri=True) as db:
            known_before = {row[0] for row in db.execute("SELECT id FROM runs")}
    live = RunStore(home / "runs.sqlite")
    adopted = len({run.id for run in live.list()} - known_before)
    said = [note for note in live.notes if "found in their folders but not in the run store" in note]
    assert said == ([f"{adopted} run(s) found in their folders but not in the run store were added (the command "
                     "that queued them was stopped before it finished)"] if adopted else []), (where, said)
    live.reap_dead()  # the killed child held run A: the next command fails it, with the reason
    rebuilt_home = home.parent / f"{home.name}-rebuilt"
    shutil.copytree(home, rebuilt_home)
    for name in ("runs.sqlite", "runs.sqlite-wal", "runs.sqlite-shm"):
        (rebuilt_home / name).unlink(missing_ok=True)
    rebuilt = RunStore(rebuilt_home / "runs.sqlite")
    for store, which in ((live, "the next command's store"), (rebuilt, "a store rebuilt from the folders")):
        runs = {run.id: run for run in store.list()}
        context = f"killed {where}, after {steps or 'no step'}: {which}"
        assert set(ids.values()) <= set(runs), context  # every run the user was told of is there
        assert not [r for r in runs.values() if r.status == RUNNING], context
        if "a" in ids:
            a = runs[ids["a"]]
            allowed = ({SUCCEEDED} if "finished a" in steps else {FAILED, SUCCEEDED} if "claimed a" in steps
                       else {QUEUED, FAILED} if "claiming a" in steps else {QUEUED})
            if store is rebuilt and "event log" not in steps:  # claimed, killed before its folder said it started:
                allowed = allowed | {QUEUED}  # a run that never trained comes back queued (the live store fails it)
            assert a.status in allowed, context
            events = [e["message"] for e in store.events(a.id)]
            if "event log" in steps:
                assert "training starts" in events, context
            if "event epoch" in steps:
                assert [m["epoch"] for m in store.metrics(a.id)] == [0], context
        if "b" in ids:
            b = runs[ids["b"]].status
            allowed = ({QUEUED} if "requeued b" in steps else {CANCELLED, QUEUED} if "requeueing b" in steps
                       else {CANCELLED} if "cancelled b" in steps else {QUEUED, CANCELLED} if "cancelling b" in steps
                       else {QUEUED})
            assert b in allowed, context
    assert {r.id for r in live.list()} == {r.id for r in rebuilt.list()}, f"killed {where}: the two stores differ"
    for run in live.list(status=FAILED):  # a run killed mid-way is not lost: it can be resumed
        assert live.requeue_for_resume(run.id).status == QUEUED


def test_the_life_without_a_kill_passes_the_checks(tmp_path: Path) -> None:
    """The checks hold for a life played to its end, which passes at least 30 writes (each a kill point below)."""
    steps, points, status = _play(tmp_path / "whole", None)
    assert status == 0 and steps[-1] == "requeued b"
    assert len(points) >= 60
    _check(tmp_path / "whole", steps, "nowhere")


def test_a_kill_at_any_write_of_the_store_loses_nothing(tmp_path: Path) -> None:
    _, points, _ = _play(tmp_path / "count", None)
    assert len(points) >= 60
    for kill_at, where in enumerate(points):
        home = tmp_path / f"kill-{kill_at}"
        steps, _, status = _play(home, kill_at)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"point {kill_at} ({where})"
        _check(home, steps, f"at point {kill_at} ({where})")


@pytest.mark.parametrize("kill_at", [0, 1])
def test_a_kill_before_the_first_write_leaves_an_empty_store(tmp_path: Path, kill_at: int) -> None:
    """The smallest case, spelled out: nothing was queued, so nothing may appear."""
    home = tmp_path / "first"
    steps, _, status = _play(home, kill_at)
    assert os.WIFSIGNALED(status) and steps == []
    assert RunStore(home / "runs.sqlite").list() == []


def test_a_folder_whose_creator_lives_is_left_to_it(tmp_path: Path) -> None:
    """A run being queued this moment has its folder before its row: another process opening the store then must
    not add it (and say its creator was stopped); once the creator is gone, the next opening adds it."""
    from tlcore.config import RunConfig
    from tlcore.core.run_files import CONFIG as CONFIG_FILE, write_run_record
    from tlcore.runs.store.records import new_run_id

    store = RunStore(tmp_path / "runs.sqlite")
    run_dir = store.runs_dir / new_run_id()
    write_run_record(run_dir, state=QUEUED, created=1.0, name="mine", creator=os.getpid())
    (run_dir / CONFIG_FILE).write_text(RunConfig.from_dict(CONFIG).to_json())
    other = RunStore(tmp_path / "runs.sqlite")
    assert other.list() == [] and other.notes == []
    child = os.fork()
    if child == 0:  # pragma: no cover - a process that ends at once: a pid that is no longer alive
        os._exit(0)
    os.waitpid(child, 0)
    write_run_record(run_dir, creator=child)
    later = RunStore(tmp_path / "runs.sqlite")
    assert [(r.name, r.status) for r in later.list()] == [("mine", QUEUED)] and len(later.notes) == 1
    edited = store.runs_dir / new_run_id()  # a record edited by hand: no creator to wait for, and no crash
    write_run_record(edited, state=QUEUED, created=2.0, creator="abc")
    (edited / CONFIG_FILE).write_text(RunConfig.from_dict(CONFIG).to_json())
    assert len(RunStore(tmp_path / "runs.sqlite").list()) == 2


@pytest.mark.parametrize("opened", ["before", "after"])
def test_an_empty_shell_in_the_stores_place_is_built_whole(tmp_path: Path, opened: str) -> None:
    """Seen in CI: while one process set a damaged store aside and built a new one, another's connection to the
    path made an empty SQLite file there. The worker then died on "no such table: workers", and a store opened on
    that shell listed no runs (adding back only runs whose creator had gone, and this one's creator lived)."""
    from tlcore.config import RunConfig

    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    runs = [store.create(RunConfig.from_dict({**CONFIG, "name": name})) for name in ("A", "B")]
    for name in ("runs.sqlite", "runs.sqlite-wal", "runs.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    shell = sqlite3.connect(path)  # what a stray connection leaves: a database file without a table
    shell.execute("PRAGMA journal_mode=WAL")
    shell.close()
    reader = store if opened == "before" else RunStore(path)
    assert {reader.get(run.id).name for run in runs} == {"A", "B"}  # before: "no such table" / "no run with id"
    assert {run.name for run in RunStore(path).list()} == {"A", "B"}
