"""The real ants/bees photos from ../shared: a pre-split set with a GIF placeholder among the JPEGs."""

from __future__ import annotations

from pathlib import Path

from tlcore.data import make_split, scan


def test_scan_reports_two_classes_and_the_placeholder(hymenoptera: Path) -> None:
    report = scan(hymenoptera)
    assert report.ok
    assert report.layout == "presplit" and report.classes == ["ants", "bees"]
    assert report.split_counts == {"train": {"ants": 124, "bees": 121}, "val": {"ants": 70, "bees": 83}}
    assert report.formats == {"JPEG": 397, "GIF": 1}
    assert [s.path for s in report.suspects] == ["train/ants/imageNotFound.gif"]
    assert "formica.jpeg" in " ".join(r.path for r in report.images)  # other extension, still a JPEG
    assert "imageNotFound.gif" in report.summary()


def test_split_keeps_train_and_holds_out_half_of_val(hymenoptera: Path) -> None:
    manifest = make_split(scan(hymenoptera), seed=0)
    counts = manifest.counts()
    assert counts["train"] == {"ants": 124, "bees": 121}
    assert {c: counts["val"][c] + counts["test"][c] for c in manifest.classes} == {"ants": 70, "bees": 83}
    assert abs(counts["test"]["ants"] - 35) <= 1 and abs(counts["test"]["bees"] - 41.5) <= 1
    assert not any(i.path.startswith("train/") and i.split != "train" for i in manifest.items)
