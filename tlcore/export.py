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
from safetensors.torch import save_model

from tlcore.augment import eval_pipeline
from tlcore.artifacts import (
    ADAPTED, BEST, CONFIG, EXPORT_CARD, EXPORT_MARK, EXPORT_WEIGHTS, is_export, load_trained, read_evaluation, sha256_file,
)
from tlcore.config import RunConfig
from tlcore.data import SplitManifest, load_rgb
from tlcore.errors import TransferLabError
from tlcore.models import Preprocessing
from tlcore.run_files import EXPORT_ENCODER, META_SHA256, meta_checksum
from tlcore.text.catalog import is_text_model

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


def _check_inputs(run_dir: Path, manifest: SplitManifest, preprocessing: Preprocessing, n: int = 4) -> torch.Tensor:
    pipeline = eval_pipeline(preprocessing)
    items = (manifest.files("test") or manifest.files("val"))[:n]
    return torch.stack([pipeline(image=np.asarray(load_rgb(path)))["image"] for path, _ in items])


def export_steps(formats: tuple[str, ...] = ("torchscript", "onnx"), text: bool = False) -> list[str]:
    """The steps an export goes through, in order, as `export_run` reports them.

    Args:
        formats: the formats exported besides the safetensors weights.
        text: a text run's export: its tokenizer goes with the weights, and there is no TorchScript (a traced
            transformer is tied to the traced text length; ONNX takes any length).

    Returns:
        One short phrase per step, e.g. "ONNX: export and check".
    """
    return (["loading the trained model", "weights (safetensors)" + " and tokenizer" * text]
            + ["TorchScript: trace and check"] * ("torchscript" in formats and not text)
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
    try:  # the steps differ for a text run; a run that cannot be read is said by load_trained below
        text = is_text_model(RunConfig.load(run_dir / CONFIG).model.name)
    except TransferLabError:
        text = False
    if text:
        formats = tuple(f for f in formats if f != "torchscript")
    steps = export_steps(formats, text)
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


def _check_texts(config: RunConfig, manifest: SplitManifest, built, n: int = 4) -> torch.Tensor:
    """A few test texts of the run (of different lengths), tokenized and padded as the model takes them."""
    from tlcore.modality import text_dataset
    from tlcore.text.loader import collate_texts

    items = (manifest.files("test") or manifest.files("val"))[:n]
    dataset = text_dataset(built, items, manifest.root, config.data.source, config.data.text_column,
                           config.data.label_column)
    return collate_texts([dataset[i] for i in range(len(dataset))])[0]


def _write_transformers_folder(config: RunConfig, classes: list[str], model, encoder: Path) -> None:
    """A transformers model folder: the encoder's config (with the classes as id2label/label2id, the head, and
    `AutoModelForSequenceClassification` mapped to `modeling_transferlab.py`), its tokenizer files, that modeling
    file, and the weights, so the export loads in plain transformers and tokenizes on a machine without the model's
    package."""
    from tlcore.text import modeling_transferlab
    from tlcore.text.catalog import model_folder

    source = model_folder(config.model.name)
    encoder.mkdir()
    for path in sorted(source.iterdir()):
        if path.is_file() and (path.name == "config.json" or path.name.startswith(("tokenizer", "vocab", "special_",
                                                                                     "merges", "sentencepiece"))):
            shutil.copy(path, encoder / path.name)
    own = json.loads((encoder / "config.json").read_text())  # the encoder's, kept whole inside the classifier's
    hf_config = {"model_type": modeling_transferlab.MODEL_TYPE,
                 "architectures": [modeling_transferlab.TransferLabTextClassifier.__name__],
                 "auto_map": {"AutoConfig": f"modeling_transferlab.{modeling_transferlab.TransferLabTextConfig.__name__}",
                              "AutoModelForSequenceClassification":
                              f"modeling_transferlab.{modeling_transferlab.TransferLabTextClassifier.__name__}"},
                 "encoder": own, "id2label": {str(i): name for i, name in enumerate(classes)},
                 "label2id": {name: i for i, name in enumerate(classes)},
                 "transferlab_head": {"hidden": config.model.head.hidden, "dropout": config.model.head.dropout}}
    (encoder / "config.json").write_text(json.dumps(hf_config, indent=1))
    shutil.copy(modeling_transferlab.__file__, encoder / "modeling_transferlab.py")
    save_model(model, str(encoder / EXPORT_WEIGHTS))


class _TokenInputs(torch.nn.Module):
    """The text model with transformers' two inputs, `input_ids` and `attention_mask`, for its ONNX export."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)  # a new module trains by default, and the exporter would run it so: dropout on

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits for (batch, length) token ids and attention mask."""
        return self.model(torch.stack([input_ids, attention_mask], 1))


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
    x = _check_texts(config, manifest, built) if built.text else _check_inputs(run_dir, manifest, built.preprocessing)
    with torch.inference_mode():
        reference = model(x).numpy()
    if built.text:  # one copy of the weights, in the transformers folder, which tlcore reads too
        _write_transformers_folder(config, manifest.classes, model, out_dir / EXPORT_ENCODER)
    else:
        save_model(model, str(out_dir / EXPORT_WEIGHTS))
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
            if built.text:  # transformers' convention: two inputs, dynamic batch and length
                names, axes = ["input_ids", "attention_mask"], {0: "batch", 1: "length"}
                torch.onnx.export(_TokenInputs(model), (x[:1, 0], x[:1, 1]), str(out_dir / "model.onnx"),
                                  dynamo=False, opset_version=ONNX_OPSET, input_names=names, output_names=["logits"],
                                  dynamic_axes={**{n: axes for n in names}, "logits": {0: "batch"}})
            else:
                names = ["images"]
                torch.onnx.export(model, (x[:1],), str(out_dir / "model.onnx"), dynamo=False,
                                  opset_version=ONNX_OPSET, input_names=names, output_names=["logits"],
                                  dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        session = onnxruntime.InferenceSession(str(out_dir / "model.onnx"), providers=["CPUExecutionProvider"])

        def onnx_inputs(batch: torch.Tensor) -> dict:
            return ({"input_ids": batch[:, 0].numpy(), "attention_mask": batch[:, 1].numpy()} if built.text
                    else {"images": batch.numpy()})

        diffs["onnx"] = float(np.abs(session.run(None, onnx_inputs(x))[0] - reference).max())
        if built.text:  # traced at one length: checked at another too (the texts cut to half as many tokens)
            short = x[:, :, : max(2, x.shape[2] // 2)].contiguous()
            with torch.inference_mode():
                expected = model(short).numpy()
            diffs["onnx"] = max(diffs["onnx"], float(np.abs(session.run(None, onnx_inputs(short))[0] - expected).max()))
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
        "modality": "text" if built.text else "image", "max_length": built.max_length if built.text else None,
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
    texts = built.text
    if texts:
        base = f"sentence-transformers/{built.arch}"
    else:
        import timm

        cfg = timm.models.get_pretrained_cfg(built.arch)
        base = cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else f"timm/{built.arch}"
    task = ("text-classification", "Text Classification") if texts else ("image-classification", "Image Classification")
    dataset = Path(config.data.source).name

    def quoted(value: str) -> str:
        return json.dumps(str(value))  # a JSON string is a YAML string: names with colons or quotes stay whole

    lines = ["---", f"library_name: {'transformers' if texts else 'timm'}", f"pipeline_tag: {task[0]}",
             "tags:", "- transfer-lab", f"- {task[0]}"]
    if config.model.weights != "random":
        lines.append(f"base_model: {quoted(base)}")
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
    texts = built.text
    pretrained = ("random initialisation (no pretrained weights)" if config.model.weights == "random" else
                  f"its pretrained {'sentence encoder' if texts else 'ImageNet'} weights (weights setting: "
                  f"{config.model.weights})")
    augmentation = (config.text_augment.words() if texts else
                    "" if config.augment.preset == "none" else f"augmentation {config.augment.preset or 'custom'}")
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
        + (f", {'text augmentation ' if texts else ''}{augmentation}" if augmentation else ", no augmentation"),
        (f"- Input: a text, up to {built.max_length} tokens (longer texts are cut), tokenized by the encoder's own "
         f"tokenizer in `{EXPORT_ENCODER}/`" if texts else
         f"- Input: {built.preprocessing.input_size[1]}x{built.preprocessing.input_size[2]}, "
         f"{built.preprocessing.interpolation}, crop {built.preprocessing.crop_pct}, mean {built.preprocessing.mean}, "
         f"std {built.preprocessing.std}"),
    ]
    if evaluation:
        things = "texts" if built.text else "pictures"
        lines += ["", f"## Held-out test set ({evaluation['n']} {things})", "",
                  f"Accuracy {evaluation['accuracy']:.3f}, balanced accuracy {evaluation['balanced_accuracy']:.3f}.", "",
                  f"| class | precision | recall | F1 | {things} |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {c['label']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
                  for c in evaluation["per_class"]]
    if built.text:
        lines += ["", "## Files", "",
                  f"- `{EXPORT_ENCODER}/`: a transformers model folder: `model.safetensors` (encoder and head), "
                  "`config.json` (the encoder's, with `id2label`/`label2id`), the tokenizer files, and "
                  "`modeling_transferlab.py` (mean pooling over the attention mask, then the head)",
                  "- `config.json`: classes, maximum length, checksums (for `python -m tlcore predict`)",
                  f"- `model.onnx` (opset {ONNX_OPSET}): inputs `input_ids` and `attention_mask`, int64 (batch, "
                  "length), as the tokenizer gives them; output `logits`. Max logit difference from PyTorch "
                  + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()),
                  "", 'Predict: `python -m tlcore predict THIS_FOLDER "a text"` (or a .txt or CSV file)', "",
                  "In plain transformers:", "", "```python",
                  "from transformers import pipeline", "",
                  f'classify = pipeline("text-classification", model="THIS_FOLDER/{EXPORT_ENCODER}", '
                  "trust_remote_code=True)",
                  'print(classify("a text"))', "```", "",
                  f"`trust_remote_code=True` runs `{EXPORT_ENCODER}/modeling_transferlab.py`, the model's own pooling "
                  "and head (read it first, as with any model's code)."]
        return "\n".join(lines) + "\n"
    lines += ["", "## Files", "",
              "- `model.safetensors`: weights; `config.json`: architecture, classes, preprocessing, checksums",
              f"- `model.torchscript.pt`, `model.onnx` (opset {ONNX_OPSET}): same predictions, max logit difference "
              + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()),
              "", "Predict: `python -m tlcore predict THIS_FOLDER picture.jpg`", "",
              "In plain timm (the weights are timm's own names, the new head included):", "", "```python",
              "import timm", "from safetensors.torch import load_file", "",
              f"model = timm.create_model({built.arch!r}, num_classes={len(manifest.classes)})",
              'model.load_state_dict(load_file("model.safetensors"))',
              f"classes = {manifest.classes!r}", "```"]
    return "\n".join(lines) + "\n"
