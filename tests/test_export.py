"""Export, prediction and Grad-CAM: same predictions from every format, tampering refused, heat maps that vary."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tlcore_in_process
from tlcore.data import load_rgb
from tlcore.errors import TransferLabError
from tlcore.core.run_files import META_SHA256, meta_checksum
from tlcore.results.evaluate import evaluate_run
from tlcore.results.explain import grad_cam
from tlcore.results.export import TOLERANCE, export_run, export_steps
from tlcore.models import ModelSpec, build_model
from tlcore.results.predict import Predictor
from tlcore.training.train import train
from train_fixtures import make_colour_classes, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("export")
    data = make_colour_classes(root / "colours")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFERLAB_HOME", str(root / "home"))
        train(tiny_config(data, epochs=2), root / "run")
        evaluate_run(root / "run")
    return root / "run", data


def test_export_round_trip_gives_the_same_predictions(trained, tmp_path: Path) -> None:
    run_dir, data = trained
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # torch's deprecation notices are not the user's business
        warnings.simplefilter("always")
        report = export_run(run_dir, tmp_path / "export")
    assert not [w for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))], \
        [str(w.message)[:80] for w in caught]
    assert {"model.safetensors", "model.torchscript.pt", "model.onnx", "MODEL_CARD.md"} <= set(report.files)
    assert all(diff <= TOLERANCE for diff in report.max_abs_diff.values()) and set(report.max_abs_diff) == {
        "torchscript", "onnx"}
    exported, original = Predictor.from_export(tmp_path / "export"), Predictor.from_run(run_dir)
    for picture in sorted(data.rglob("*.png"))[::8]:
        image = np.asarray(load_rgb(picture))
        a, b = exported.predict(image, topk=3), original.predict(image, topk=3)
        assert [c for c, _ in a] == [c for c, _ in b] and np.allclose([p for _, p in a], [p for _, p in b], atol=1e-6)
    card = (tmp_path / "export" / "MODEL_CARD.md").read_text()
    assert "Held-out test set" in card and "red" in card
    import yaml  # the Hub's metadata header (issue 39), read as the Hub reads it

    header = yaml.safe_load(card.split("---\n")[1])
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert header["library_name"] == "timm" and header["pipeline_tag"] == "image-classification"
    assert header["datasets"] == [data.name] and "base_model" not in header  # random weights: no base model
    metric = header["model-index"][0]["results"][0]["metrics"][0]
    assert metric["type"] == "accuracy" and metric["value"] == round(evaluation["accuracy"], 4)
    assert "timm.create_model('test_efficientnet', num_classes=3)" in card  # the snippet plain timm loads it with
    meta = json.loads((tmp_path / "export" / "config.json").read_text())
    assert meta["classes"] == ["blue", "green", "red"] and meta["onnx_opset"] == 17


def test_an_export_says_each_step_as_it_starts(trained, tmp_path: Path) -> None:
    """The page's progress bar and the CLI's lines follow these: each step once, in order, before its work."""
    run_dir, _ = trained
    said = []

    def on_step(done: int, total: int, step: str) -> None:
        work = [p for p in tmp_path.glob(".e.export-*")]
        written = sorted(f.name for f in work[0].iterdir()) if work else []
        said.append((done, total, step, written))

    export_run(run_dir, tmp_path / "e", on_step=on_step)
    steps = export_steps()
    assert [(d, t, s) for d, t, s, _ in said] == [(i, len(steps), s) for i, s in enumerate(steps)]
    assert len(steps) == 5 and steps[3] == "ONNX: export and check"
    written = {s: w for _, _, s, w in said}
    assert written["loading the trained model"] == [] and "model.onnx" not in written["ONNX: export and check"]
    assert "model.torchscript.pt" in written["ONNX: export and check"]  # the step before it is done
    assert "model.onnx" in written["model card and checksums"]
    assert export_steps(()) == ["loading the trained model", "weights (safetensors)", "model card and checksums"]
    result = tlcore_in_process("export", str(run_dir), str(tmp_path / "cli"))
    assert result.returncode == 0, result.stderr
    assert "export step 4 of 5: ONNX: export and check" in result.stderr.splitlines()


def test_tampered_or_mismatched_exports_are_refused(trained, tmp_path: Path) -> None:
    run_dir, _ = trained
    export_run(run_dir, tmp_path / "e", formats=())
    weights = tmp_path / "e" / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-10] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(TransferLabError, match="checksum mismatch"):
        Predictor.from_export(tmp_path / "e")
    export_run(run_dir, tmp_path / "m", formats=())
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["classes"] = meta["classes"] + ["purple"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(TransferLabError, match="config.json changed since the export"):  # an edit shows
        Predictor.from_export(tmp_path / "m")
    meta[META_SHA256] = meta_checksum(meta)  # edited and sealed again (the checksums are no signature): the
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))  # weights still have to fit
    with pytest.raises(TransferLabError, match="does not fit"):
        Predictor.from_export(tmp_path / "m")
    with pytest.raises(TransferLabError, match="not a Transfer Lab export"):
        Predictor.from_export(tmp_path)


def test_predict_cli_on_a_folder_writes_csv_and_cam(trained, tmp_path: Path, capsys) -> None:
    run_dir, data = trained
    pictures = tmp_path / "new"
    pictures.mkdir()
    for src in sorted(data.rglob("*.png"))[:5]:
        (pictures / src.name).write_bytes(src.read_bytes())
    (pictures / "broken.jpg").write_text("not a picture")
    out = tmp_path / "predictions.csv"
    result = tlcore_in_process("predict", str(run_dir), str(pictures), "--topk", "2", "--csv", str(out), "--cam", str(tmp_path / "cams"))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6
    assert {r["predicted"] for r in rows if r["error"] == ""} <= {"red", "green", "blue"}
    assert [r["path"] for r in rows if r["error"]] == [str(pictures / "broken.jpg")]
    assert len(list((tmp_path / "cams").glob("*_cam.png"))) == 5
    # one picture, --cam naming a file of no picture format: refused before predicting (issue 28, item 13)
    from tlcore.cli import main

    capsys.readouterr()
    assert main(["predict", str(run_dir), str(pictures / src.name), "--cam", str(tmp_path / "x.xyz")]) == 1
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.startswith("error: --cam x.xyz: cannot write a picture")
    assert not (tmp_path / "x.xyz").exists()
    assert main(["predict", str(run_dir), str(pictures / src.name), "--explain"]) == 1  # words are for texts
    assert capsys.readouterr().err.startswith("error: --explain shows the words behind a text's class")


@pytest.mark.parametrize(("arch", "size"), [("test_efficientnet", (3, 48, 48)), ("vit_tiny_patch16_224", (3, 64, 64))])
def test_grad_cam_gives_an_image_sized_map_that_varies(arch: str, size: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    built = build_model(ModelSpec(name=arch, weights="random"), 3, input_size=size)
    image = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    heat, explained = grad_cam(built.model, built.groups, built.preprocessing, image)
    assert heat.shape == size[1:] and 0 <= explained < 3
    assert heat.min() >= 0 and heat.max() <= 1 and heat.std() > 0.01


def test_an_export_must_list_and_verify_what_it_needs(trained, tmp_path: Path) -> None:
    run_dir, _ = trained
    export_run(run_dir, tmp_path / "e", formats=())
    config = tmp_path / "e" / "config.json"
    meta = json.loads(config.read_text())
    for files, message in (({}, "does not list MODEL_CARD.md, model.safetensors"), (None, "files is missing"),
                           ({**meta["files"], "../../etc/passwd": "0" * 64}, "checksum mismatch")):
        changed = dict(meta, files=files) if files is not None else {k: v for k, v in meta.items() if k != "files"}
        changed[META_SHA256] = meta_checksum(changed)  # sealed again, as someone editing it on purpose would
        config.write_text(json.dumps(changed))
        with pytest.raises(TransferLabError, match=message) as info:
            Predictor.from_export(tmp_path / "e")
        assert "\n" not in str(info.value)


def test_export_into_a_folder_with_other_files_writes_nothing_and_an_earlier_export_is_replaced(trained,
                                                                                              tmp_path: Path) -> None:
    run_dir, _ = trained
    out = tmp_path / "out"
    (out / "holiday photos").mkdir(parents=True)
    with pytest.raises(TransferLabError, match="already holds other files"):
        export_run(run_dir, out, formats=())
    assert [p.name for p in out.iterdir()] == ["holiday photos"] and [p.name for p in tmp_path.iterdir()] == ["out"]
    first = export_run(run_dir, tmp_path / "again", formats=("torchscript",))
    second = export_run(run_dir, tmp_path / "again", formats=())
    assert "model.torchscript.pt" in first.files and "model.torchscript.pt" not in second.files
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == sorted([*second.files, "config.json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "out"]  # no temporary folder left
    Predictor.from_export(tmp_path / "again")


@pytest.mark.parametrize("seed", range(8))
def test_fuzz_a_byte_flip_in_any_export_or_run_file_is_one_line(trained, tmp_path: Path, seed: int) -> None:
    import random
    import shutil

    from tlcore.cli import main

    rng = random.Random(seed)
    run_dir, data = trained
    export_run(run_dir, tmp_path / "e", formats=())
    shutil.copytree(run_dir, tmp_path / "run")
    targets = [p for p in [*(tmp_path / "e").iterdir(), *(tmp_path / "run").iterdir()] if p.is_file()]
    victim = rng.choice(targets)
    blob = bytearray(victim.read_bytes())
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(blob))
        blob[at] = (blob[at] + rng.randint(1, 255)) % 256  # always a change
    victim.write_bytes(bytes(blob))
    picture = sorted(data.rglob("*.png"))[0]
    for target in (tmp_path / "e", tmp_path / "run"):
        code = main(["predict", str(target), str(picture), "--topk", "2"])
        assert code in (0, 1)  # a changed export is refused; a run folder may still predict (or say why not)
    with pytest.raises(TransferLabError) if victim.parent.name == "e" else _maybe_raises():
        Predictor.from_export(tmp_path / "e")
    assert (run_dir / "best.safetensors").is_file()  # the original run is untouched


class _maybe_raises:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is None or issubclass(kind, TransferLabError)


@pytest.fixture(scope="module")
def adabn_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An AdaBN run whose target pictures are much darker than its source: their BatchNorm statistics differ."""
    from PIL import Image

    root = tmp_path_factory.mktemp("adabn")
    data = make_colour_classes(root / "colours")
    target = make_colour_classes(root / "target", per_class=6)
    for picture in target.rglob("*.png"):
        Image.fromarray((np.asarray(Image.open(picture)) // 4).astype(np.uint8)).save(picture)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFERLAB_HOME", str(root / "home"))
        train(tiny_config(data, epochs=1, adapt={"method": "adabn", "target": str(target)}), root / "run")
    return root / "run", target


def test_an_adabn_run_exports_and_predicts_with_its_adapted_weights(adabn_run, trained, tmp_path: Path) -> None:
    """Issue 29: adapted.safetensors was written but neither export nor predict could use it."""
    run_dir, target = adabn_run
    picture = str(sorted(target.rglob("*.png"))[0])
    best = tlcore_in_process("predict", str(run_dir), picture, "--topk", "3")
    adapted = tlcore_in_process("predict", str(run_dir), picture, "--topk", "3", "--adapted")
    assert best.returncode == adapted.returncode == 0, best.stderr + adapted.stderr
    assert best.stdout != adapted.stdout  # other BatchNorm statistics, other probabilities
    exported = tlcore_in_process("export", str(run_dir), str(tmp_path / "adapted"), "--adapted")
    assert exported.returncode == 0, exported.stderr
    meta = json.loads((tmp_path / "adapted" / "config.json").read_text())
    assert meta["checkpoint"] == "adapted.safetensors"
    assert "BatchNorm statistics of the target pictures" in (tmp_path / "adapted" / "MODEL_CARD.md").read_text()
    from_export = tlcore_in_process("predict", str(tmp_path / "adapted"), picture, "--topk", "3")
    assert from_export.stdout.split(":", 1)[1] == adapted.stdout.split(":", 1)[1]  # the export is the adapted model
    refused = tlcore_in_process("predict", str(tmp_path / "adapted"), picture, "--adapted")
    assert refused.returncode == 1 and "is an export" in refused.stderr and "Traceback" not in refused.stderr
    plain_run, data = trained
    no_adabn = tlcore_in_process("export", str(plain_run), str(tmp_path / "none"), "--adapted")
    assert no_adabn.returncode == 1 and "has no weights adapted to target pictures" in no_adabn.stderr
    assert not (tmp_path / "none").exists()
