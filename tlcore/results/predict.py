"""Predictions from a trained run with exactly its evaluation preprocessing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tlcore.results.artifacts import BEST, CONFIG, is_export, load_export, load_trained
from tlcore.inputs.augment import eval_pipeline
from tlcore.data import load_rgb
from tlcore.modality import of_built
from tlcore.models import BuiltModel, Preprocessing
from tlcore.errors import TransferLabError
from tlcore.core.paths import user_path

__all__ = ["Predictor", "trained_model", "classify", "model_name_of"]


def _folder_of(target: str | Path, checkpoint: str) -> tuple[Path, bool]:
    """The folder `target` names (an export folder, a run folder or a run id) and whether it is an export.

    Raises:
        TransferLabError: none of these, or an export asked for other weights than its own.
    """
    path = user_path(target)
    try:
        is_folder = path.is_dir() and (path / CONFIG).exists()
    except OSError:  # a name no file system takes: it can only be meant as a run id
        is_folder = False
    if is_folder and is_export(path):
        if checkpoint != BEST:
            raise TransferLabError(f"{path.name} is an export: it holds the one set of weights it was exported "
                                   "with", "export the run with --adapted to get its adapted weights")
        return path, True
    if is_folder:
        return path, False
    from tlcore.runs import RunStore

    return Path(RunStore().get(str(target)).run_dir), False


def model_name_of(target: str | Path) -> str:
    """The model name an export, a run folder or a run id was trained from ("" when it cannot be read: loading it
    then says why).

    Args:
        target: the folder or run id.
    """
    from tlcore.config import read_json_file

    try:
        folder, _ = _folder_of(target, BEST)
        name = (read_json_file(folder / CONFIG, "the run's config").get("model") or {}).get("name", "")
    except (OSError, ValueError, TransferLabError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def trained_model(target: str | Path, checkpoint: str = BEST) -> tuple[BuiltModel, list[str]]:
    """The model of an export folder, a run folder or a run id, with its weights, and its classes.

    Args:
        target: the folder or run id.
        checkpoint: for a run, which of its weights.

    Returns:
        (the built model in eval mode, its classes in order).

    Raises:
        TransferLabError: the target cannot be found or loaded.
    """
    folder, exported = _folder_of(target, checkpoint)
    if exported:
        model = load_export(folder)
        return model.built, model.classes
    trained = load_trained(folder, checkpoint)
    trained.built.model.eval()
    return trained.built, list(trained.manifest.classes)


def classify(target: str | Path, given: str, topk: int = 1,
             checkpoint: str = BEST) -> list[tuple[str, list[tuple[str, float]]]]:
    """New items classified by a trained model, whatever its kind of data: the modality reads what was given (a
    picture or a folder of them, a text or a file of texts, ...) and classifies it as in evaluation.

    Args:
        target: an export folder, a run folder or a run id.
        given: what to classify, as the model's modality reads it.
        topk: classes per item (at most the number of classes).
        checkpoint: for a run, which of its weights.

    Returns:
        For each item, its name and its top (class, probability) pairs, most likely first.

    Raises:
        TransferLabError: the model cannot be loaded, or nothing can be classified.
    """
    built, classes = trained_model(target, checkpoint)
    modality = of_built(built)
    named = modality.items_to_predict(given)
    probabilities = modality.probabilities(built, [item for _, item in named])
    values, indexes = probabilities.topk(min(topk, len(classes)), dim=1)
    return [(name, [(classes[i], float(v)) for v, i in zip(row_v, row_i)])
            for (name, _), row_v, row_i in zip(named, values.tolist(), indexes.tolist())]


@dataclass
class Predictor:
    """A trained model ready for new pictures: `Predictor.resolve("RUN_ID")` or `.from_export(folder)`, then
    `.predict(image)` on a uint8 RGB array, or `.predict_file(path)`; both return the top-k (class, probability)."""

    model: torch.nn.Module
    classes: list[str]
    preprocessing: Preprocessing

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = BEST) -> "Predictor":
        """A run folder's checkpoint with the run's evaluation preprocessing.

        Args:
            run_dir: the run folder.
            checkpoint: which weights (the best epoch's by default).
        """
        _, manifest, built = load_trained(run_dir, checkpoint)
        return cls(built.model.eval(), manifest.classes, built.preprocessing)

    @classmethod
    def from_export(cls, folder: str | Path) -> "Predictor":
        """An export folder, verified file by file before its model is used."""
        exported = load_export(folder)
        return cls(exported.model, exported.classes, exported.preprocessing)

    @classmethod
    def resolve(cls, target: str | Path, checkpoint: str = BEST) -> "Predictor":
        """An export folder, a run folder, or a run id from the run store.

        Args:
            target: the folder or run id.
            checkpoint: for a run, which of its weights (`BEST`, or `ADAPTED` for an AdaBN run's weights adapted
                to the target pictures); an export holds the one set it was exported with.

        Returns:
            The predictor.

        Raises:
            TransferLabError: one line, when `target` is none of these or cannot be loaded.
        """
        folder, exported = _folder_of(target, checkpoint)
        return cls.from_export(folder) if exported else cls.from_run(folder, checkpoint)

    def groups(self):
        """The model's layer groups, stem to head (for Grad-CAM's choice of layer)."""
        from tlcore.models import layer_groups

        return layer_groups(self.model, input_size=self.preprocessing.input_size)

    def predict(self, image: np.ndarray, topk: int = 5) -> list[tuple[str, float]]:
        """Top-k (class, probability) for one uint8 RGB picture.

        Args:
            image: height x width x 3, uint8.
            topk: how many classes.
        """
        x = eval_pipeline(self.preprocessing)(image=image)["image"][None]
        with torch.inference_mode():
            probabilities = self.model(x).float().softmax(1)[0]
        values, indexes = probabilities.topk(min(topk, len(self.classes)))
        return [(self.classes[i], float(v)) for v, i in zip(values, indexes)]

    def predict_file(self, path: str | Path, topk: int = 5) -> list[tuple[str, float]]:
        """`predict` on a picture file.

        Args:
            path: the picture.
            topk: how many classes.

        Raises:
            ImageReadError: the file cannot be read as a picture.
        """
        return self.predict(np.asarray(load_rgb(path)), topk)
