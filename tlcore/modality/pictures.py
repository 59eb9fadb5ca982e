"""Pictures: a folder or zip of class folders, timm image models, albumentations, Grad-CAM's models."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader

from tlcore.core.collectives import rank_world
from tlcore.data import load_rgb, scan
from tlcore.data.layout import is_hidden
from tlcore.errors import TransferLabError
from tlcore.modality.base import Item, Modality
from tlcore.models import DEFAULT_MODEL, BuiltModel, ModelSpec, build_model, check_weights
from tlcore.core.runtime import Runtime

if TYPE_CHECKING:  # albumentations comes with these: imported where pictures are loaded, not to name the kind
    from tlcore.inputs.input_path import InputPath
    from tlcore.inputs.loader import EpochLoader

__all__ = ["Pictures", "picture_files"]


def picture_files(target: Path) -> list[Path]:
    """The files to classify: one picture, or every file of a folder (hidden ones left out), in order.

    Args:
        target: a picture or a folder.

    Returns:
        The files.

    Raises:
        TransferLabError: neither exists.
    """
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise TransferLabError(f"no such picture or folder: {target}", "check the path")
    return sorted(p for p in target.rglob("*") if p.is_file() and not any(is_hidden(x) for x in p.relative_to(target).parts))


class Pictures(Modality):
    """Labelled pictures in class folders (or train/val/test folders of them), and timm's image models."""

    key = "images"
    export_key = "image"
    items_word = "pictures"
    item_word = "picture"
    default_model = DEFAULT_MODEL
    task = ("image-classification", "Image Classification")
    library = "timm"
    pretrained_words = "ImageNet"
    data_words = "a folder or zip of class folders of pictures"
    speed_unit = "img/s"
    first_group_words = "stem"
    early_features_words = "generic edges and textures"
    normalisation_words = "ImageNet's BatchNorm statistics"

    def owns_data(self, source: str) -> bool:
        """Any folder or zip: pictures are the kind a source is when no other kind claims it."""
        return True

    def owns_model(self, name: str) -> bool:
        """Any model name: timm's catalog is open-ended, so pictures take what no other kind claims."""
        return True

    def read(self, source: str, data: Any = None, **options: Any):
        """The folder's (or zip's) scan report (`tlcore.data.scan`)."""
        return scan(source, max_file_mb=options.get("max_file_mb"))

    def build(self, spec: ModelSpec, num_classes: int, *, input_size: tuple[int, int, int] | None = None,
              seed: int = 0) -> BuiltModel:
        """A timm model with its new head (`tlcore.models.build_model`)."""
        return build_model(spec, num_classes, input_size=input_size, seed=seed)

    def candidate_models(self) -> list[str]:
        """The recommended models whose weights are on this machine."""
        from tlcore.models import RECOMMENDED, model_card

        return [name for name in RECOMMENDED if model_card(name).offline_weights]

    def warm_up(self) -> None:
        """timm and albumentations."""
        import importlib

        for module in ("timm", "tlcore.inputs.augment"):
            importlib.import_module(module)

    def check_model(self, spec: ModelSpec) -> None:
        """Its weights are here (nothing is built)."""
        check_weights(spec)

    def runtime(self, runtime: Runtime) -> Runtime:
        """As selected (channels_last where the device gains from it)."""
        return runtime

    def dataset(self, built: BuiltModel, items: list[tuple[Path, int]], *, root: str, source: str, config: Any,
                training: bool):
        """Pictures through the run's augmentation (training) or its evaluation preprocessing."""
        from tlcore.inputs.augment import eval_pipeline, resize_target, train_pipeline
        from tlcore.inputs.loader import ImageListDataset

        p = built.preprocessing
        pipeline = train_pipeline(config.augment, p, seed=config.seed) if training else eval_pipeline(p)
        return ImageListDataset(items, pipeline, min_side=resize_target(p.input_size, p.crop_pct)), None

    def loader(self, prep: Any, split: str, training: bool, generator: torch.Generator | None = None,
               batch_size: int | None = None) -> EpochLoader:
        """Pictures of a split, or of the adaptation target ("target", labels unused) or the few labelled target
        pictures ("labelled"); from the decoded cache and augmented on the device when the run's inputs say so."""
        from tlcore.inputs.augment import eval_pipeline, resize_target, train_pipeline
        from tlcore.inputs.loader import DecodedDataset, EpochLoader, ImageListDataset

        p, config = prep.built.preprocessing, prep.config
        outside = {"target": lambda: prep.target.items(),
                   "labelled": lambda: [(path, label) for path, label, _sha in prep.labelled]}  # not in the manifest
        items = outside[split]() if split in outside else prep.manifest.files(split)
        decoded = prep.inputs.decoded(split) if split not in outside else None
        on_device = prep.inputs.on_device(p, prep.runtime, training, config.seed) if decoded else None
        if on_device is not None:
            dataset = DecodedDataset(items, decoded)
        else:
            pipeline = train_pipeline(config.augment, p, seed=config.seed) if training else eval_pipeline(p)
            dataset = ImageListDataset(items, pipeline, min_side=resize_target(p.input_size, p.crop_pct), decoded=decoded)
        rank, world = rank_world() if training and split == "train" else (0, 1)
        return EpochLoader(dataset, batch_size=batch_size or config.batch_size, num_workers=prep.runtime.num_workers,
                           pin_memory=prep.runtime.pin_memory, generator=generator, rank=rank, world=world,
                           on_device=on_device, device=prep.runtime.device)

    def eval_batches(self, built: BuiltModel, items: list[tuple[Path, int]], *, root: str, source: str,
                     config: Any, runtime: Runtime) -> DataLoader:
        """The pictures with the evaluation preprocessing, in the runtime's loader workers."""
        dataset, _ = self.dataset(built, items, root=root, source=source, config=config, training=False)
        return DataLoader(dataset, batch_size=config.batch_size, num_workers=runtime.num_workers)

    def choose_inputs(self, prep: Any, say: Callable[[str, str], None]) -> InputPath:
        """The decoded-picture cache and device augmentation, as the run's settings and the device allow."""
        from tlcore.inputs.input_path import choose_input

        return choose_input(prep.config, prep.manifest, prep.built.preprocessing, prep.runtime, say)

    def inputs_words(self, prep: Any) -> str:
        """How the pictures reach the model (`InputPath.describe`)."""
        return prep.inputs.describe()

    def augment_key(self, config: Any) -> dict:
        """The picture augmentation's spec."""
        return config.augment.to_dict()

    def items_to_predict(self, given: str) -> list[tuple[str, Item]]:
        """A picture or every file of a folder, each named by its path."""
        return [(str(path), path) for path in picture_files(Path(given))]

    def probabilities(self, built: BuiltModel, items: list[Item], batch_size: int = 32) -> torch.Tensor:
        """Each picture through the evaluation preprocessing.

        Raises:
            ImageReadError: a file is not a picture.
        """
        from tlcore.inputs.augment import eval_pipeline

        pipeline = eval_pipeline(built.preprocessing)
        rows = []
        for start in range(0, len(items), batch_size):
            x = torch.stack([pipeline(image=np.asarray(load_rgb(path)))["image"]
                             for path in items[start:start + batch_size]])
            with torch.inference_mode():
                rows.append(built.model.eval()(x).float().softmax(1))
        return torch.cat(rows)

    def export_example(self, run_dir: Path, config: Any, manifest, built: BuiltModel, n: int = 4) -> torch.Tensor:
        """A few held-out pictures through the evaluation preprocessing."""
        from tlcore.inputs.augment import eval_pipeline

        pipeline = eval_pipeline(built.preprocessing)
        items = (manifest.files("test") or manifest.files("val"))[:n]
        return torch.stack([pipeline(image=np.asarray(load_rgb(path)))["image"] for path, _ in items])

    def onnx_inputs(self, model: torch.nn.Module, x: torch.Tensor):
        """One input, `images` (batch, channels, height, width), dynamic batch."""
        return model, (x[:1],), ["images"], {"images": {0: "batch"}}

    def onnx_feed(self, batch: torch.Tensor) -> dict:
        """The batch as `images`."""
        return {"images": batch.numpy()}

    def card_base_model(self, built: BuiltModel) -> str:
        """timm's Hub name of the architecture's pretrained weights."""
        import timm

        cfg = timm.models.get_pretrained_cfg(built.arch)
        return cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else f"timm/{built.arch}"

    def card_augment_words(self, config: Any) -> str:
        """The augmentation preset ("" for none)."""
        return "" if config.augment.preset == "none" else f"augmentation {config.augment.preset or 'custom'}"

    def card_input_line(self, built: BuiltModel) -> str:
        """Size, interpolation, crop and normalisation."""
        p = built.preprocessing
        return (f"- Input: {p.input_size[1]}x{p.input_size[2]}, {p.interpolation}, crop {p.crop_pct}, mean {p.mean}, "
                f"std {p.std}")

    def card_files_lines(self, built: BuiltModel, classes: list[str], diffs: dict[str, float],
                         opset: int) -> list[str]:
        """The weights in timm's own names, TorchScript and ONNX, and the timm snippet that loads them."""
        return ["", "## Files", "",
                "- `model.safetensors`: weights; `config.json`: architecture, classes, preprocessing, checksums",
                f"- `model.torchscript.pt`, `model.onnx` (opset {opset}): same predictions, max logit difference "
                + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()),
                "", "Predict: `python -m tlcore predict THIS_FOLDER picture.jpg`", "",
                "In plain timm (the weights are timm's own names, the new head included):", "", "```python",
                "import timm", "from safetensors.torch import load_file", "",
                f"model = timm.create_model({built.arch!r}, num_classes={len(classes)})",
                'model.load_state_dict(load_file("model.safetensors"))',
                f"classes = {classes!r}", "```"]

