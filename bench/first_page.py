"""Seconds until the app's first page (Data) has drawn itself, in a new process, against a plain loop in the same
run: the same process doing nothing but start Streamlit's test runner, and one that imports torch + timm.

Each is timed REPEATS times from a new process with a fresh data folder (median). `--root PATH` times another
checkout of the project too (e.g. an older commit from `git worktree add`), so a before/after is one table.
Usage: `.venv/bin/python bench/first_page.py [--root PATH]`
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 5

FIRST_PAGE = """
import sys
from streamlit.testing.v1 import AppTest
app = AppTest.from_file({app!r}, default_timeout=300).run()
assert not app.exception, [e.value for e in app.exception]
print('HEAVY', sorted(m for m in ('torch', 'timm', 'albumentations') if m in sys.modules))
"""
RUNNER_ONLY = "from streamlit.testing.v1 import AppTest"
TORCH_TIMM = "from streamlit.testing.v1 import AppTest\nimport torch, timm"


def seconds(code: str, cwd: Path) -> tuple[float, str]:
    """Median seconds of `python -c code` from a new process with a fresh data folder, and its last output."""
    times, out = [], ""
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory(prefix="tl-bench-page-") as home:
            env = {**os.environ, "TRANSFERLAB_HOME": home, "PYTHONPATH": str(cwd)}
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - started)
            if result.returncode:
                raise SystemExit(f"failed in {cwd}: {result.stderr[-2000:]}")
            out = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", default=[], help="another checkout to time beside this one")
    args = parser.parse_args()
    rows = [("plain loop: start the test runner only", *seconds(RUNNER_ONLY, ROOT)),
            ("plain loop: the runner + import torch, timm", *seconds(TORCH_TIMM, ROOT))]
    for root in [ROOT, *map(Path, args.root)]:
        rows.append((f"first page (Data), {root.name}", *seconds(FIRST_PAGE.format(app=str(root / "app.py")), root)))
    print(f"median of {REPEATS}, new process each, {os.cpu_count()} cores\n")
    print("| what | seconds | heavy modules loaded |\n| --- | --- | --- |")
    for name, value, out in rows:
        print(f"| {name} | {value:.2f} | {out.removeprefix('HEAVY ') if out.startswith('HEAVY') else ''} |")


if __name__ == "__main__":
    main()
