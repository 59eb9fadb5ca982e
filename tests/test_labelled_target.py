"""A few labelled target pictures (issue 29, item 2): trained on beside the source pictures, or kept out of training
to choose between runs; never pictures of the data's validation or test split; every problem one line."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from tlcore.spec.adapt_spec import AdaptError, scan_labelled_target
from tlcore.config import RunConfig
from tlcore.modality import load_manifest
from tlcore.errors import TransferLabError
from tlcore.training.prepare import prepare
from tlcore.running.worker import run_to_end
from test_cli import tlcore
from train_fixtures import make_colour_classes, tiny_config


@pytest.fixture(scope="module")
def shift(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Colour classes; darker, smaller target pictures; and 2 labelled target pictures per class, not among them."""
    root = tmp_path_factory.mktemp("labelled")
    source = make_colour_classes(root / "source")
    target = make_colour_classes(root / "target", per_class=10, size=28)
    for picture in target.rglob("*.png"):
        Image.fromarray((np.asarray(Image.open(picture)) * 0.4).astype(np.uint8)).save(picture)
    labelled = root / "labelled"
    for folder in sorted(target.iterdir()):
        (labelled / folder.name).mkdir(parents=True)
        for picture in sorted(folder.glob("*.png"))[-2:]:
            picture.rename(labelled / folder.name / picture.name)  # the labelled few are not unlabelled target too
    return source, target, labelled


def test_with_use_train_the_labelled_pictures_join_the_training_pictures(shift, tl_home: Path) -> None:
    source, target, labelled = shift
    plain = tiny_config(source, epochs=1)
    base = load_manifest(plain.data)
    events = []
    config = tiny_config(source, epochs=1, adapt={"method": "none", "labelled": str(labelled), "labelled_use": "train",
                                                  "labelled_share": 0})
    prep = prepare(config, sink=events.append)
    added = scan_labelled_target(str(labelled), base.classes)
    assert len(added) == 6 and sorted(label for _p, label, _h in added) == [0, 0, 1, 1, 2, 2]
    assert all(base.classes[label] == path.parent.name for path, label, _h in added)
    train = prep.manifest.files("train")
    assert len(train) == len(base.files("train")) + 6
    assert {(str(p), label) for p, label, _h in added} <= {(str(p), label) for p, label in train}
    assert prep.manifest.files("val") == base.files("val") and prep.manifest.files("test") == base.files("test")
    assert any(e.message == f"6 labelled target pictures join the {len(base.files('train'))} training pictures"
               for e in events)
    # repeated to a share of each epoch (a quarter by default): a handful among many would barely count
    events.clear()
    shared = prepare(tiny_config(source, epochs=1, adapt={"labelled": str(labelled), "labelled_use": "train",
                                                                 "labelled_share": 0.5}),
                     sink=events.append)
    source_n = len(base.files("train"))
    repeats = round(0.5 * source_n / (0.5 * 6))
    assert repeats > 1 and len(shared.manifest.files("train")) == source_n + 6 * repeats
    assert sum(p.parent.parent == labelled for p, _ in shared.manifest.files("train")) == 6 * repeats
    assert any(f"each {repeats} times" in e.message for e in events)
    chosen = prepare(tiny_config(source, epochs=1, adapt={"labelled": str(labelled)}))  # the default: choose
    assert chosen.config.adapt.labelled_use == "choose"
    assert chosen.manifest.files("train") == base.files("train") and len(chosen.labelled) == 6  # kept out


def test_labelled_pictures_of_the_datas_test_split_are_refused(shift, tl_home: Path, tmp_path: Path) -> None:
    source, _, _ = shift
    manifest = load_manifest(tiny_config(source).data)
    leaked = tmp_path / "leaked"
    for path, label in manifest.files("test")[:2]:
        (leaked / manifest.classes[label]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, leaked / manifest.classes[label] / path.name)
    with pytest.raises(TransferLabError, match="2 of the labelled target pictures .* are also validation or test"):
        prepare(tiny_config(source, adapt={"labelled": str(leaked)}))


def test_problems_with_the_labelled_folder_are_one_line(shift, tmp_path: Path) -> None:
    _, _, labelled = shift
    odd = tmp_path / "odd"
    shutil.copytree(labelled, odd)
    (odd / "red").rename(odd / "crimson")
    with pytest.raises(AdaptError, match="class folders the data does not have: crimson"):
        scan_labelled_target(str(odd), ["red", "green", "blue"])
    (tmp_path / "empty" / "red").mkdir(parents=True)
    with pytest.raises(TransferLabError) as caught:
        scan_labelled_target(str(tmp_path / "empty"), ["red", "green", "blue"])
    assert "\n" not in str(caught.value)
    with pytest.raises(TransferLabError, match="labelled_use"):
        RunConfig.from_dict({"data": {"source": "x"}, "adapt": {"labelled_use": "both"}})


def test_to_choose_every_class_needs_a_labelled_picture_to_train_on_a_few_do(shift, tl_home: Path,
                                                                              tmp_path: Path) -> None:
    """Before, a folder missing a class passed `prepare` with "choose"; after training its score failed as a
    warning, because scoring on a folder needs every class."""
    source, target, labelled = shift
    partial = tmp_path / "partial"
    shutil.copytree(labelled, partial)
    shutil.rmtree(partial / "green")
    with pytest.raises(AdaptError, match=r"have no picture of green; to choose between runs") as caught:
        prepare(tiny_config(source, adapt={"labelled": str(partial), "labelled_use": "choose"}))
    assert "\n" not in str(caught.value)
    trained_on = prepare(tiny_config(source, adapt={"labelled": str(partial), "labelled_use": "train"}))
    assert len(trained_on.labelled) == 4  # red and blue, 2 each
    app = AppTest.from_file(str(ROOT / "pages" / "1_data.py"), default_timeout=120).run()
    app.radio(key="data:app.data_kind").set_value("Folder on this computer").run()
    app.text_input(key="data:app.folder").input(str(source)).run()
    app.text_input(key="data:adapt.target").input(str(target)).run()
    app.text_input(key="data:adapt.labelled").input(str(partial)).run()
    assert not app.exception and any("4 labelled target pictures: blue 2, green 0, red 2" in m.value for m in app.markdown)
    assert any("no picture of green" in e.value for e in app.error)  # said on the page before any run
    app.radio(key="data:adapt.labelled_use").set_value("train").run()
    assert not app.exception and not app.error


def test_with_use_choose_each_run_is_scored_on_them_and_the_verdict_chooses_by_them(shift, tl_home: Path,
                                                                                   tmp_path: Path) -> None:
    from tlcore.experiments.compare import chosen_with_few_labels, sweep_rows
    from tlcore.runs import RunStore

    source, target, labelled = shift
    config_path = tmp_path / "base.json"
    config_path.write_text(tiny_config(source, epochs=1, freeze={"strategy": "feature_extraction"},
                                       adapt={"method": "none", "target": str(target), "labelled": str(labelled),
                                              "labelled_use": "choose"}).to_json())
    result = tlcore("compare", str(config_path), "--methods", "none,adabn", home=tl_home)
    assert result.returncode == 0, result.stderr
    rows = sweep_rows(RunStore(), result.stdout.split()[1].rstrip(":"))
    accuracy = {r.strategy: r.labelled_accuracy for r in rows}
    assert all(isinstance(a, float) for a in accuracy.values()) and {r.labelled_pictures for r in rows} == {6}
    chosen, said, pictures = chosen_with_few_labels(rows)
    (none,) = [r.strategy for r in rows if r.adapt_method == "none"]
    (adabn,) = [r.strategy for r in rows if r.adapt_method == "adabn"]
    two_more_right = round((accuracy[adabn] - accuracy[none]) * 6) >= 2  # else one picture decides: noise
    assert chosen == (adabn if two_more_right else none) and said == pytest.approx(accuracy) and pictures == 6
    assert f"Chosen with your 6 labelled target pictures (no run trained on them): {chosen} (" in result.stdout


def test_a_run_that_trained_on_them_is_not_scored_on_them(shift, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    source, _, labelled = shift
    events = []
    config = tiny_config(source, epochs=1, adapt={"labelled": str(labelled), "labelled_use": "train"})
    status, error, _ = run_to_end(config, tmp_path / "run", events.append, lambda: False)
    assert status == "succeeded", error
    assert not (tmp_path / "run" / "evaluations").exists()  # a score on training pictures would flatter it
    assert not any("labelled target pictures (not trained" in e.message for e in events)


def test_the_data_page_reads_the_labelled_pictures_and_says_how_many_per_class(shift, tl_home: Path,
                                                                             tmp_path: Path) -> None:
    source, target, labelled = shift
    app = AppTest.from_file(str(ROOT / "pages" / "1_data.py"), default_timeout=120).run()
    app.radio(key="data:app.data_kind").set_value("Folder on this computer").run()
    app.text_input(key="data:app.folder").input(str(source)).run()
    app.text_input(key="data:adapt.target").input(str(target)).run()
    app.text_input(key="data:adapt.labelled").input(str(labelled)).run()
    assert not app.exception and not app.error
    assert any("6 labelled target pictures: blue 2, green 2, red 2" in m.value for m in app.markdown)
    assert not [n for n in app.number_input if n.key == "data:adapt.labelled_share"]  # not trained on: no share
    assert any("'Best epoch chosen by' on the Train page" in c.value for c in app.caption)
    app.radio(key="data:adapt.labelled_use").set_value("train").run()
    assert app.number_input(key="data:adapt.labelled_share").value == 0.25  # trained on: their share of an epoch
    from app_fixtures import choices_of
    assert choices_of(app)["adapt.labelled_use"] == "train"
    odd = tmp_path / "odd"
    shutil.copytree(labelled, odd)
    (odd / "red").rename(odd / "crimson")
    app.text_input(key="data:adapt.labelled").input(str(odd)).run()
    assert not app.exception and any("crimson" in e.value for e in app.error)


def test_the_data_page_warns_when_pictures_the_best_epoch_is_chosen_on_would_be_trained_on(shift, tl_home: Path) -> None:
    from app_fixtures import choices_of, page

    source, target, labelled = shift
    app = page("1_data.py", app__data_kind="Folder on this computer", app__folder=str(source), data__source=str(source),
               adapt__target=str(target), adapt__labelled=str(labelled), early_stopping__metric="labelled_acc")
    app.run()
    assert not app.exception and not any("chooses the best epoch" in w.value for w in app.warning)
    app.radio(key="data:adapt.labelled_use").set_value("train").run()
    assert any("chooses the best epoch on these pictures (labelled_acc)" in w.value for w in app.warning)
    assert choices_of(app)["early_stopping.metric"] == "labelled_acc"  # said, never changed for the user


def test_the_best_epoch_can_be_chosen_on_the_labelled_pictures(shift, tmp_path: Path, monkeypatch) -> None:
    """early_stopping.metric labelled_loss: every epoch is scored on the labelled target pictures, the lowest
    loss is kept as best, and those weights score on them what the epoch recorded."""
    from tlcore.results.evaluate import score_labelled_target
    from tlcore.training.train import train

    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    source, target, labelled = shift
    config = tiny_config(source, epochs=4, optimizer={"lr": 0.05},
                         early_stopping={"metric": "labelled_loss", "patience": 0},
                         adapt={"method": "none", "target": str(target), "labelled": str(labelled)})
    events = []
    result = train(config, tmp_path / "run", sink=events.append)
    losses = [row["labelled_loss"] for row in result.history]
    assert len(losses) == 4 and min(losses) < max(losses)  # epochs differ, so a reversed rule would pick another
    assert result.best_epoch == losses.index(min(losses)) and result.best_metric == pytest.approx(min(losses))
    few, _ = score_labelled_target(tmp_path / "run", config)
    assert few.n == 6 and few.accuracy == pytest.approx(result.history[result.best_epoch]["labelled_acc"])
    assert any("every epoch is scored on the 6 labelled target pictures" in e.message for e in events)
    said = [e.message for e in events if e.kind == "epoch"]
    assert len(said) == 4 and f"labelled target loss {losses[0]:.3f}" in said[0]


def test_scoring_the_labelled_pictures_each_epoch_changes_nothing_the_run_learns(shift, tmp_path: Path,
                                                                                monkeypatch) -> None:
    """An AdaBN run scored with the target's statistics each epoch (then the source's put back) ends with the
    same last weights and statistics as the same run chosen by validation loss; its best epoch, scored as it will
    be used (adapted weights), gives the accuracy the epoch recorded."""
    from safetensors.torch import load_file

    from tlcore.results.evaluate import score_labelled_target
    from tlcore.training.train import train

    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    source, target, labelled = shift
    adapt = {"method": "adabn", "target": str(target), "labelled": str(labelled)}
    runs = {}
    for metric in ("val_loss", "labelled_acc"):
        config = tiny_config(source, epochs=2, adapt=adapt, early_stopping={"metric": metric, "patience": 0})
        runs[metric] = (config, train(config, tmp_path / metric))
    plain, scored = (load_file(tmp_path / metric / "last.safetensors") for metric in runs)
    assert plain.keys() == scored.keys() and any("running_mean" in k for k in plain)
    assert all(torch_equal(plain[k], scored[k]) for k in plain)
    config, result = runs["labelled_acc"]
    assert "labelled_acc" not in runs["val_loss"][1].history[0]
    few, folder = score_labelled_target(tmp_path / "labelled_acc", config)
    best = result.history[result.best_epoch]
    assert few.accuracy == pytest.approx(best["labelled_acc"])
    rows = list(csv.DictReader((folder / "predictions.csv").open()))  # probabilities to 4 places
    loss = float(np.mean([-np.log(max(float(row[f"p_{row['label']}"]), 1e-4)) for row in rows]))
    assert loss == pytest.approx(best["labelled_loss"], abs=2e-3)  # the same statistics, not these 6 pictures'


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


@pytest.mark.parametrize("adapt, words", [
    ({}, "needs labelled target pictures kept out of training"),
    ({"labelled": "somewhere", "labelled_use": "train"}, "needs labelled target pictures kept out of training"),
])
def test_choosing_the_epoch_on_labelled_pictures_needs_them_kept_out_of_training(shift, adapt: dict,
                                                                               words: str) -> None:
    source, _, _ = shift
    with pytest.raises(TransferLabError, match=words) as caught:
        tiny_config(source, adapt=adapt, early_stopping={"metric": "labelled_acc"})
    assert "\n" not in str(caught.value) and "early_stopping.metric" in str(caught.value)


def test_labelled_pictures_that_are_the_datas_own_saved_again_are_refused_or_said(shift, tl_home: Path,
                                                                                  tmp_path: Path) -> None:
    """Issue 37: a validation picture re-saved as JPEG, or a test picture re-saved as PNG with other bytes, passed
    the byte-identical check, and the log then praised "accuracy 1.000 on the labelled target pictures"."""
    source, _, labelled = shift
    manifest = load_manifest(tiny_config(source).data)
    leaked = tmp_path / "leaked"
    shutil.copytree(labelled, leaked)
    (val_path, val_label), (test_path, test_label) = manifest.files("val")[0], manifest.files("test")[0]
    Image.open(val_path).convert("RGB").save(leaked / manifest.classes[val_label] / "resaved.jpg", quality=90)
    Image.open(test_path).save(leaked / manifest.classes[test_label] / "resaved.png", compress_level=1,
                               pnginfo=None, optimize=False)
    assert (leaked / manifest.classes[test_label] / "resaved.png").read_bytes() != test_path.read_bytes()
    events = []
    with pytest.raises(TransferLabError, match="2 of the labelled target pictures .* look like validation or test"):
        prepare(tiny_config(source, adapt={"labelled": str(leaked)}), sink=events.append)
    assert any(e.kind == "progress" and "fingerprints of" in e.message for e in events)  # a count in that wait
    copied = tmp_path / "copied"
    shutil.copytree(labelled, copied)
    train_path, train_label = manifest.files("train")[0]
    Image.open(train_path).convert("RGB").save(copied / manifest.classes[train_label] / "copy.jpg", quality=90)
    events = []
    prepare(tiny_config(source, adapt={"labelled": str(copied)}), sink=events.append)  # a training copy: said
    assert [e.message for e in events if e.kind == "warning"] == [
        "1 of the labelled target pictures look like training pictures of the data (the same picture saved again): "
        "they say nothing about the target domain"]
    events = []
    prepare(tiny_config(source, adapt={"labelled": str(labelled)}), sink=events.append)  # other pictures: nothing
    assert not [e for e in events if e.kind == "warning"]


def test_a_photo_saved_again_keeps_its_fingerprint_and_other_photos_do_not_share_it(hymenoptera: Path,
                                                                                    tmp_path: Path) -> None:
    from tlcore.data.near_duplicates import MAX_DISTANCE, near_copies, picture_fingerprint

    photos = sorted((hymenoptera / "val" / "bees").glob("*.jpg"))[:40]
    prints = {p.name: picture_fingerprint(p) for p in photos}
    photo = photos[0]
    Image.open(photo).save(tmp_path / "again.png")
    Image.open(photo).save(tmp_path / "again.jpg", quality=75)
    Image.open(photo).resize((200, 150)).save(tmp_path / "smaller.jpg", quality=90)
    for again in ("again.png", "again.jpg", "smaller.jpg"):
        assert bin(picture_fingerprint(tmp_path / again) ^ prints[photo.name]).count("1") <= MAX_DISTANCE, again
    others = {name: f for name, f in prints.items() if name != photo.name}
    assert near_copies({"mine": prints[photo.name]}, others) == set()  # 39 other bee photos: none taken for it
    flat = tmp_path / "flat.png"
    Image.new("RGB", (50, 50), (120, 30, 200)).save(flat)
    assert picture_fingerprint(flat) is None and picture_fingerprint(tmp_path / "missing.png") is None


def test_other_pictures_with_close_fingerprints_are_not_taken_for_copies(tl_home: Path, tmp_path: Path) -> None:
    """The bundled shapes share their backgrounds: 378 pairs of different shapes have difference hashes within 6
    bits, and new shapes labelled as a target were refused as "validation or test pictures saved again". The
    thumbnails themselves must agree too."""
    import subprocess
    import sys

    from tlcore.data.near_duplicates import MAX_DISTANCE, Fingerprints, picture_fingerprint

    shapes = ROOT / "sample_data" / "shapes"
    labelled = tmp_path / "new_shapes"
    subprocess.run([sys.executable, str(ROOT / "sample_data" / "make_shapes.py"), "--out", str(labelled), "--seed", "7",
                    "--per-class", "10"], check=True, capture_output=True)
    config = tiny_config(shapes, adapt={"labelled": str(labelled)})
    manifest = load_manifest(config.data)
    held = Fingerprints().of((Path(manifest.root) / i.path, i.sha256) for i in manifest.items if i.split != "train")
    close = [p for p in labelled.rglob("*.jpg") if any(
        f is not None and bin(f ^ picture_fingerprint(p)).count("1") <= MAX_DISTANCE for f in held.values())]
    assert close  # some new shapes are as close as re-saves by their fingerprints alone
    events = []
    prepare(config, sink=events.append)  # and none is refused or said to be a copy
    assert not [e for e in events if e.kind == "warning" and "look like" in e.message]
