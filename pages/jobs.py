"""Work the pages hand to a child process (`python -m tlcore ...`): time estimates and model ranking, followed
by their output lines, so the web server never imports torch for them and a page can leave while they run."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from tlcore.config import RunConfig
from tlcore.errors import TransferLabError
from tlcore.core.events import Progress
from tlcore.core.paths import data_home
from tlcore.experiments.timing import TimeEstimate, features_cached_by, timing_key
from pages.state import PROJECT_ROOT, experiment, open_store, save_experiment

__all__ = ["job_folder", "TlcoreJob", "measured_time_estimates", "rank_in_a_child_process", "known_time_estimate"]


def job_folder(command: str) -> Path:
    """A new folder for one child process's files, in the data folder."""
    (data_home() / "jobs").mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{command}-", dir=data_home() / "jobs"))


class TlcoreJob:
    """A `python -m tlcore ...` child process that a page follows through its output and can cancel.

    Anything that trains or measures runs in its own process, as runs do: the server never holds a model
    in training (nor, on a GPU, the device's memory), and a crash or a cancel cannot take the app down.
    """

    def __init__(self, args: list[str], folder: Path) -> None:
        self.folder = folder
        with (folder / "stdout.txt").open("w") as out, (folder / "stderr.txt").open("w") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "tlcore", *args], cwd=PROJECT_ROOT, stdout=out,
                                            stderr=err, stdin=subprocess.DEVNULL)
        threading.Thread(target=self.process.wait, daemon=True).start()  # reaped whoever stops following it

    @classmethod
    def start(cls, command: str, configs: list[RunConfig], *extra: str) -> "TlcoreJob":
        """`tlcore COMMAND CONFIG... EXTRA...`, where "{folder}" in EXTRA is the job's own folder."""
        folder = job_folder(command)
        extra = tuple(arg.format(folder=folder) for arg in extra)
        paths = []
        for i, config in enumerate(configs):
            paths.append(folder / f"config-{i}.json")
            paths[-1].write_text(config.to_json())
        return cls([command, *map(str, paths), *extra], folder)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def lines(self, name: str = "stdout.txt") -> list[str]:
        """The complete lines written so far (a line still being written is left for the next look)."""
        try:
            text = (self.folder / name).read_text()
        except OSError:
            return []
        return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]

    def error(self) -> str | None:
        """None while running or after success; else the command's own one-line error."""
        code = self.process.poll()
        if code in (None, 0):
            return None
        if code < 0:
            return "cancelled"
        errors = [line[7:] for line in self.lines("stderr.txt") if line.startswith("error: ")]
        return errors[-1] if errors else f"it stopped with exit code {code}; see {self.folder / 'stderr.txt'}"

    def cancel(self) -> None:
        if self.running:
            self.process.terminate()


def measured_time_estimates(configs: list[RunConfig], progress: Callable[[str, float], None]) -> list[TimeEstimate]:
    """Time estimates of runs, measured in a child process once per distinct step cost (`timing_key`: runs that
    differ only in learning rate, schedule, seed or epochs share one) and kept in the experiment, so a reload or a
    restarted server shows them again; `progress(words, share)` as each phase of the measuring starts (words such
    as "setting 1 of 2: timing training steps (3 of 8)", share from 0 to 1).

    Raises: TransferLabError when the measuring process fails.
    """
    current = experiment()
    known: dict[str, dict] = current.results.setdefault("estimates", {})
    longest: dict[str, RunConfig] = {}  # per key, the run with the most epochs: the others take its first epochs
    for config in configs:
        key = timing_key(config)
        if known_time_estimate(config) is None and (key not in longest or config.epochs > longest[key].epochs):
            longest[key] = config
    if longest:
        job = TlcoreJob.start("estimate", list(longest.values()), "--json", "--progress", "{folder}/progress.jsonl")
        try:
            while job.running:  # before its first phase the process is importing PyTorch: said, so the wait counts
                progress(*(_last_phase(job) or ("starting the measuring process (it imports PyTorch first)", 0.0)))
                time.sleep(0.3)
            if job.error():
                raise TransferLabError(f"the time could not be measured: {job.error()}")
            for key, line in zip(longest, job.lines()):
                known[key] = json.loads(line) | {"measured_at": time.time()}  # a later run may cache its features
            save_experiment()
        finally:
            job.cancel()  # the page was left or rerun while it measured: stop measuring
    return [known_time_estimate(c) for c in configs]


def _last_phase(job: TlcoreJob) -> tuple[str, float] | None:
    """The phase the measuring child process is in, from its progress file: (words with the count, share)."""
    for line in reversed(job.lines("progress.jsonl")):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        phase = Progress.from_data(data)
        if phase is not None and isinstance(data.get("words"), str):
            return f"{data['words']} ({phase.done + 1} of {phase.total})", phase.share
    return None


def rank_in_a_child_process(config: RunConfig, candidates: list[str]) -> None:
    """`tlcore models rank` on the experiment's split, with a progress bar; the scores are kept in the experiment.

    Raises: TransferLabError when ranking fails.
    """
    folder = job_folder("rank")
    (folder / "config.json").write_text(config.to_json())
    job = TlcoreJob(["models", "rank", "--config", str(folder / "config.json"), "--models", ",".join(candidates),
                     "--json"], folder)
    bar = st.progress(0.0, text=f"Extracting features with {candidates[0]}...")
    try:
        while job.running:
            done = len(job.lines())
            if done < len(candidates):
                bar.progress(done / len(candidates), text=f"{done} of {len(candidates)} models scored; now "
                                                          f"{candidates[done]}...")
            time.sleep(0.3)
        if job.error():
            raise TransferLabError(f"the models could not be ranked: {job.error()}")
        experiment().results["ranking"] = {"asked": candidates, "scores": [json.loads(x) for x in job.lines()]}
        save_experiment()
    finally:
        job.cancel()
        bar.empty()


def known_time_estimate(config: RunConfig) -> TimeEstimate | None:
    """The estimate this experiment measured for this run config or one of the same step cost, if any (one
    measured over fewer epochs than the config has does not say enough)."""
    known = experiment().results.get("estimates", {}).get(timing_key(config))
    try:
        estimate = TimeEstimate.from_dict(known) if known else None
        measured_at = float(known.get("measured_at", 0.0)) if known else 0.0
    except (KeyError, TypeError, ValueError, AttributeError):  # an estimate edited in the experiment's file
        estimate = None
    if estimate is None or len(estimate.epoch_s) < config.epochs:  # fewer epochs do not say enough
        return None
    if estimate.extract_s > 0:  # a run since may have cached the features this one would extract
        cached_by = features_cached_by(open_store(), config, measured_at)
        if cached_by:
            estimate = estimate.with_features_cached(cached_by)
    return estimate.for_epochs(config.epochs)
