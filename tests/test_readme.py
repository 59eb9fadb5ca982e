"""The README's Python API example runs as written, so it cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def python_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"<!-- python-api -->\s*```python\n(.*?)```\s*<!-- /python-api -->", text, re.S)
    assert blocks, "the README lost its Python API example"
    return blocks


@pytest.mark.slow("the README's example trains and exports a run")
def test_the_readme_python_example_runs(tmp_path: Path, tl_home: Path) -> None:
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")  # "from this folder", as the README says
    for snippet in python_snippets():
        result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                                timeout=600, env={**os.environ, "TRANSFERLAB_HOME": str(tl_home),
                                                  "PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, result.stderr[-3000:]
        accuracy = float(re.search(r"test accuracy (\d\.\d+)", result.stdout).group(1))
        assert accuracy > 0.5  # 4 classes: chance is 0.25
        assert "square" in result.stdout or "star" in result.stdout
    assert (tmp_path / "my_export" / "model.onnx").is_file()


@pytest.mark.slow("the README's comparison example trains its runs")
def test_the_readme_comparison_example_runs(tmp_path: Path, tl_home: Path) -> None:
    text = (ROOT / "README.md").read_text()
    snippet = re.search(r"<!-- python-compare -->\s*```python\n(.*?)```\s*<!-- /python-compare -->", text, re.S)
    assert snippet, "the README lost its comparison example"
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    result = subprocess.run([sys.executable, "-c", snippet.group(1)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=900, env={**os.environ, "TRANSFERLAB_HOME": str(tl_home), "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    accuracies = [float(a) for a in re.findall(r": succeeded, test accuracy (\d\.\d+)", result.stdout)]
    assert len(accuracies) == 2 and min(accuracies) > 0.25, result.stdout  # 4 classes: chance is 0.25
    assert result.stdout.count("2 epochs") == 2 and result.stdout.count("'best'") == 2
    reports = sorted(p.name for p in (tmp_path / "my_reports").iterdir())
    assert len(reports) == 3 and any(n.endswith("-cells.csv") for n in reports)


def test_slow_tests_skip_by_default_and_ci_runs_them(tmp_path: Path) -> None:
    """The README's command leaves tests marked slow out, saying how to run them; `.ci/run` always runs them."""
    env = {k: v for k, v in os.environ.items() if k != "TRANSFERLAB_SLOW"}
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/test_ddp.py", "-q", "-rs", "-p", "no:cacheprovider",
                           "--basetemp", str(tmp_path / "t")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    marked = (ROOT / "tests" / "test_ddp.py").read_text().count("@pytest.mark.slow(")
    assert marked >= 3 and re.search(rf"\b1 passed, {marked} skipped\b", done.stdout), done.stdout[-2000:]
    assert "slow (two torchrun processes): set TRANSFERLAB_SLOW=1 to run it" in done.stdout
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^export TRANSFERLAB_SLOW=1$", ci, re.M), "CI must run the slow tests"
