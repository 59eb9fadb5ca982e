"""Predictions from a trained run with exactly its evaluation preprocessing."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from tlcore.augment import eval_pipeline
from tlcore.config import RunConfig
from tlcore.data import SplitManifest, load_rgb
from tlcore.errors import TransferLabError
from tlcore.models import BuiltModel, Preprocessing, build_model
from tlcore.checkpoint import BEST, load_weights

__all__ = ["Predictor", "load_trained"]


def load_trained(run_dir: str | Path, checkpoint: str = BEST) -> tuple[RunConfig, SplitManifest, BuiltModel]:
    """A run's config, split and model with its checkpoint loaded (the pretrained weights need not be found again)."""
    run_dir = Path(run_dir)
    if not (run_dir / checkpoint).exists():
        raise TransferLabError(f"run folder {run_dir} has no {checkpoint}", "choose a run that finished at least one epoch")
    config = RunConfig.load(run_dir / "config.json")
    manifest = SplitManifest.load(run_dir / "split.json")
    built = build_model(replace(config.model, weights="random"), len(manifest.classes), input_size=config.input_size)
    load_weights(built.model, run_dir / checkpoint)
    return config, manifest, built


@dataclass
class Predictor:
    model: torch.nn.Module
    classes: list[str]
    preprocessing: Preprocessing

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = BEST) -> "Predictor":
        _, manifest, built = load_trained(run_dir, checkpoint)
        return cls(built.model.eval(), manifest.classes, built.preprocessing)

    @classmethod
    def resolve(cls, target: str | Path) -> "Predictor":
        """An export folder, a run folder, or a run id from the run store."""
        from tlcore.export import EXPORT_MARK, load_export

        path = Path(target).expanduser()
        try:
            is_folder = path.is_dir() and (path / "config.json").exists()
        except OSError:  # a name no file system takes: it can only be meant as a run id
            is_folder = False
        if is_folder:
            try:
                is_export = json.loads((path / "config.json").read_text()).get("format") == EXPORT_MARK
            except json.JSONDecodeError:
                is_export = False
            return load_export(path) if is_export else cls.from_run(path)
        from tlcore.runs import RunStore

        return cls.from_run(RunStore().get(str(target)).run_dir)

    def groups(self):
        from tlcore.models import layer_groups

        return layer_groups(self.model, input_size=self.preprocessing.input_size)

    def predict(self, image: np.ndarray, topk: int = 5) -> list[tuple[str, float]]:
        """Top-k (class, probability) for one uint8 RGB picture."""
        x = eval_pipeline(self.preprocessing)(image=image)["image"][None]
        with torch.inference_mode():
            probabilities = self.model(x).float().softmax(1)[0]
        values, indexes = probabilities.topk(min(topk, len(self.classes)))
        return [(self.classes[i], float(v)) for v, i in zip(values, indexes)]

    def predict_file(self, path: str | Path, topk: int = 5) -> list[tuple[str, float]]:
        return self.predict(np.asarray(load_rgb(path)), topk)
