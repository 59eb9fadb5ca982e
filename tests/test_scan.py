"""The scan report: what is usable, what was skipped and why, and what looks wrong."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_class_folders, save_image
from tlcore.data import scan
from tlcore.data.scan import ScanReport
from tlcore.errors import DatasetError


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """Two classes of good pictures plus every kind of bad file the scan must catch."""
    root = make_class_folders(tmp_path / "parts", {"ok": 25, "dent": 22})
    bad = root / "dent"
    good_jpeg = (root / "ok" / "img_000.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 2])
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "notes.jpg").write_text("this is text, not a picture")
    buffer = io.BytesIO()
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(buffer, format="JPEG")
    (root / "ok" / "cmyk.jpg").write_bytes(buffer.getvalue())
    Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16)).save(root / "ok" / "sixteen.png")
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(root / "ok" / "clear.png")
    # Clutter that is never data.
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "ok" / "._img_000.jpg").write_bytes(b"mac resource fork")
    save_image(root / ".ipynb_checkpoints" / "x.jpg", seed=999)
    save_image(root / "__MACOSX" / "ok" / "img_000.jpg", seed=998)
    return root


def test_scan_counts_usable_images_and_explains_skips(messy: Path) -> None:
    report = scan(messy)
    assert report.ok, report.errors
    assert report.layout == "class_folders"
    assert report.classes == ["dent", "ok"]  # __MACOSX and dot folders are not classes
    assert report.counts == {"dent": 22, "ok": 28}  # CMYK, 16-bit and RGBA files are usable
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons == {"dent/truncated.jpg": "truncated", "dent/zero.jpg": "empty", "dent/notes.jpg": "not_image"}
    modes = {r.path: r.mode for r in report.images}
    assert modes["ok/cmyk.jpg"] == "CMYK" and modes["ok/clear.png"] == "RGBA"
    assert modes["ok/sixteen.png"].startswith("I")
    assert all(".DS_Store" not in s.path and "._" not in s.path for s in report.skipped)
    assert report.size_stats["min_width"] == 20 and report.size_stats["max_width"] == 40
    assert "3 file(s) skipped" in " ".join(report.warnings)
    text = report.summary()
    assert "dent/truncated.jpg: truncated image" in text and "22" in text


def test_report_round_trips_through_json(messy: Path) -> None:
    report = scan(messy)
    again = ScanReport.from_dict(json.loads(report.to_json()))
    assert again == report


def test_duplicates_label_conflicts_and_leakage(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "d", {"cat": 5, "dog": 5})
    (root / "cat" / "copy.jpg").write_bytes((root / "cat" / "img_000.jpg").read_bytes())
    (root / "dog" / "mislabelled.jpg").write_bytes((root / "cat" / "img_001.jpg").read_bytes())
    report = scan(root)
    assert len(report.duplicates) == 2
    assert [g.paths for g in report.label_conflicts] == [["cat/img_001.jpg", "dog/mislabelled.jpg"]]
    assert report.leakage == []
    assert any("appear in two classes" in w for w in report.warnings)

    split_root = tmp_path / "s"
    save_image(split_root / "train" / "cat" / "a.jpg", seed=1)
    save_image(split_root / "train" / "dog" / "b.jpg", seed=2)
    save_image(split_root / "test" / "cat" / "a_again.jpg", seed=1)
    save_image(split_root / "test" / "dog" / "c.jpg", seed=3)
    leaky = scan(split_root)
    assert [g.splits for g in leaky.leakage] == [["train", "test"]]
    assert any("two splits" in w for w in leaky.warnings)


def test_imbalance_and_small_class_warnings(tmp_path: Path) -> None:
    report = scan(make_class_folders(tmp_path / "d", {"ok": 60, "rust": 8}))
    joined = " ".join(report.warnings)
    assert "'rust' has only 8 images" in joined
    assert "imbalanced" in joined and "expect lower recall on 'rust'" in joined


def test_format_outlier_is_flagged_but_kept(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "d", {"a": 30, "b": 30})
    save_image(root / "a" / "placeholder.gif", fmt="GIF")
    report = scan(root)
    assert report.counts["a"] == 31
    assert [s.path for s in report.suspects] == ["a/placeholder.gif"]


def test_single_wrapping_folder_is_entered(tmp_path: Path) -> None:
    make_class_folders(tmp_path / "wrapper" / "data", {"a": 3, "b": 3})
    (tmp_path / "wrapper" / "README.txt").write_text("my photos")
    report = scan(tmp_path / "wrapper")
    assert report.root.endswith("data") and report.classes == ["a", "b"]


def test_stray_files_are_listed_not_used(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "d", {"a": 3, "b": 3})
    save_image(root / "loose.jpg", seed=50)
    report = scan(root)
    assert report.stray_files == ["loose.jpg"] and len(report.images) == 6


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: p / "missing", "no such folder"),
        (lambda p: save_image(p / "one.jpg"), "is a file, not a folder"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no class folders"),
        (lambda p: make_class_folders(p / "d", {"only": 4}), "only one class ('only')"),
    ],
    ids=["missing-path", "file-not-folder", "no-class-folders", "one-class"],
)
def test_unusable_layouts_raise_one_clear_error(tmp_path: Path, build, message: str) -> None:
    with pytest.raises(DatasetError) as info:
        scan(build(tmp_path))
    text = str(info.value)
    assert message in text and "\n" not in text and ": " in text  # problem, then what to do


def test_empty_class_is_an_error(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "d", {"a": 4, "b": 4})
    (root / "c").mkdir()
    report = scan(root)
    assert report.errors == ["class 'c' has no usable images (it is empty): add images to it or remove the folder"]


def test_every_file_unreadable_is_an_error(tmp_path: Path) -> None:
    for label in ("a", "b"):
        (tmp_path / "d" / label).mkdir(parents=True)
        (tmp_path / "d" / label / "x.jpg").write_text("not a picture")
    report = scan(tmp_path / "d")
    assert not report.ok
    assert report.errors[0].startswith("no usable images: all 2 files were skipped (2 not image)")


def _tl(*args: str, home: Path, timeout: float = 120, **env):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    return subprocess.run([sys.executable, "-m", "tlcore", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TRANSFERLAB_HOME": str(home), **env})


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero and FIFOs (POSIX)")
def test_devices_pipes_and_huge_files_are_skipped_without_reading_them(tmp_path: Path, tl_home: Path) -> None:
    import os

    root = make_class_folders(tmp_path / "data", {"a": 4, "b": 4})
    (root / "a" / "zero.jpg").symlink_to("/dev/zero")  # would read until memory runs out
    os.mkfifo(root / "b" / "pipe.jpg")  # would block forever
    with open(root / "b" / "video.jpg", "wb") as fh:  # 3 GB, sparse: costs no disk
        fh.truncate(3 * 2**30)
    result = _tl("data", "scan", str(root), "--json", home=tl_home, timeout=120)  # it used to hang or run out of memory
    report = json.loads(result.stdout)
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    # a link to /dev/zero leads out of the folder: refused as such before its type is even looked at
    assert reasons == {"a/zero.jpg": "link_out", "b/pipe.jpg": "not_a_file", "b/video.jpg": "too_large"}
    assert report["counts"] == {"a": 4, "b": 4}
    small = scan(root, max_file_mb=0.001)  # the limit is the user's to change
    assert {s.reason for s in small.skipped} == {"link_out", "not_a_file", "too_large"} and len(small.skipped) == 11


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs FIFOs (POSIX)")
def test_predict_on_a_huge_file_or_a_pipe_says_why_without_reading_it(tmp_path: Path, tl_home: Path) -> None:
    import os

    huge = tmp_path / "movie.jpg"
    with open(huge, "wb") as fh:
        fh.truncate(3 * 2**30)
    os.mkfifo(tmp_path / "pipe.jpg")
    from tlcore.data.images import ImageReadError, read_picture_file

    for path, reason in ((huge, "too_large"), (tmp_path / "pipe.jpg", "not_a_file"), (tmp_path, "not_a_file")):
        with pytest.raises(ImageReadError) as info:
            read_picture_file(path)
        assert info.value.reason == reason
    with pytest.raises(ImageReadError, match="over the 1 MiB limit"):
        read_picture_file(huge, max_bytes=2**20)


def test_class_names_people_cannot_tell_apart_or_read_are_errors(tmp_path: Path) -> None:
    """Issue 28: NFC and NFD spellings of one name became two identical-looking classes; a newline broke tables."""
    import unicodedata

    from conftest import make_class_folders

    composed, decomposed = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    root = make_class_folders(tmp_path / "two", {composed: 3, decomposed: 3, "tea": 3})
    report = scan(root)
    assert not report.ok and any("look the same" in e and "merge them" in e for e in report.errors)
    lines = make_class_folders(tmp_path / "lines", {"ok": 3, "two\nlines": 3})
    report = scan(lines)
    assert not report.ok and any("line break" in e for e in report.errors)
    plain = scan(make_class_folders(tmp_path / "plain", {composed: 3, "tea": 3}))
    assert not any("look the same" in e or "line break" in e for e in plain.errors)


def test_a_link_to_a_picture_outside_the_folder_is_skipped_not_read(tmp_path: Path) -> None:
    """Issue 37, found by tests/test_fuzz_files.py: text files behind links out of the folder were refused, but a
    link from a class folder to a picture elsewhere on the machine was read and trained on."""
    root = make_class_folders(tmp_path / "data", {"ok": 4, "dent": 4})
    outside = save_image(tmp_path / "elsewhere" / "private.png", seed=77, fmt="PNG")
    (root / "ok" / "holiday.png").symlink_to(outside)
    (root / "dent" / "same_folder.jpg").symlink_to(root / "ok" / "img_000.jpg")  # a link inside the folder is fine
    report = scan(root)
    assert [s.path for s in report.skipped if s.reason == "link_out"] == ["ok/holiday.png"]
    assert "dent/same_folder.jpg" in {r.path for r in report.images} and len(report.images) == 9
