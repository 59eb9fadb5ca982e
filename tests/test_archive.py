"""Zips are unpacked into the data folder only, and never trusted."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from conftest import make_class_folders
from tlcore.data import ZipLimits, extract_zip, scan
from tlcore.errors import DatasetError


def zip_folder(folder: Path, zip_path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w") as archive:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                archive.write(f, prefix + f.relative_to(folder).as_posix())
    return zip_path


def test_mac_zip_scans_like_the_folder(tmp_path: Path, tl_home: Path) -> None:
    folder = make_class_folders(tmp_path / "parts", {"ok": 6, "scratch": 5})
    zip_path = zip_folder(folder, tmp_path / "parts.zip", prefix="parts/")
    with zipfile.ZipFile(zip_path, "a") as archive:
        archive.writestr("__MACOSX/parts/ok/._img_000.jpg", b"resource fork")
        archive.writestr("parts/.DS_Store", b"finder")
    report = scan(zip_path)
    assert report.ok and report.counts == {"ok": 6, "scratch": 5} and report.skipped == []
    assert Path(report.root).is_relative_to(tl_home / "datasets")
    assert not list((tl_home / "datasets").rglob("__MACOSX"))
    assert scan(zip_path).root == report.root  # the same zip is unpacked once


@pytest.mark.parametrize("entry", ["../evil.jpg", "a/../../evil.jpg", "/tmp/evil.jpg", "C:/evil.jpg", "..\\evil.jpg"])
def test_zip_slip_is_refused_and_nothing_is_written(tmp_path: Path, tl_home: Path, entry: str) -> None:
    zip_path = tmp_path / "slip.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("ok/a.jpg", b"x")
        archive.writestr(entry, b"evil")
    with pytest.raises(DatasetError, match="points outside the extraction folder"):
        extract_zip(zip_path)
    assert not (tmp_path / "evil.jpg").exists() and not Path("/tmp/evil.jpg").exists()
    assert list((tl_home / "datasets").iterdir()) == []  # no half-extracted folder left behind


def test_symlink_entries_are_not_created(tmp_path: Path) -> None:
    folder = make_class_folders(tmp_path / "d", {"a": 3, "b": 3})
    zip_path = zip_folder(folder, tmp_path / "links.zip")
    with zipfile.ZipFile(zip_path, "a") as archive:
        link = zipfile.ZipInfo("a/passwd.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    target = extract_zip(zip_path)
    assert not (target / "a" / "passwd.jpg").exists()
    assert not any(p.is_symlink() for p in target.rglob("*"))


def test_zip_bomb_is_refused(tmp_path: Path, tl_home: Path) -> None:
    zip_path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a/zeros.jpg", b"\0" * (64 * 2**20))  # 64 MiB of zeros, ~64 KiB packed
    with pytest.raises(DatasetError, match="zip bomb"):
        extract_zip(zip_path)
    assert list((tl_home / "datasets").iterdir()) == []


def test_size_and_count_limits(tmp_path: Path) -> None:
    folder = make_class_folders(tmp_path / "d", {"a": 3, "b": 3})
    zip_path = zip_folder(folder, tmp_path / "d.zip")
    with pytest.raises(DatasetError, match="over the limit of 5"):
        extract_zip(zip_path, limits=ZipLimits(max_files=5))
    with pytest.raises(DatasetError, match="would unpack to"):
        extract_zip(zip_path, limits=ZipLimits(max_total_bytes=1000))


def test_not_a_zip(tmp_path: Path) -> None:
    fake = tmp_path / "photos.zip"
    fake.write_text("not a zip")
    with pytest.raises(DatasetError, match="is not a zip archive"):
        scan(fake)
