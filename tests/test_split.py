"""The split: stratified, seeded, duplicate-safe, and written down once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_class_folders, save_image
from tlcore.data import SplitManifest, make_split, scan
from tlcore.errors import DatasetError


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_class_folders(tmp_path / "d", {"a": 40, "b": 20, "c": 10})


def test_same_seed_same_split_different_seed_different_split(dataset: Path) -> None:
    report = scan(dataset)
    first, again = make_split(report, seed=3), make_split(scan(dataset), seed=3)
    assert first.items == again.items and first.id == again.id
    other = make_split(report, seed=4)
    assert other.id != first.id
    assert sorted(i.path for i in other.items) == sorted(i.path for i in first.items)


def test_split_is_stratified_per_class(dataset: Path) -> None:
    counts = make_split(scan(dataset), seed=0, val=0.2, test=0.1).counts()
    assert counts["val"] == {"a": 8, "b": 4, "c": 2}
    assert counts["test"] == {"a": 4, "b": 2, "c": 1}
    assert counts["train"] == {"a": 28, "b": 14, "c": 7}


def test_every_file_in_exactly_one_split(dataset: Path) -> None:
    manifest = make_split(scan(dataset), seed=1)
    paths = [i.path for i in manifest.items]
    assert len(paths) == len(set(paths)) == 70
    files = manifest.files("test")
    assert all(p.is_file() for p, _ in files)
    assert {y for _, y in files} == {0, 1, 2}  # class indexes follow manifest.classes


def test_split_does_not_depend_on_file_names(tmp_path: Path) -> None:
    a = make_class_folders(tmp_path / "one", {"x": 12, "y": 12})
    b = tmp_path / "two"
    for item in sorted(a.rglob("*.jpg")):  # same pictures, other names
        target = b / item.parent.name / f"renamed_{item.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(item.read_bytes())
    split_a, split_b = make_split(scan(a), seed=9), make_split(scan(b), seed=9)
    assert {(i.sha256, i.split) for i in split_a.items} == {(i.sha256, i.split) for i in split_b.items}


def test_identical_pictures_always_share_a_split(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "d", {"a": 20, "b": 20})
    for i in range(5):
        (root / "a" / f"copy_{i}.jpg").write_bytes((root / "a" / f"img_{i:03d}.jpg").read_bytes())
    (root / "b" / "mislabelled.jpg").write_bytes((root / "a" / "img_010.jpg").read_bytes())
    for seed in range(5):
        manifest = make_split(scan(root), seed=seed)
        by_hash: dict[str, set[str]] = {}
        for item in manifest.items:
            by_hash.setdefault(item.sha256, set()).add(item.split)
        assert all(len(splits) == 1 for splits in by_hash.values())


def test_presplit_folder_keeps_its_split_and_sets_aside_a_test_set(tmp_path: Path) -> None:
    seed = 0
    for split, n in (("train", 10), ("val", 6)):
        for label in ("ants", "bees"):
            for i in range(n):
                save_image(tmp_path / "h" / split / label / f"{i}.jpg", seed=seed)
                seed += 1
    manifest = make_split(scan(tmp_path / "h"), seed=0)
    by_path = {i.path: i.split for i in manifest.items}
    assert all(s == "train" for p, s in by_path.items() if p.startswith("train/"))
    from_val = [s for p, s in by_path.items() if p.startswith("val/")]
    assert from_val.count("test") == 6 and from_val.count("val") == 6
    assert manifest.counts()["test"] == {"ants": 3, "bees": 3}
    assert manifest.notes and "test set" in manifest.notes[0]
    kept = make_split(scan(tmp_path / "h"), seed=0, test_from_val=0)
    assert kept.counts()["test"] == {"ants": 0, "bees": 0}


def test_manifest_round_trips_and_detects_edits(dataset: Path, tmp_path: Path) -> None:
    manifest = make_split(scan(dataset), seed=2)
    path = manifest.save(tmp_path / "m" / "split.json")
    loaded = SplitManifest.load(path)
    assert loaded == manifest and loaded.id == manifest.id
    assert loaded.missing_files() == []
    data = json.loads(path.read_text())
    data["items"][0]["split"] = "test" if data["items"][0]["split"] != "test" else "train"
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="was edited"):
        SplitManifest.load(path)
    with pytest.raises(DatasetError, match="no such split manifest"):
        SplitManifest.load(tmp_path / "nope.json")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"val": 0.6, "test": 0.5}, "leave nothing to train on"),
    ({"val": -0.1}, "out of range"),
    ({"test": 1.5}, "out of range"),
])
def test_bad_ratios_are_refused(dataset: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        make_split(scan(dataset), **kwargs)


def test_class_too_small_to_split(tmp_path: Path) -> None:
    report = scan(make_class_folders(tmp_path / "d", {"a": 10, "b": 2}))
    with pytest.raises(DatasetError, match="class 'b' has only 2 usable image"):
        make_split(report)


def test_a_report_with_errors_cannot_be_split(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "d", {"a": 5, "b": 5})
    (root / "c").mkdir()
    with pytest.raises(DatasetError, match="class 'c' has no usable images"):
        make_split(scan(root))


def test_a_class_of_identical_copies_is_named_as_such(tmp_path: Path) -> None:
    import shutil

    root = make_class_folders(tmp_path / "d", {"a": 10, "b": 1})
    original = root / "b" / "img_000.jpg"
    for i in range(1, 12):
        shutil.copy(original, root / "b" / f"copy_{i:02d}.jpg")
    with pytest.raises(DatasetError) as info:  # it used to split all 12 into test and blame the val/test shares
        make_split(scan(root))
    assert "class 'b' has 12 pictures but only 1 distinct one(s)" in str(info.value)
    assert "larger val/test shares" not in str(info.value)


def test_copies_count_as_one_picture_when_dealing(tmp_path: Path) -> None:
    import shutil

    root = make_class_folders(tmp_path / "d", {"a": 10, "b": 6})
    for i in range(10):  # ten copies of one picture beside five others
        shutil.copy(root / "b" / "img_000.jpg", root / "b" / f"copy_{i:02d}.jpg")
    manifest = make_split(scan(root), val=0.2, test=0.2)
    b = [i for i in manifest.items if i.label == "b"]
    distinct = {split: len({i.sha256 for i in b if i.split == split}) for split in ("train", "val", "test")}
    assert distinct == {"train": 4, "val": 1, "test": 1}  # of 6 distinct pictures, not of 16 files


def test_a_split_reads_rows_from_their_table_and_a_file_named_with_a_hash_as_itself(tmp_path) -> None:
    """Before, any location with '#' was cut there: a class folder of texts named "note#1.txt" was reported
    as gone ("bug/note"), and its runs could not start."""
    from tlcore.config import DataConfig
    from tlcore.modality import load_manifest

    for label, words in (("bug", ["crash on start", "error 500", "freezes", "blank page"]),
                         ("billing", ["charged twice", "refund please", "wrong invoice", "card declined"])):
        (tmp_path / "notes" / label).mkdir(parents=True)
        for i, text in enumerate(words):
            (tmp_path / "notes" / label / f"note#{i}.txt").write_text(text)
    manifest = load_manifest(DataConfig(source=str(tmp_path / "notes"), val=0.25, test=0.25))
    assert manifest.missing_files() == [] and len(manifest.source_files()) == 8
    assert all(path.endswith(".txt") and "#" in path for path in manifest.source_files())
    from tlcore.data.split import file_of

    assert file_of("tickets.csv#17") == "tickets.csv" and file_of("ants/a#2.jpg") == "ants/a#2.jpg"


def test_pictures_named_like_a_table_row_are_their_own_files(tmp_path: Path) -> None:
    """Review of issue 35: one rule for every kind of data cut "cats/photo#3" (a picture without an extension, which
    the scan takes) to "cats/photo", and the split's pictures were "gone"."""
    from tlcore.config import DataConfig
    from tlcore.modality import load_manifest

    for index, label in enumerate(("cats", "dogs")):
        for i in range(6):
            save_image(tmp_path / "pets" / label / f"photo#{i}", seed=index * 10 + i, fmt="PNG")
    manifest = load_manifest(DataConfig(source=str(tmp_path / "pets"), val=0.25, test=0.25))
    assert manifest.missing_files() == [] and sorted(manifest.source_files()) == sorted(i.path for i in manifest.items)


def test_a_manifests_id_and_file_are_what_they_were_and_the_id_is_computed_once(dataset: Path, tmp_path: Path) -> None:
    """A million-row text file's split took 46 s: its id was computed (asdict, deep copy) each time it was asked,
    and its file written by json's slow indented encoder. The id and the saved content must not change: a manifest
    saved before is refused as "edited" when its id differs."""
    import hashlib
    from dataclasses import asdict

    manifest = make_split(scan(dataset), seed=3)
    canonical = json.dumps({"classes": manifest.classes, "items": [asdict(i) for i in manifest.items]},
                           sort_keys=True, separators=(",", ":"))
    assert manifest.id == hashlib.sha256(canonical.encode()).hexdigest()[:16]  # the id every earlier version wrote
    assert manifest.to_dict() == {"id": manifest.id, **asdict(manifest)}
    assert "id" in manifest.__dict__  # kept after the first computation
    path = manifest.save(tmp_path / "m.json")
    assert path.read_text().startswith("{\n") and SplitManifest.load(path).id == manifest.id  # small: readable
