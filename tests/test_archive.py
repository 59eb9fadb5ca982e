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


def _zip_with(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return path


def _patched(path: Path, **changes) -> Path:
    """Rewrite fields of every local and central header (method, flags), as other zip tools would have."""
    data = bytearray(path.read_bytes())
    for signature, method_at, flags_at in ((b"PK\x03\x04", 8, 6), (b"PK\x01\x02", 10, 8)):
        start = 0
        while (at := data.find(signature, start)) >= 0:
            if "method" in changes:
                data[at + method_at:at + method_at + 2] = changes["method"].to_bytes(2, "little")
            if "flags" in changes:
                data[at + flags_at:at + flags_at + 2] = changes["flags"].to_bytes(2, "little")
            start = at + 4
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: _zip_with(p, [("data/a", b"file"), ("data/a/b.jpg", b"x")]), "clashes with another entry"),
    (lambda p: _zip_with(p, [("data/a/b.jpg", b"x"), ("data/a", b"file")]), "clashes with another entry"),
    (lambda p: _patched(_zip_with(p, [("data/a/b.jpg", b"x" * 100)]), flags=1), "is encrypted"),
    (lambda p: _patched(_zip_with(p, [("data/a/b.jpg", b"x" * 100)]), method=9), "compression method 9"),
    (lambda p: _zip_with(p, [("data/a/" + "n" * 300 + ".jpg", b"x")]), "name too long"),
])
def test_awkward_zips_are_one_line_errors_and_leave_nothing(tmp_path: Path, tl_home: Path, make, message: str) -> None:
    zip_path = make(tmp_path / "awkward.zip")
    with pytest.raises(DatasetError, match=message):
        extract_zip(zip_path)
    assert not list((tl_home / "datasets").glob("*"))


def test_many_entries_just_under_the_ratio_limit_are_a_bomb(tmp_path: Path, tl_home: Path) -> None:
    zip_path = tmp_path / "many.zip"
    limits = ZipLimits(ratio_floor_bytes=2**20)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i in range(12):  # each just under the size where the per-entry ratio is checked, each ~1000x
            archive.writestr(f"d/c/{i}.bin", bytes(limits.ratio_floor_bytes - 1))
    assert all(i.file_size <= limits.ratio_floor_bytes for i in zipfile.ZipFile(zip_path).infolist())
    with pytest.raises(DatasetError, match="zip bomb"):
        extract_zip(zip_path, limits=limits)
    assert not list((tl_home / "datasets").glob("*"))


def test_two_scans_of_the_same_zip_at_once(tmp_path: Path, tl_home: Path) -> None:
    import threading

    folder = make_class_folders(tmp_path / "parts", {"ok": 20, "scratch": 20})
    zip_path = zip_folder(folder, tmp_path / "parts.zip")
    results, errors = [], []

    def go() -> None:
        try:
            results.append(extract_zip(zip_path))
        except BaseException as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(results)) == 1
    assert sorted(p.name for p in (tl_home / "datasets").iterdir()) == [results[0].name]


@pytest.mark.parametrize("seed", range(25))
def test_fuzz_random_zips_give_only_dataset_errors(tmp_path: Path, tl_home: Path, seed: int) -> None:
    import random

    rng = random.Random(seed)
    names = ["a/b.jpg", "a", "a/", "../x", "/abs", "c:/x", "ok/1.png", "ok/2.png", "ok", "é/ü.jpg", "x" * 300,
             "a/b.jpg/c", "", ".hidden/x", "__MACOSX/y"]
    path = tmp_path / "fuzz.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for _ in range(rng.randint(1, 6)):
            info = zipfile.ZipInfo(rng.choice(names) or "blank")
            info.compress_type = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
            if rng.random() < 0.2:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, rng.randbytes(rng.randint(0, 2000)))
    data = bytearray(path.read_bytes())
    if seed % 2:
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    if seed % 5 == 0:
        data = data[: rng.randint(1, len(data))]
    path.write_bytes(bytes(data))
    try:
        folder = extract_zip(path)
    except DatasetError as exc:
        assert "\n" not in str(exc)
        assert not list((tl_home / "datasets").glob(".extract-*"))  # no half-extracted folder left
    else:
        assert folder.is_dir() and folder.is_relative_to(tl_home / "datasets")
