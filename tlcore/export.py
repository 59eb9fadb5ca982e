"""A finished run as a folder IT can use: weights, config, TorchScript, ONNX and a model card.

Every export is checked against the PyTorch model on real test pictures before it is
written as done, and every file's SHA-256 goes into config.json, so a tampered or
half-copied export is refused when loaded instead of predicting nonsense.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from tlcore.augment import eval_pipeline
from tlcore.config import RunConfig
from tlcore.data import SplitManifest, load_rgb
from tlcore.errors import TransferLabError
from tlcore.models import ModelSpec, Preprocessing, build_model
from tlcore.predict import load_trained
from tlcore.checkpoint import BEST

__all__ = ["EXPORT_MARK", "ExportReport", "export_run", "load_export", "TOLERANCE", "ONNX_OPSET"]

EXPORT_MARK = "transferlab-export-v1"
TOLERANCE = 1e-4  # max |logit difference| between an export and the PyTorch model
ONNX_OPSET = 17  # loads in onnxruntime 1.x


@dataclass(frozen=True)
class ExportReport:
    folder: str
    files: dict[str, str]
    max_abs_diff: dict[str, float]  # per format, on the check pictures


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_inputs(run_dir: Path, manifest: SplitManifest, preprocessing: Preprocessing, n: int = 4) -> torch.Tensor:
    pipeline = eval_pipeline(preprocessing)
    items = (manifest.files("test") or manifest.files("val"))[:n]
    return torch.stack([pipeline(image=np.asarray(load_rgb(path)))["image"] for path, _ in items])


def export_run(run_dir: str | Path, out_dir: str | Path, *, checkpoint: str = BEST,
               formats: tuple[str, ...] = ("torchscript", "onnx")) -> ExportReport:
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config, manifest, built = load_trained(run_dir, checkpoint)
    model = built.model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    x = _check_inputs(run_dir, manifest, built.preprocessing)
    with torch.inference_mode():
        reference = model(x).numpy()
    save_model(model, str(out_dir / "model.safetensors"))
    diffs: dict[str, float] = {}
    if "torchscript" in formats:
        traced = torch.jit.trace(model, x[:1], check_trace=False)
        traced.save(str(out_dir / "model.torchscript.pt"))
        reloaded = torch.jit.load(str(out_dir / "model.torchscript.pt"))
        with torch.inference_mode():
            diffs["torchscript"] = float(np.abs(reloaded(x).numpy() - reference).max())
    if "onnx" in formats:
        import onnxruntime

        torch.onnx.export(model, (x[:1],), str(out_dir / "model.onnx"), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        session = onnxruntime.InferenceSession(str(out_dir / "model.onnx"), providers=["CPUExecutionProvider"])
        diffs["onnx"] = float(np.abs(session.run(None, {"images": x.numpy()})[0] - reference).max())
    bad = {k: v for k, v in diffs.items() if v > TOLERANCE}
    if bad:
        raise TransferLabError(f"the export does not reproduce the model: max logit difference {bad}",
                               "report this model; export only model.safetensors for now")
    evaluation_path = run_dir / "evaluation.json"
    evaluation = json.loads(evaluation_path.read_text()) if evaluation_path.exists() else None
    (out_dir / "MODEL_CARD.md").write_text(_model_card(config, manifest, built, evaluation, diffs))
    files = {p.name: _sha256(p) for p in sorted(out_dir.iterdir()) if p.name != "config.json"}
    meta = {
        "format": EXPORT_MARK, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "arch": built.arch,
        "model": config.model.to_dict(), "classes": manifest.classes, "input_size": list(built.preprocessing.input_size),
        "preprocessing": built.preprocessing.to_dict(), "onnx_opset": ONNX_OPSET, "files": files,
        "max_abs_diff": diffs, "training_config": config.to_dict(), "split_id": manifest.id,
        "test_accuracy": evaluation["accuracy"] if evaluation else None,
    }
    (out_dir / "config.json").write_text(json.dumps(meta, indent=1))
    return ExportReport(folder=str(out_dir), files=files, max_abs_diff=diffs)


def _model_card(config: RunConfig, manifest: SplitManifest, built, evaluation: dict | None, diffs: dict) -> str:
    counts = manifest.counts()
    lines = [
        f"# {built.arch} fine-tuned on {Path(config.data.source).name}",
        "",
        f"- Classes ({len(manifest.classes)}): {', '.join(manifest.classes)}",
        f"- Data: `{config.data.source}`, split {manifest.id} (seed {manifest.seed}): "
        + ", ".join(f"{s} {sum(counts[s].values())}" for s in ("train", "val", "test")),
        f"- Model: {built.arch}, fine-tuned from "
        + ("random initialisation (no pretrained weights)" if config.model.weights == "random"
           else f"pretrained ImageNet weights (weights setting: {config.model.weights})"),
        f"- Freeze strategy: {json.dumps(config.freeze)}; {config.epochs} epochs, {config.optimizer.name} lr "
        f"{config.optimizer.lr}, augmentation {config.augment.preset or 'custom'}",
        f"- Input: {built.preprocessing.input_size[1]}x{built.preprocessing.input_size[2]}, "
        f"{built.preprocessing.interpolation}, crop {built.preprocessing.crop_pct}, mean {built.preprocessing.mean}, "
        f"std {built.preprocessing.std}",
    ]
    if evaluation:
        lines += ["", f"## Held-out test set ({evaluation['n']} pictures)", "",
                  f"Accuracy {evaluation['accuracy']:.3f}, balanced accuracy {evaluation['balanced_accuracy']:.3f}.", "",
                  "| class | precision | recall | F1 | pictures |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {c['label']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
                  for c in evaluation["per_class"]]
    lines += ["", "## Files", "",
              "- `model.safetensors`: weights; `config.json`: architecture, classes, preprocessing, checksums",
              f"- `model.torchscript.pt`, `model.onnx` (opset {ONNX_OPSET}): same predictions, max logit difference "
              + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()),
              "", "Predict: `python -m tlcore predict THIS_FOLDER picture.jpg`"]
    return "\n".join(lines) + "\n"


def load_export(folder: str | Path):
    """The export's PyTorch model and facts, after checking every file against its recorded checksum."""
    from tlcore.predict import Predictor

    folder = Path(folder)
    try:
        meta = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise TransferLabError(f"{folder} is not a Transfer Lab export (no readable config.json)",
                               "export a run first: python -m tlcore export RUN_ID OUT_FOLDER") from None
    if meta.get("format") != EXPORT_MARK:
        raise TransferLabError(f"{folder}/config.json is not a Transfer Lab export", "export the run again")
    for name, digest in meta["files"].items():
        path = folder / name
        if not path.exists() or _sha256(path) != digest:
            raise TransferLabError(f"export file {name} is missing or changed since the export (checksum mismatch)",
                                   "copy the export folder again, whole")
    spec = replace(ModelSpec.from_dict(meta["model"]), weights="random")
    built = build_model(spec, len(meta["classes"]), input_size=tuple(meta["input_size"]))
    try:
        load_model(built.model, str(folder / "model.safetensors"))
    except RuntimeError as exc:
        raise TransferLabError(f"model.safetensors does not fit {meta['arch']} with {len(meta['classes'])} classes: "
                               f"{str(exc).splitlines()[0][:160]}", "export the run again") from None
    return Predictor(built.model.eval(), list(meta["classes"]), Preprocessing(**{
        **meta["preprocessing"], "input_size": tuple(meta["preprocessing"]["input_size"]),
        "mean": tuple(meta["preprocessing"]["mean"]), "std": tuple(meta["preprocessing"]["std"])}))

