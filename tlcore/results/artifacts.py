"""The files of a run folder and of an export folder, and how a trained model is read back from either.

One module owns the names, so evaluation, prediction and export never import training code
to learn them, and one loader turns a run (or an export) back into a model with its
preprocessing and classes. Nothing here trains and nothing here writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from tlcore.config import RunConfig, read_json_file
from tlcore.data import SplitManifest
from tlcore.errors import TransferLabError
from tlcore.modality import Modality, named, of_config, registered
from tlcore.models import BuiltModel, ModelSpec, Preprocessing
from tlcore.core.files import FileRefused, read_regular_file
from tlcore.core.run_files import (ADAPTED, BEST, CONFIG, EVALUATION, EVALUATIONS, EXPORT_CARD, EXPORT_ENCODER, EXPORT_MARK,
                              EXPORT_MARKS, META_SHA256, meta_checksum,
                              EXPORT_REQUIRED, EXPORT_WEIGHTS, HISTORY, LAST, PREDICTIONS, SPLIT, STATE,
                              TARGET_SCORE, TRAINING_MARK, read_evaluation, read_folder_evaluations,
                              read_target_score, weights_epoch)
from tlcore.core.typed import typed

__all__ = [
    "ADAPTED", "CONFIG", "SPLIT", "HISTORY", "BEST", "LAST", "STATE", "EVALUATION", "EVALUATIONS", "PREDICTIONS", "TRAINING_MARK",
    "TARGET_SCORE", "read_target_score",
    "EXPORT_MARK", "EXPORT_WEIGHTS", "EXPORT_CARD", "EXPORT_REQUIRED",
    "CheckpointError", "TrainedRun", "ExportedModel",
    "load_weights", "weights_epoch", "read_evaluation", "read_folder_evaluations", "load_trained", "is_export", "load_export", "sha256_file",
]


class CheckpointError(TransferLabError):
    """A checkpoint file is missing, damaged or belongs to another model."""


def load_weights(model: nn.Module, path: str | Path, device: str = "cpu") -> None:
    """Load a weights file into a model of the same architecture.

    Raises `CheckpointError` (one line naming the file) when it is missing, damaged, or from another model.

    Args:
        model: a model of the weights' architecture.
        path: the .safetensors file.
        device: where the tensors are loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.name} is missing from {path.parent}", "choose a run that finished at least one epoch")
    try:
        tensors = load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is damaged ({' '.join(str(exc).split())[:160]})",
                              "resume or re-run the training to write it again") from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        first = str(exc).split("\n")[0][:200]
        raise CheckpointError(f"{path} does not fit this model ({first})",
                              "it belongs to another run or model; do not copy checkpoints between runs") from None


@dataclass
class TrainedRun:
    """A finished (or stopped) run as what it was trained with and what it became."""

    config: RunConfig
    manifest: SplitManifest
    built: BuiltModel

    def __iter__(self):  # `config, manifest, built = load_trained(...)`
        return iter((self.config, self.manifest, self.built))


def load_trained(run_dir: str | Path, checkpoint: str = BEST) -> TrainedRun:
    """A run's config, split and model with the checkpoint loaded (the pretrained weights need not be found again).

    Args:
        run_dir: the run's folder (`Run.run_dir` in the run store).
        checkpoint: which weights: `BEST` (the default, what evaluation and export use), `LAST`, or `ADAPTED`
            (an AdaBN run's best weights with the target pictures' BatchNorm statistics).

    Raises `TransferLabError` (or its `CheckpointError`) when the folder, its config, split or weights
    cannot be used.
    """
    run_dir = Path(run_dir)
    if checkpoint == ADAPTED and not (run_dir / ADAPTED).exists() and (run_dir / BEST).exists():
        raise TransferLabError(f"run {run_dir.name} has no weights adapted to target pictures (only an AdaBN run "
                               "keeps them)", "use its best weights, or train with the adaptation method adabn")
    if not (run_dir / checkpoint).exists():
        raise TransferLabError(f"run folder {run_dir} has no {checkpoint}", "choose a run that finished at least one epoch")
    config = RunConfig.load(run_dir / CONFIG)
    manifest = SplitManifest.load(run_dir / SPLIT)
    built = of_config(config).build(replace(config.model, weights="random"), len(manifest.classes),
                                    input_size=config.input_size)
    load_weights(built.model, run_dir / checkpoint)
    return TrainedRun(config, manifest, built)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks.

    Args:
        path: the file.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_export(folder: str | Path) -> bool:
    """A folder whose config.json says it is a Transfer Lab export (not yet verified), or whose config.json cannot
    be read beside an export's weights and card (a damaged export: `load_export` then names the damage, where the
    folder was taken for a run with "no best.safetensors")."""
    folder = Path(folder)
    try:
        return json.loads(read_regular_file(folder / CONFIG, 1_000_000)).get("format") in EXPORT_MARKS
    except (FileRefused, ValueError, RecursionError, AttributeError):
        return (folder / EXPORT_CARD).is_file() and ((folder / EXPORT_WEIGHTS).is_file()
                                                     or (folder / EXPORT_ENCODER / EXPORT_WEIGHTS).is_file())


@dataclass(frozen=True)
class _ExportMeta:
    """What loading reads from an export's config.json, typed: a damaged file is refused by field."""

    format: str
    arch: str
    model: ModelSpec
    classes: tuple[str, ...]
    input_size: tuple[int, int, int]
    preprocessing: Preprocessing
    files: dict[str, str]
    modality: str = "image"
    max_length: int | None = None


@dataclass
class ExportedModel:
    """An export read back and verified: the model with its weights, its classes and its preprocessing (a text
    export: its tokenizer and maximum length instead), and the whole built model (for its modality)."""

    model: nn.Module
    classes: list[str]
    preprocessing: Preprocessing
    tokenizer: object = None
    max_length: int | None = None
    built: BuiltModel | None = None


def load_export(folder: str | Path) -> ExportedModel:
    """An export folder's model, after checking every file it needs against its recorded checksum.

    The checksums guard against damage and half copies (a flipped byte, a missing file); they are not a
    signature against someone who edits the model and recomputes them.

    Raises `TransferLabError` (one line) when the folder is not an export, lacks a file it needs, or a
    file differs from what was exported.
    """
    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        raise TransferLabError(f"{folder} is not a Transfer Lab export (no {CONFIG})",
                               "export a run first: python -m tlcore export RUN_ID OUT_FOLDER")
    raw = read_json_file(folder / CONFIG, "export config", TransferLabError)
    if not isinstance(raw, dict) or raw.get("format") not in EXPORT_MARKS:
        raise TransferLabError(f"{folder}/{CONFIG} is not a Transfer Lab export", "export the run again")
    if raw["format"] == EXPORT_MARK and raw.get(META_SHA256) != meta_checksum(raw):
        raise TransferLabError(f"the export's {CONFIG} changed since the export (checksum mismatch)",
                               "copy the export folder again, whole, or export the run again")
    names = {f.name for f in dataclasses.fields(_ExportMeta)}
    meta = typed(_ExportMeta, {k: v for k, v in raw.items() if k in names}, "the export config")
    modality = _modality_of(meta)
    modality.check_export_meta(meta)
    weights = modality.export_weights_file(meta)
    missing = sorted({EXPORT_CARD, weights} - set(meta.files))
    if missing:
        raise TransferLabError(f"the export's {CONFIG} does not list {', '.join(missing)}",
                               "the export is incomplete or was edited; export the run again")
    for name, digest in meta.files.items():
        path = folder / name
        parts = Path(name).parts
        if not modality.export_file_allowed(parts) or ".." in parts or not path.is_file() or sha256_file(path) != digest:
            raise TransferLabError(f"export file {name} is missing or changed since the export (checksum mismatch)",
                                   "copy the export folder again, whole")
    if len(meta.classes) < 2:
        raise TransferLabError("the export lists fewer than 2 classes", "export the run again")
    try:
        return _build_export(folder, meta, modality)
    except TransferLabError:
        raise
    except (ValueError, TypeError, KeyError, OSError, RuntimeError, AttributeError, RecursionError) as exc:
        # files edited with their checksums recomputed: an encoder config of another kind, a tokenizer that is not
        # JSON, weights of another shape
        raise TransferLabError(f"the export's model cannot be built from its files ({type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:150]})", "export the run again") from None


def _modality_of(meta: "_ExportMeta") -> Modality:
    """The export's kind of data, by its config's "modality".

    Raises:
        TransferLabError: no kind of that name.
    """
    try:
        return named(str(meta.modality))
    except KeyError:
        kinds = ", ".join(sorted(m.export_key for m in registered()))
        raise TransferLabError(f"the export's modality {str(meta.modality)[:40]!r} is no kind of data this version "
                               f"reads ({kinds})", "export the run again") from None


def _build_export(folder: Path, meta: "_ExportMeta", modality: Modality) -> ExportedModel:
    built = modality.export_model(folder, meta)
    load_weights(built.model, folder / modality.export_weights_file(meta))
    return ExportedModel(built.model.eval(), list(meta.classes), meta.preprocessing, built.tokenizer,
                         built.max_length, built)
