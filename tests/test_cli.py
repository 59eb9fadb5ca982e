"""`python -m tlcore data ...` as a user runs it: real processes, one-line errors, exit codes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from conftest import make_class_folders, tlcore_in_process


def tlcore(*args: str, home: Path):
    """The command in this process, with `home` as the data folder."""
    return tlcore_in_process(*args, home=home)


def test_scan_sample_data(tl_home: Path) -> None:
    result = tlcore("data", "scan", "sample_data", home=tl_home)
    assert result.returncode == 0, result.stderr
    assert "4 classes, 240 usable images, 0 skipped" in result.stdout
    report = json.loads(tlcore("data", "scan", "sample_data", "--json", home=tl_home).stdout)
    assert report["classes"] == ["circle", "square", "star", "triangle"]


def test_split_writes_a_manifest_that_is_the_same_for_the_same_seed(tl_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "split.json"
    first = tlcore("data", "split", "sample_data", "--seed", "7", "--out", str(out), home=tl_home)
    assert first.returncode == 0, first.stderr
    assert f"manifest written to {out}" in first.stdout
    assert all(line.endswith("of 3)") for line in first.stderr.splitlines())  # at most the slow phases' counts
    content = out.read_text()
    tlcore("data", "split", "sample_data", "--seed", "7", "--out", str(out), home=tl_home)
    assert out.read_text() == content
    assert json.loads(content)["seed"] == 7
    default = tlcore("data", "split", "sample_data", home=tl_home)
    assert default.returncode == 0 and str(tl_home / "splits") in default.stdout


def test_a_slow_split_says_each_phase_with_its_count(tl_home: Path, tmp_path: Path, monkeypatch) -> None:
    """Issue 37: a million-row CSV was read, split and saved for 27 s without a word."""
    import tlcore.cli.shared as shared

    monkeypatch.setattr(shared, "PHASE_SHOWN_AFTER_S", 0.0)  # every phase counts as slow
    done = tlcore_in_process("data", "split", "sample_data", "--out", str(tmp_path / "s.json"), home=tl_home)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["reading sample_data (1 of 3)", "splitting 240 items (2 of 3)",
                                        "saving the split (3 of 3)"]


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    single = make_class_folders(tmp_path / "single", {"only": 3})
    empty = make_class_folders(tmp_path / "empty", {"a": 3, "b": 3})
    (empty / "c").mkdir()
    unreadable = tmp_path / "unreadable"
    for label in ("a", "b"):
        (unreadable / label).mkdir(parents=True)
        (unreadable / label / "x.jpg").write_text("text")
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as archive:
        archive.writestr("../../outside.jpg", b"x")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a/big.jpg", b"\0" * (40 * 2**20))
    (tmp_path / "flat").mkdir()
    return {
        "missing": (tmp_path / "nope", "no such folder or zip"),
        "file": (Path(__file__), "is a file, not a folder or .zip"),
        "no-classes": (tmp_path / "flat", "no class folders"),
        "one-class": (single, "only one class"),
        "empty-class": (empty, "class 'c' has no usable images"),
        "unreadable": (unreadable, "no usable images: all 2 files were skipped"),
        "zip-slip": (slip, "points outside the extraction folder"),
        "zip-bomb": (bomb, "zip bomb"),
    }


@pytest.mark.parametrize("case", ["missing", "file", "no-classes", "one-class", "empty-class", "unreadable", "zip-slip", "zip-bomb"])
def test_bad_input_gives_one_line_and_nonzero_exit(case: str, tmp_path: Path, tl_home: Path) -> None:
    path, message = _bad_inputs(tmp_path)[case]
    for command in ("scan", "split"):
        result = tlcore("data", command, str(path), home=tl_home)
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], result.stderr
        assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path.parent / "outside.jpg").exists()
