"""The decoded-image cache: its pixels are the pipeline's pixels, it follows the pictures, and it never lies."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tlcore.inputs.augment import eval_pipeline
from tlcore.data import make_split, scan
from tlcore.data.images import load_rgb
from tlcore.inputs.decoded import CacheTooLarge, DecodedCache, decode_square, square_size
from tlcore.training.train import train
from train_fixtures import make_colour_classes, tiny_config

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "hymenoptera"


def _prep(size: int, crop_pct: float, interpolation: str = "bicubic"):
    return SimpleNamespace(input_size=(3, size, size), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                           interpolation=interpolation, crop_pct=crop_pct)


def _odd_shapes(root: Path) -> Path:
    """Pictures of awkward shapes (tall, wide, odd sides, smaller than the input) in two classes."""
    rng = np.random.default_rng(1)
    for label, shapes in (("a", [(40, 57), (57, 40), (33, 90), (31, 31)]), ("b", [(90, 33), (45, 61), (20, 27), (64, 48)])):
        (root / label).mkdir(parents=True)
        for i, (h, w) in enumerate(shapes):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


def _pictures(root: Path) -> list[tuple[str, str]]:
    manifest = make_split(scan(root), seed=0, val=0.25, test=0.0)
    return [(str(Path(manifest.root) / i.path), i.sha256) for i in manifest.items]


# crop_pct 0.875 leaves an even margin around the crop (36 - 32), 0.9 an odd one (35 - 32)
@pytest.mark.parametrize("crop_pct", [0.875, 0.9])
def test_evaluation_reads_the_same_pixels_from_the_cache_as_from_the_file(tmp_path, crop_pct):
    pictures = _pictures(_odd_shapes(tmp_path / "data"))
    prep = _prep(32, crop_pct)
    cache = DecodedCache(str(tmp_path / "data"), prep, root=tmp_path / "cache")
    built = cache.build(pictures)
    assert (built.decoded, built.reused, built.unreadable) == (len(pictures), 0, [])
    rows, index = cache.array([h for _, h in pictures])
    crop = eval_pipeline(prep)
    for (path, _), row in zip(pictures, index):
        cached = rows[row]
        assert cached.shape == (square_size(prep),) * 2 + (3,)
        assert np.array_equal(cached, decode_square(path, prep))
        fresh = np.asarray(load_rgb(path))
        assert np.array_equal(crop(image=cached)["image"].numpy(), crop(image=fresh)["image"].numpy()), path


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/datasets/hymenoptera (real JPEGs), absent here")
def test_real_photos_decode_to_the_same_evaluation_pixels(tmp_path):
    root = SHARED / "val" / "bees"
    files = sorted(root.glob("*.jpg"))[:12]
    prep = _prep(224, 0.875)
    cache = DecodedCache(str(root), prep, root=tmp_path)
    cache.build([(str(f), f.name) for f in files])
    rows, index = cache.array([f.name for f in files])
    crop = eval_pipeline(prep)
    for f, row in zip(files, index):
        fresh = np.asarray(load_rgb(f, draft=square_size(prep)))  # the loader's own reduced-scale decode
        assert np.array_equal(crop(image=rows[row])["image"].numpy(), crop(image=fresh)["image"].numpy()), f


def test_a_changed_picture_is_decoded_again_and_the_others_are_not(tmp_path):
    root = _odd_shapes(tmp_path / "data")
    prep = _prep(32, 0.875)
    cache = DecodedCache(str(root), prep, root=tmp_path / "cache")
    cache.build(_pictures(root))
    changed = root / "a" / "0.png"
    Image.fromarray(np.full((40, 57, 3), 200, np.uint8)).save(changed)
    pictures = _pictures(root)
    again = cache.build(pictures)
    assert (again.decoded, again.reused) == (1, len(pictures) - 1)
    digest = dict(pictures)[str(changed)]
    rows, (row,) = cache.array([digest])
    assert np.array_equal(rows[row], decode_square(changed, prep)) and rows[row].min() == 200


def test_another_preprocessing_has_its_own_cache(tmp_path):
    root = _odd_shapes(tmp_path / "data")
    pictures = _pictures(root)
    DecodedCache(str(root), _prep(32, 0.875), root=tmp_path / "c").build(pictures)
    for other in (_prep(48, 0.875), _prep(32, 0.875, "bilinear"), _prep(32, 0.95)):
        cache = DecodedCache(str(root), other, root=tmp_path / "c")
        assert len(cache.missing([h for _, h in pictures])) == len(pictures)
    assert len(DecodedCache(str(root), _prep(32, 0.875), root=tmp_path / "c").missing([h for _, h in pictures])) == 0


def test_bytes_a_killed_build_left_past_the_index_are_dropped(tmp_path):
    root = _odd_shapes(tmp_path / "data")
    pictures = _pictures(root)
    prep = _prep(32, 0.875)
    cache = DecodedCache(str(root), prep, root=tmp_path / "c")
    cache.build(pictures[:4])
    with open(cache.data_path, "ab") as fh:  # half a row of a build that was killed
        fh.write(b"\x07" * (cache.row_bytes // 2))
    assert len(cache.index()) == 4
    cache.build(pictures)
    assert cache.data_path.stat().st_size == len(pictures) * cache.row_bytes
    rows, index = cache.array([h for _, h in pictures])
    for (path, _), row in zip(pictures, index):
        assert np.array_equal(rows[row], decode_square(path, prep))


def test_a_cache_over_its_limit_is_refused_with_its_size(tmp_path):
    root = _odd_shapes(tmp_path / "data")
    cache = DecodedCache(str(root), _prep(224, 0.875), root=tmp_path / "c")
    with pytest.raises(CacheTooLarge, match=r"would take 0\.0012 GB|over its 0\.001 GB limit"):
        cache.build(_pictures(root), max_gb=0.001)
    assert not cache.index()


def test_a_run_through_the_cache_trains_exactly_as_one_reading_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    source = make_colour_classes(tmp_path / "data", per_class=8)
    events: list = []
    files = train(tiny_config(source, epochs=2), tmp_path / "files")
    cached = train(tiny_config(source, epochs=2, decoded_cache="on"), tmp_path / "cached", sink=events.append)
    assert [h["val_loss"] for h in cached.history] == [h["val_loss"] for h in files.history]
    assert [h["train_loss"] for h in cached.history] == [h["train_loss"] for h in files.history]
    words = " ".join(e.message for e in events)
    assert "decoding 24 picture(s) once into the decoded-image cache" in words
    assert "read from the decoded-image cache" in words


def test_a_run_over_the_cache_limit_says_so_and_reads_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    source = make_colour_classes(tmp_path / "data", per_class=8)
    events: list = []
    result = train(tiny_config(source, epochs=1, decoded_cache="on", decoded_cache_max_gb=1e-6), tmp_path / "run",
                   sink=events.append)
    assert result.epochs_done == 1
    warnings = [e.message for e in events if e.kind == "warning"]
    assert any("over its 1e-06 GB limit" in w for w in warnings), warnings
    assert any("decoded from their files every epoch" in e.message for e in events)


def test_the_cli_builds_the_cache_ahead_says_its_size_and_then_reuses_it(tmp_path):
    from test_cli import tlcore

    data = _odd_shapes(tmp_path / "data")
    first = tlcore("data", "cache", str(data), "--model", "test_efficientnet", "--input-size", "32", home=tmp_path)
    assert first.returncode == 0, first.stderr
    # test_efficientnet crops 95%: 32 / 0.95 -> 33 px squares
    assert "8 pictures at 33x33 px for test_efficientnet: 0.00 GB (8 to decode, 0 already cached; limit 20 GB)" in \
        first.stdout
    again = tlcore("data", "cache", str(data), "--model", "test_efficientnet", "--input-size", "32", home=tmp_path)
    assert "(0 to decode, 8 already cached" in again.stdout and "0 decoded now, 8 reused" in again.stdout
    refused = tlcore("data", "cache", str(data), "--model", "test_efficientnet", "--max-gb", "0.0001", home=tmp_path)
    assert refused.returncode == 1 and refused.stderr.startswith("error: the decoded-image cache would take")
    missing = tlcore("data", "cache", str(tmp_path / "nowhere"), home=tmp_path)
    assert missing.returncode == 1 and "no such folder or zip" in missing.stderr and "Traceback" not in missing.stderr


def test_two_builders_of_one_cache_take_turns(tmp_path):
    """torchrun ranks (or two runs) starting together: one decodes, the other waits and finds every row there."""
    from concurrent.futures import ThreadPoolExecutor

    root = _odd_shapes(tmp_path / "data")
    pictures = _pictures(root)
    prep = _prep(32, 0.875)
    caches = [DecodedCache(str(root), prep, root=tmp_path / "c") for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda cache: cache.build(pictures), caches))
    assert sorted(r.decoded for r in results) == [0, len(pictures)]
    assert caches[0].data_path.stat().st_size == len(pictures) * caches[0].row_bytes
    rows, index = caches[1].array([h for _, h in pictures])
    for (path, _), row in zip(pictures, index):
        assert np.array_equal(rows[row], decode_square(path, prep))
