"""Predictions from a trained run with exactly its evaluation preprocessing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tlcore.artifacts import BEST, CONFIG, is_export, load_export, load_trained
from tlcore.augment import eval_pipeline
from tlcore.data import load_rgb
from tlcore.models import Preprocessing
from tlcore.errors import TransferLabError
from tlcore.paths import user_path

__all__ = ["Predictor"]


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
        path = user_path(target)
        try:
            is_folder = path.is_dir() and (path / CONFIG).exists()
        except OSError:  # a name no file system takes: it can only be meant as a run id
            is_folder = False
        if is_folder and is_export(path):
            if checkpoint != BEST:
                raise TransferLabError(f"{path.name} is an export: it holds the one set of weights it was exported "
                                       "with", "export the run with --adapted to get its adapted weights")
            return cls.from_export(path)
        if is_folder:
            return cls.from_run(path, checkpoint)
        from tlcore.runs import RunStore

        return cls.from_run(RunStore().get(str(target)).run_dir, checkpoint)

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
