"""Shared fixtures: a private Transfer Lab data folder per test, generated images, the shared photo sets."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared"
HYMENOPTERA = SHARED / "datasets" / "hymenoptera"


SLOW = os.environ.get("TRANSFERLAB_SLOW") == "1"


def pytest_configure(config: pytest.Config) -> None:
    """Registers `slow`: end-to-end tests whose behaviour faster tests also pin at a lower level."""
    config.addinivalue_line("markers", "slow(why): an end-to-end test of 10 s or more; runs with TRANSFERLAB_SLOW=1 "
                                       "(.ci/run sets it), skipped by the default command")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skips tests marked `slow` unless TRANSFERLAB_SLOW=1, saying why and how to run them.

    The default command (the README's) stays under 10 minutes on 2 cores; `.ci/run` runs everything."""
    if SLOW:
        return
    for item in items:
        marker = item.get_closest_marker("slow")
        if marker is not None:
            why = marker.args[0] if marker.args else "an end-to-end test of 10 s or more"
            item.add_marker(pytest.mark.skip(reason=f"slow ({why}): set TRANSFERLAB_SLOW=1 to run it, as .ci/run does"))


PASSED = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Remembers whether each phase of a test passed, so fixtures can keep a failed test's files."""
    report = yield
    item.stash.setdefault(PASSED, {})[report.when] = report.passed
    return report


def processes_of(home: Path) -> list[int]:
    """Processes started for this data folder (their environment names it): workers, CLI runs, drivers."""
    mark = f"TRANSFERLAB_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


@pytest.fixture(autouse=True)
def tl_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
            request: pytest.FixtureRequest) -> Iterator[Path]:
    """Every test writes into its own data folder, never into the user's ~/.transferlab.

    When the test ends, whatever it started for that folder and left running is stopped: a worker still training
    a test's long run took both cores from the tests after it (the learning-rate finder test took 43 s instead
    of 1.3 s after test_store's resume test left its 80-epoch run training). The folder is removed when the test
    passed (a text run's checkpoints are 90 MB each; a full suite wrote 7 GB of them) and kept when it failed."""
    home = tmp_path_factory.mktemp("tlhome")
    monkeypatch.setenv("TRANSFERLAB_HOME", str(home))
    monkeypatch.setenv("TRANSFERLAB_WORKER_LINGER_S", "2")  # each test has its own folder: no worker waits long
    yield home
    for pid in processes_of(home):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 9)
    if request.node.stash.get(PASSED, {}).get("call", False):  # kept for reading only when the test failed
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def hymenoptera() -> Path:
    """The real ants/bees photos from ../shared; skipped (with the reason) where they are absent.

    CI sets TRANSFERLAB_REQUIRE_SHARED=1 so a missing folder fails there instead of passing quietly.
    """
    if not HYMENOPTERA.is_dir():
        reason = f"real photo set not found at {HYMENOPTERA} (../shared is only beside a developer checkout)"
        if os.environ.get("TRANSFERLAB_REQUIRE_SHARED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return HYMENOPTERA


def save_image(path: Path, size: tuple[int, int] = (40, 32), colour: tuple[int, int, int] = (200, 30, 30),
               seed: int | None = None, fmt: str = "JPEG") -> Path:
    """A small picture; with `seed`, random pixels so each file has its own content hash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if seed is None:
        img = Image.new("RGB", size, colour)
    else:
        rng = np.random.default_rng(seed)
        img = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))
    img.save(path, format=fmt)
    return path


def make_class_folders(root: Path, counts: dict[str, int], seed0: int = 0) -> Path:
    """root/<class>/img_<i>.jpg with distinct random content."""
    seed = seed0
    for label, n in counts.items():
        for i in range(n):
            save_image(root / label / f"img_{i:03d}.jpg", seed=seed)
            seed += 1
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(home: Path) -> Iterator[str]:
    """`streamlit run app.py` as the README starts it, on a free port; yields the base URL once healthy."""
    port = _free_port()
    log_path = Path(home) / f"streamlit-{port}.log"  # a file, not a pipe: an unread pipe fills and hangs the server
    log = log_path.open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],  # no source reloads in tests
        cwd=ROOT, env={**os.environ, "TRANSFERLAB_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"streamlit did not start: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def ray_or_skip():
    """Ray (optional: requirements-scale.txt) for a test module; CI (TRANSFERLAB_REQUIRE_SCALE=1) fails without it."""
    try:
        import ray
    except ImportError:
        reason = "Ray is optional and not installed here: pip install -r requirements-scale.txt"
        if os.environ.get("TRANSFERLAB_REQUIRE_SCALE") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason, allow_module_level=True)
    return ray


def chromium_or_skip() -> tuple[str, str]:
    """Debian's chromium and chromedriver; CI (TRANSFERLAB_REQUIRE_BROWSER=1) fails instead of skipping."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        reason = "headless Chromium not installed (Debian packages chromium and chromium-driver; .ci/run installs them)"
        if os.environ.get("TRANSFERLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return browser, driver


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that passed no test at all (everything skipped or deselected) is a failure, loudly."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    passed = len(reporter.stats.get("passed", [])) if reporter else 0
    if exitstatus == 0 and passed == 0:
        print("\nerror: no test passed (all skipped or none collected): treating the run as failed", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@dataclass
class CliResult:
    """What a `python -m tlcore` command did: exit status and output (as subprocess.CompletedProcess has them)."""

    returncode: int
    stdout: str
    stderr: str


def tlcore_in_process(*args: str, home: Path | None = None) -> CliResult:
    """`python -m tlcore ARGS` in this process, from the project folder, with the test's data folder (or `home`):
    the same `main` the console runs, without paying ~4 s of imports per command. Tests of real processes
    (background workers, signals, permissions) keep using subprocesses."""
    from tlcore.cli import main

    out, err = io.StringIO(), io.StringIO()
    before = os.environ.get("TRANSFERLAB_HOME")
    if home is not None:
        os.environ["TRANSFERLAB_HOME"] = str(home)
    try:
        with contextlib.chdir(ROOT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse: usage errors and --help
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        if home is not None:
            if before is None:
                os.environ.pop("TRANSFERLAB_HOME", None)
            else:
                os.environ["TRANSFERLAB_HOME"] = before
    return CliResult(code, out.getvalue(), err.getvalue())


def cli_actions() -> list[tuple[str, "argparse.Action"]]:
    """Every argument of every command of `python -m tlcore`, read from the parser itself, as (command, action):
    what the CLI fuzzers must cover, so a new option cannot go unchecked."""
    import argparse

    from tlcore.cli import build_parser

    found = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            for name, sub in subs[0].choices.items():
                walk(sub, path + [name])
            return
        found.extend((" ".join(path), action) for action in parser._actions)
    walk(build_parser(), [])
    return found
