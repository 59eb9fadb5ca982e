"""Runs and comparisons on a Ray cluster (or a Ray instance started here): the only module that imports ray.

Each run is one Ray task with the resources it needs (one GPU where the cluster has GPUs, else
`cpus_per_run` CPUs). The process that submits the runs (the "driver": `compare --ray`, `train
--ray`, or the one the Compare page starts) stays the single writer of the run store: tasks send
their events through a Ray queue, the driver writes them into the store as they come, so the pages
follow a remote run exactly as a local one, and writes TensorBoard/MLflow too.

Data and run folders reach the workers in one of two ways:
- "shared": every node reads the data set and writes the run folder at the same paths (a local Ray
  instance; a cluster with a shared file system, `--shared-data`). Checkpoints land in the run folder
  as they are written, so a run whose worker dies resumes from its last epoch.
- "ship": the split's pictures (and a weights file) go through Ray's object store, the task trains in
  a temporary folder on its node, and the run folder comes back when the run ends. The default for a
  remote cluster when the split's files total at most `SHIP_LIMIT_BYTES`. A run whose worker dies
  loses that node's folder: resuming it starts again from epoch 1 (seeded: it ends as an uninterrupted
  run would).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tlcore.config import RunConfig
from tlcore.modality import resolve_manifest
from tlcore.data.split import file_of
from tlcore.errors import TransferLabError
from tlcore.core.net import not_grpc
from tlcore.core.paths import data_home
from tlcore.runs import CANCELLED, FAILED, QUEUED, SUCCEEDED, Run, RunStore
from tlcore.results.tracking import RunTracker

__all__ = ["RAY_RUNNER", "SHIP_LIMIT_BYTES", "ray_installed", "connect", "not_ray", "drive", "choose_data_mode",
           "spawn_driver"]

RAY_RUNNER = "ray"  # the store's runner column for runs a Ray driver takes
SHIP_LIMIT_BYTES = 2 * 1024**3
HEARTBEAT_EVERY_S = 5.0
RAY_CONNECT_TIMEOUT_S = 10.0  # a named head that does not take a connection in this long is said to be down
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_connected_to = ""  # how the instance this process joined is named in run logs


def ray_installed() -> bool:
    """True when Ray can be imported here."""
    try:
        import ray  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    return True


def spawn_driver(sweep: str, address: str = "") -> int:
    """A detached `compare --resume SWEEP --ray [ADDRESS]` process that drives a comparison's queued runs on Ray
    (what the Compare page starts: it outlives the page, as the local worker does). Returns its pid.

    Args:
        sweep: the comparison's id.
        address: the Ray cluster ("" starts a local instance).

    Returns:
        The driver's process id.
    """
    from tlcore.running.worker import spawn_detached

    return spawn_detached(["compare", "--resume", sweep, "--ray"] + ([address] if address else []),
                          data_home() / f"ray-driver-{sweep}.log")


def _ray():
    try:
        import ray
    except ImportError:
        raise TransferLabError("Ray is not installed", "pip install -r requirements-scale.txt") from None
    return ray


# A call each kind of Ray endpoint knows: the cluster's GCS (host:6379) and the Ray Client server (ray://host:10001).
_RAY_CALLS = {False: "/ray.rpc.NodeInfoGcsService/GetClusterId", True: "/ray.rpc.RayletDriver/ClusterInfo"}


def not_ray(address: str, timeout_s: float) -> str | None:
    """Why a gRPC server at `address` is not a Ray cluster, found within `timeout_s`; None when it is.

    A call Ray's endpoint knows is made with an empty request: Ray answers it (with its result, or with an error
    about the request or a missing token), any other gRPC server says it has no such method.

    Args:
        address: "host:port" (a cluster's GCS) or "ray://host:port" (a Ray Client server).
        timeout_s: the deadline of the call.

    Returns:
        e.g. "127.0.0.1:8797 speaks gRPC, but not as a Ray cluster (it has no GetClusterId)", or None.
    """
    import grpc  # installed with Ray

    client = address.startswith("ray://")
    target, method = address.removeprefix("ray://"), _RAY_CALLS[client]
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            call(b"", timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNIMPLEMENTED:
                what = "a Ray Client server" if client else "a Ray cluster"
                return f"{target} speaks gRPC, but not as {what} (it has no {method.rsplit('/', 1)[1]})"
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return f"{target} speaks gRPC but does not answer Ray's call within {timeout_s:g} s"
            if code == grpc.StatusCode.UNAVAILABLE:
                return f"{target} does not answer ({' '.join(str(exc.details()).split())[:120]})"
    return None  # answered, or refused the call as Ray does (no token, a bad request)


def connect(address: str | None = None, num_cpus: int | None = None) -> str:
    """Join the cluster at `address` ("auto": the one this machine belongs to), or start a local instance.

    Returns how to say where runs go. The tasks get `tlcore` shipped with them (Ray's `py_modules`).

    Args:
        address: the cluster's address; None or "" starts a local instance.
        num_cpus: CPUs of a local instance (default: all).

    Returns:
        A phrase for people, e.g. "a local Ray instance (2 CPUs)".

    Raises:
        TransferLabError: Ray is not installed, or the cluster cannot be reached.
    """
    global _connected_to
    ray = _ray()
    if ray.is_initialized() and _connected_to:
        return _connected_to
    runtime_env = {"py_modules": [str(PROJECT_ROOT / "tlcore")],
                   "env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}}  # a local instance also finds it without upload
    host, _, port = (address or "").removeprefix("ray://").rpartition(":")
    # ray.init itself retries for minutes, printing Ray's own log lines: the address must answer, and speak gRPC
    # (an HTTP server or a silent port there is said within seconds, and no run is left queued)
    silent = not_grpc(host, int(port), RAY_CONNECT_TIMEOUT_S) if host and port.isdigit() else None
    if host and port.isdigit() and not silent:  # gRPC is not yet Ray: any gRPC server passed, and Ray then retried
        silent = not_ray(address, RAY_CONNECT_TIMEOUT_S)
    if silent:
        raise TransferLabError(f"cannot connect to Ray at {address}: {silent}",
                               "check the address (e.g. auto, or ray://head:10001) and that the cluster is up")
    try:
        if address:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, runtime_env=runtime_env,
                     log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise TransferLabError(f"cannot connect to Ray at {address or 'a new local instance'}: "
                               f"{' '.join(str(exc).split())[:200]}",
                               "check the address (e.g. auto, or ray://head:10001) and that the cluster is up") from None
    resources = ray.cluster_resources()
    where = f"the Ray cluster at {address}" if address else "a local Ray instance"
    _connected_to = f"{where} ({int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs)"
    return _connected_to


def choose_data_mode(address: str | None, split_bytes: int, forced: str | None = None) -> str:
    """"shared" for a local instance or when asked; "ship" for a remote cluster (or when asked), if the split is
    small enough to go through the object store.

    Args:
        address: the cluster's address (None or "": a local instance).
        split_bytes: the size of the split's pictures.
        forced: "shared" or "ship" when the user chose.

    Returns:
        "shared" or "ship".

    Raises:
        TransferLabError: shipping was asked for (or needed) and the split is too large for it.
    """
    if forced not in (None, "shared", "ship"):
        raise TransferLabError(f"unknown data mode {forced!r}", "use shared or ship")
    mode = forced or ("ship" if address else "shared")
    if mode == "ship" and split_bytes > SHIP_LIMIT_BYTES:
        raise TransferLabError(f"the split's pictures are {split_bytes / 1024**3:.1f} GB, too many to ship through "
                               "Ray's object store", "put them on a file system every node reads at the same path, "
                                                     "and use --shared-data")
    return mode


# -- what travels ---------------------------------------------------------------------------------
def _tar(add: Callable[[tarfile.TarFile], None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        add(archive)
    return buffer.getvalue()


def _untar(blob: bytes, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob)) as archive:
        archive.extractall(into, filter="data")  # no absolute paths, no links out of `into`


def _split_files(config: RunConfig):
    """The split's manifest, the files it reads (pictures, or a text table once) relative to its root, and their
    size in bytes (read from the file system, not the files)."""
    manifest, _ = resolve_manifest(config.data)
    files = manifest.source_files()
    return manifest, files, sum((Path(manifest.root) / f).stat().st_size for f in files)


def _split_payload(manifest, files: list[str]) -> bytes:
    """The split's files as one tar, by their paths relative to the manifest's root."""
    def add(archive: tarfile.TarFile) -> None:
        for path in files:
            archive.add(Path(manifest.root) / path, arcname=f"pictures/{path}")
    return _tar(add)


def _unpack_split(payload: bytes, manifest: dict, home: Path, config: dict) -> dict:
    """On the worker: the split's files under `home`, and the config pointed at them (at the table itself when
    the texts come from one: its rows are "table.csv#17")."""
    folder = home / "shipped" / "split"
    _untar(payload, folder)
    manifest = {**manifest, "root": str(folder / "pictures")}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    rows = [item["path"] for item in manifest["items"] if file_of(item["path"]) != item["path"]]
    source = folder / "pictures" / file_of(rows[0]) if rows else folder / "pictures"  # texts of one table
    data = {**config["data"], "source": str(source), "manifest": str(folder / "manifest.json")}
    return {**config, "data": data}


# -- the task -------------------------------------------------------------------------------------
def _task(run_id: str, config: dict, resume: bool, shared_home: str | None, payload: bytes | None,
          manifest: dict | None, weights, previous, queue, control) -> dict:
    """One run on a Ray worker. Never raises for a run's own failure: returns its status and error."""
    import socket

    from tlcore.core.runtime import tune_allocator
    from tlcore.core.events import Event
    from tlcore.running.worker import run_to_end

    tune_allocator()  # a training process, as the local worker is (3x faster forward passes on CPU)
    home = Path(shared_home) if shared_home else Path(tempfile.mkdtemp(prefix="transferlab-ray-"))
    try:
        os.environ["TRANSFERLAB_HOME"] = str(home)
        run_dir = home / "runs" / run_id
        if payload is not None:  # Ray resolved the object store's copy of the pictures (a top-level argument)
            config = _unpack_split(payload, manifest, home, config)
        if weights is not None:
            name, blob = weights
            (home / "shipped").mkdir(parents=True, exist_ok=True)
            (home / "shipped" / name).write_bytes(blob)
            config = {**config, "model": {**config["model"], "weights": str(home / "shipped" / name)}}
        if previous is not None:
            _untar(previous, run_dir)

        import ray

        # Training must not block on Ray: a task blocked in ray.get lends its CPUs to the next task, which then trains
        # beside it on the same cores. Events go out without waiting (one caller's calls to an actor keep their
        # order); the cancel flag is fetched by a thread of its own.
        sent = []

        def sink(event: Event) -> None:
            sent[:] = [queue.actor.put_nowait.remote((run_id, event.kind, event.message, event.data))]

        sink(Event("log", f"started on Ray node {socket.gethostname()} (worker process {os.getpid()})",
                   {"ray_pid": os.getpid(), "node": socket.gethostname()}))
        stop, ended = threading.Event(), threading.Event()

        def watch() -> None:  # a thread asks for the cancel flag, so training never waits on Ray itself
            while not ended.wait(0.5):
                if ray.get(control.cancelled.remote(run_id)):
                    stop.set()
                    return

        threading.Thread(target=watch, daemon=True).start()
        should_stop = stop.is_set

        try:
            status, error, _ = run_to_end(RunConfig.from_dict(config), run_dir, sink, should_stop, resume)
            ray.get(sent)  # every event is in the queue before the run ends (the driver drains it after this)
            folder = None if shared_home else _tar(lambda archive: archive.add(run_dir, arcname="."))
        finally:
            ended.set()
    finally:
        if not shared_home:  # the run folder travels back as bytes: the worker's copy (346 MB for a text run) goes
            shutil.rmtree(home, ignore_errors=True)
    return {"status": status, "error": error, "folder": folder}


class _Control:
    """Which runs the user cancelled; tasks look here between steps."""

    def __init__(self) -> None:
        self.stopped: set[str] = set()

    def cancel(self, run_id: str) -> None:
        self.stopped.add(run_id)

    def cancelled(self, run_id: str) -> bool:
        return run_id in self.stopped


# -- the driver -----------------------------------------------------------------------------------
def drive(store: RunStore, run_ids: list[str], address: str | None = None, *, data_mode: str | None = None,
          cpus_per_run: int = 1, num_cpus: int | None = None,
          on_event: Callable[[Run, str, str], None] = lambda run, kind, message: None) -> dict[str, str]:
    """Run these queued runs on Ray, writing their events into the store as they come; returns id -> status.

    Runs that are not queued any more (another driver or worker took them) are left alone.

    Args:
        store: the run store.
        run_ids: the runs.
        address: the cluster (see `connect`).
        data_mode: see `choose_data_mode`.
        cpus_per_run: CPUs each run takes on a CPU cluster.
        num_cpus: CPUs of a local instance.
        on_event: hears (run, kind, message) of every event.

    Returns:
        The final status of each run, by id.
    """
    ray = _ray()
    try:
        where = connect(address, num_cpus)
    except TransferLabError as exc:  # no Ray to run them: the runs say why instead of staying queued for ever
        for run_id in run_ids:
            if store.get(run_id).status == QUEUED:
                store.finish(run_id, FAILED, str(exc))
        raise
    from ray.util.queue import Empty, Queue

    remote_task = ray.remote(max_retries=0)(_task)
    control = ray.remote(_Control).options(num_cpus=0).remote()
    queue = Queue(actor_options={"num_cpus": 0})
    gpus = ray.cluster_resources().get("GPU", 0)
    resources = {"num_gpus": 1, "num_cpus": 1} if gpus >= 1 else {"num_cpus": cpus_per_run}
    shipped: dict[str, tuple] = {}  # manifest file -> (object ref of the pictures, manifest), once per split
    pending: dict = {}
    trackers: dict[str, RunTracker] = {}
    results: dict[str, str] = {}
    for run_id in run_ids:
        run = store.get(run_id)
        if run.status != QUEUED or not store.claim(run.id, os.getpid()):
            continue
        run = store.get(run.id)
        try:
            config = RunConfig.from_dict(run.config)
            split, weights, previous, mode = _what_travels(ray, run, config, address, data_mode, shipped)
        except TransferLabError as exc:
            store.add_event(run.id, "error", str(exc))
            store.finish(run.id, FAILED, str(exc))
            results[run.id] = FAILED
            continue
        trackers[run.id] = RunTracker(run.id, run.name, run.sweep, run.config, run.run_dir,
                                      warn=lambda text, rid=run.id: store.add_event(rid, "warning", text))
        store.add_event(run.id, "log", f"sent to {where}; data {'read in place' if mode == 'shared' else 'shipped'}; "
                                       f"{'1 GPU' if 'num_gpus' in resources else f'{cpus_per_run} CPU(s)'} per run")
        payload, manifest = split if split else (None, None)
        ref = remote_task.options(**resources).remote(run.id, run.config, run.resume,
                                                      str(data_home()) if mode == "shared" else None, payload,
                                                      manifest, weights, previous, queue, control)
        pending[ref] = run
    cancelled, beat = set(), 0.0
    while pending:
        _drain(queue, Empty, store, trackers, on_event)
        if time.monotonic() - beat > HEARTBEAT_EVERY_S:
            beat = time.monotonic()
            for run in pending.values():
                store.heartbeat(run.id)
        for run in pending.values():
            if run.id not in cancelled and store.cancel_requested(run.id):
                control.cancel.remote(run.id)
                cancelled.add(run.id)
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
        for ref in ready:
            run = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                result = {"status": FAILED, "error": _death_words(exc, store.get(run.id), data_mode), "folder": None}
            _drain(queue, Empty, store, trackers, on_event)
            results[run.id] = _finish(store, run, result, trackers.pop(run.id))
    return results


def _what_travels(ray, run: Run, config: RunConfig, address: str | None, forced: str | None, shipped: dict):
    if choose_data_mode(address, 0, forced) == "shared":
        return None, None, None, "shared"
    if config.adapt.method != "none" or config.evaluate_on:
        raise TransferLabError("target pictures and evaluate_on folders are not shipped to Ray workers",
                               "put them on a file system every node reads, and use --shared-data")
    key = config.data.manifest or config.data.source
    if key not in shipped:  # one copy per split in the object store, whatever the number of runs
        manifest, files, size = _split_files(config)
        choose_data_mode(address, size, forced)  # a split too large is refused before any picture is read
        shipped[key] = (ray.put(_split_payload(manifest, files)), manifest.to_dict())
    ref, manifest = shipped[key]
    weights = None
    if config.model.weights not in ("auto", "random", "") and Path(config.model.weights).is_file():
        weights = (Path(config.model.weights).name, Path(config.model.weights).read_bytes())
    previous = None
    if run.resume and Path(run.run_dir).is_dir():
        previous = _tar(lambda archive: archive.add(run.run_dir, arcname="."))
    return (ref, manifest), weights, previous, "ship"


def _drain(queue, empty, store: RunStore, trackers: dict, on_event) -> None:
    while True:
        try:
            run_id, kind, message, data = queue.get_nowait()
        except empty:
            return
        if "ray_pid" in data:  # a worker took it now: the time it waited in Ray's queue is not its own
            store.started_now(run_id)
        store.add_event(run_id, kind, message, data)
        if kind == "epoch" and run_id in trackers:
            trackers[run_id].epoch(data)
        on_event(store.get(run_id), kind, message)


def _death_words(exc: Exception, run: Run, data_mode: str | None) -> str:
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError):  # the task itself raised (outside the run's own handling)
        cause = exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
        first = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
        return (f"the run failed on its Ray worker before training: {first[:300]}; resume it with "
                f"`python -m tlcore runs resume {run.id}`")
    kind = type(exc).__name__
    lost = "" if data_mode != "ship" else (" Its checkpoints were on that worker's node: resuming starts it again "
                                           "from epoch 1 (seeded, so it ends as an uninterrupted run would).")
    return (f"the Ray worker running it died ({kind}) after {run.epochs_done} of {run.epochs} epochs; resume it with "
            f"`python -m tlcore runs resume {run.id}` (add --ray to resume it on Ray).{lost}")


def _finish(store: RunStore, run: Run, result: dict, tracker: RunTracker) -> str:
    from tlcore.results.artifacts import read_evaluation
    from tlcore.results.evaluate import Evaluation
    from tlcore.running.worker import record_results

    status, error = result["status"], result["error"]
    if result["folder"] is not None:
        _untar(result["folder"], Path(run.run_dir))
    if status == SUCCEEDED:
        evaluation = read_evaluation(run.run_dir)
        record_results(store, run, Evaluation.from_dict(evaluation) if evaluation else None, tracker)
    tracker.close(status)
    if error:
        store.add_event(run.id, "error" if status == FAILED else "log", error)
    store.finish(run.id, status if status in (SUCCEEDED, FAILED, CANCELLED) else FAILED, error)
    return status
