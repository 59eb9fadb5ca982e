"""A finished run as a folder IT can use: weights, config, TorchScript, ONNX and a model card.

Every export is checked against the PyTorch model on real test pictures before it is
written as done, and every file's SHA-256 goes into config.json, so a tampered or
half-copied export is refused when loaded instead of predicting nonsense.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from tlcore.results.artifacts import (
    ADAPTED, BEST, CONFIG, EXPORT_CARD, EXPORT_MARK, is_export, load_trained, read_evaluation, sha256_file,
)
from tlcore.config import RunConfig
from tlcore.data import SplitManifest
from tlcore.errors import TransferLabError
from tlcore.modality import PICTURES, Modality, of_built, of_config
from tlcore.core.run_files import META_SHA256, meta_checksum

__all__ = ["ExportReport", "export_run", "export_steps", "TOLERANCE", "ONNX_OPSET"]

TOLERANCE = 1e-4  # max |logit difference| between an export and the PyTorch model, per unit of the largest |logit|
# (float32 rounding grows with the values: logits in the hundreds, as under other BatchNorm statistics, differ by more)
ONNX_OPSET = 17  # loads in onnxruntime 1.x
_WEIGHTS_WORDS = {BEST: "the best epoch's (by the validation metric)",
                  ADAPTED: "the best epoch's with the BatchNorm statistics of the target pictures (AdaBN): for "
                           "pictures of the target domain"}


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote: its folder, the files by format, and each format's largest difference from the
    trained model on the check pictures."""
    folder: str
    files: dict[str, str]
    max_abs_diff: dict[str, float]  # per format, on the check pictures


def export_steps(formats: tuple[str, ...] = ("torchscript", "onnx"), modality: Modality = PICTURES) -> list[str]:
    """The steps an export goes through, in order, as `export_run` reports them.

    Args:
        formats: the formats exported besides the safetensors weights.
        modality: the run's kind of data: it may leave formats out (texts: no TorchScript, a traced transformer is
            tied to the traced text length) and write more than the weights (texts: the tokenizer).

    Returns:
        One short phrase per step, e.g. "ONNX: export and check".
    """
    formats = modality.export_formats(formats)
    return (["loading the trained model", "weights (safetensors)" + modality.export_steps_words()]
            + ["TorchScript: trace and check"] * ("torchscript" in formats)
            + ["ONNX: export and check"] * ("onnx" in formats) + ["model card and checksums"])


def export_run(run_dir: str | Path, out_dir: str | Path, *, checkpoint: str = BEST,
               formats: tuple[str, ...] = ("torchscript", "onnx"),
               on_step: Callable[[int, int, str], None] = lambda done, total, step: None) -> ExportReport:
    """Export a finished run's checkpoint to `out_dir`, every format checked against the PyTorch logits.

    The export is written into a temporary folder beside `out_dir` and renamed into place at the end, so a
    failure leaves no half export. `out_dir` may be new, empty, or an earlier Transfer Lab export (replaced);
    any other existing folder is refused before any work.

    Args:
        run_dir: a finished run's folder.
        out_dir: where the export goes.
        checkpoint: which weights of the run: `BEST` (the default), or `ADAPTED` for an AdaBN run's weights with the
            target pictures' BatchNorm statistics.
        formats: "torchscript" and/or "onnx", besides the weights.
        on_step: called as (steps done, steps in all, the step starting now) before each of `export_steps`.

    Returns:
        The folder, its files with their SHA-256, and each format's largest logit difference.

    Raises:
        TransferLabError: with one line, for a bad destination, a run without weights, or a format that does
            not reproduce the model.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    _check_destination(out_dir)
    try:  # the steps differ by kind of data; a run that cannot be read is said by load_trained below
        modality = of_config(RunConfig.load(run_dir / CONFIG))
    except TransferLabError:
        modality = PICTURES
    formats = modality.export_formats(formats)
    steps = export_steps(formats, modality)
    step = iter(range(len(steps)))

    def next_step() -> None:
        done = next(step)
        on_step(done, len(steps), steps[done])

    next_step()
    config, manifest, built = load_trained(run_dir, checkpoint)
    model = built.model.eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export-", dir=out_dir.parent))
    try:
        files, diffs = _write_export(work, run_dir, config, manifest, built, model, formats, next_step, checkpoint)
        _replace_folder(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportReport(folder=str(out_dir), files=files, max_abs_diff=diffs)


def _check_destination(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise TransferLabError(f"{out_dir} is a file, not a folder", "choose a new folder for the export")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_export(out_dir):
        raise TransferLabError(f"{out_dir} already holds other files", "choose a new or empty folder for the export "
                                                                       "(an earlier export there is replaced)")


def _replace_folder(new: Path, target: Path) -> None:
    """Put `new` where `target` is; an earlier export there is removed only once the new one is in place."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_export(out_dir: Path, run_dir: Path, config: RunConfig, manifest: SplitManifest, built, model,
                  formats: tuple[str, ...], next_step: Callable[[], None],
                  checkpoint: str = BEST) -> tuple[dict[str, str], dict[str, float]]:
    next_step()
    modality = of_built(built)
    x = modality.export_example(run_dir, config, manifest, built)
    with torch.inference_mode():
        reference = model(x).numpy()
    modality.write_weights(config, manifest.classes, model, out_dir)
    diffs: dict[str, float] = {}
    if "torchscript" in formats:
        next_step()
        with warnings.catch_warnings():  # torch's notices that TorchScript is deprecated: the format still works
            warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
            traced = torch.jit.trace(model, x[:1], check_trace=False)
            traced.save(str(out_dir / "model.torchscript.pt"))
            reloaded = torch.jit.load(str(out_dir / "model.torchscript.pt"))
        with torch.inference_mode():
            diffs["torchscript"] = float(np.abs(reloaded(x).numpy() - reference).max())
    if "onnx" in formats:
        next_step()
        import onnxruntime

        with warnings.catch_warnings():  # torch's notices about its newer exporter and the tracer's about Python
            # values taken as constants: the export is checked against the model below (texts: other lengths too)
            warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning, torch.jit.TracerWarning))
            warnings.filterwarnings("ignore", message="Exporting aten::index operator")  # no negative indexes here
            module, arguments, names, axes = modality.onnx_inputs(model, x)
            torch.onnx.export(module, arguments, str(out_dir / "model.onnx"), dynamo=False, opset_version=ONNX_OPSET,
                              input_names=names, output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}})
        session = onnxruntime.InferenceSession(str(out_dir / "model.onnx"), providers=["CPUExecutionProvider"])
        diffs["onnx"] = float(np.abs(session.run(None, modality.onnx_feed(x))[0] - reference).max())
        for other in modality.onnx_other_batches(x):  # texts: traced at one length, checked at another too
            with torch.inference_mode():
                expected = model(other).numpy()
            diffs["onnx"] = max(diffs["onnx"], float(np.abs(session.run(None, modality.onnx_feed(other))[0]
                                                            - expected).max()))
    allowed = TOLERANCE * max(1.0, float(np.abs(reference).max()))
    bad = {k: v for k, v in diffs.items() if v > allowed}
    if bad:
        raise TransferLabError(f"the export does not reproduce the model: max logit difference {bad} (allowed "
                               f"{allowed:.1e})",
                               "report this model; export only model.safetensors for now")
    next_step()
    evaluation = read_evaluation(run_dir)
    (out_dir / EXPORT_CARD).write_text(_model_card(config, manifest, built, evaluation, diffs, checkpoint))
    files = {p.relative_to(out_dir).as_posix(): sha256_file(p)  # only what this export wrote
             for p in sorted(out_dir.rglob("*")) if p.is_file()}
    meta = {
        "format": EXPORT_MARK, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "arch": built.arch,
        **modality.export_meta(built),
        "model": config.model.to_dict(), "classes": manifest.classes, "input_size": list(built.preprocessing.input_size),
        "preprocessing": built.preprocessing.to_dict(), "onnx_opset": ONNX_OPSET, "files": files,
        "max_abs_diff": diffs, "checkpoint": checkpoint, "training_config": config.to_dict(), "split_id": manifest.id,
        "test_accuracy": evaluation["accuracy"] if evaluation else None,
    }
    meta[META_SHA256] = meta_checksum(meta)
    (out_dir / CONFIG).write_text(json.dumps(meta, indent=1))
    return files, diffs


def _card_header(config: RunConfig, built, evaluation: dict | None) -> list[str]:
    """The Hugging Face Hub's model-card metadata (YAML front matter): base model, library, pipeline tag, data set,
    and the held-out metrics in the Hub's model-index form."""
    modality = of_built(built)
    task = modality.task
    dataset = Path(config.data.source).name

    def quoted(value: str) -> str:
        return json.dumps(str(value))  # a JSON string is a YAML string: names with colons or quotes stay whole

    lines = ["---", f"library_name: {modality.library}", f"pipeline_tag: {task[0]}",
             "tags:", "- transfer-lab", f"- {task[0]}"]
    if config.model.weights != "random":
        lines.append(f"base_model: {quoted(modality.card_base_model(built))}")
    lines += ["datasets:", f"- {quoted(dataset)}"]
    if evaluation:
        lines += ["model-index:", f"- name: {quoted(f'{built.arch} fine-tuned on {dataset}')}", "  results:",
                  f"  - task: {{type: {task[0]}, name: {task[1]}}}",
                  f"    dataset: {{name: {quoted(dataset)}, type: {quoted(dataset)}, split: test}}",
                  "    metrics:",
                  f"    - {{type: accuracy, value: {evaluation['accuracy']:.4f}, name: held-out test accuracy}}",
                  f"    - {{type: balanced_accuracy, value: {evaluation['balanced_accuracy']:.4f}}}"]
    return lines + ["---", ""]


def _model_card(config: RunConfig, manifest: SplitManifest, built, evaluation: dict | None, diffs: dict,
                checkpoint: str = BEST) -> str:
    counts = manifest.counts()
    modality = of_built(built)
    pretrained = ("random initialisation (no pretrained weights)" if config.model.weights == "random" else
                  f"its pretrained {modality.pretrained_words} weights (weights setting: {config.model.weights})")
    augmentation = modality.card_augment_words(config)
    freeze = json.dumps({k: v for k, v in asdict(config.freeze).items() if v is not None})
    lines = _card_header(config, built, evaluation) + [
        f"# {built.arch} fine-tuned on {Path(config.data.source).name}",
        "",
        f"- Classes ({len(manifest.classes)}): {', '.join(manifest.classes)}",
        f"- Data: `{config.data.source}`, split {manifest.id} (seed {manifest.seed}): "
        + ", ".join(f"{s} {sum(counts[s].values())}" for s in ("train", "val", "test")),
        f"- Model: {built.arch}, fine-tuned from {pretrained}",
        f"- Weights: {_WEIGHTS_WORDS.get(checkpoint, checkpoint)}",
        f"- Freeze strategy: {freeze}; {config.epochs} epochs, {config.optimizer.name} lr {config.optimizer.lr}"
        + (f", {augmentation}" if augmentation else ", no augmentation"),
        modality.card_input_line(built),
    ]
    if evaluation:
        things = modality.items_word
        lines += ["", f"## Held-out test set ({evaluation['n']} {things})", "",
                  f"Accuracy {evaluation['accuracy']:.3f}, balanced accuracy {evaluation['balanced_accuracy']:.3f}.", "",
                  f"| class | precision | recall | F1 | {things} |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {c['label']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
                  for c in evaluation["per_class"]]
    lines += modality.card_files_lines(built, manifest.classes, diffs, ONNX_OPSET)
    return "\n".join(lines) + "\n"
