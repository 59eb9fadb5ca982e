"""What a kind of data (pictures, texts, ...) is to the engine: one interface, one object per kind.

The engine never asks "is this text?": it asks the run's modality to read the data, build the model, make the
loaders, give an example input, classify new items, write and read an export, and name its items. A new kind of
data is a subclass of `Modality` given to `tlcore.modality.register`; nothing else changes (tests/test_modality.py
trains, evaluates, predicts, exports and compares a third kind defined in that test alone).

The objects the methods take (a run config, a prepared run, an export's metadata) are read by attribute: this
module sits below them, so it names no type of theirs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch.utils.data import DataLoader

from tlcore.data import SplitManifest
from tlcore.errors import TransferLabError
from tlcore.models import BuiltModel, ModelSpec
from tlcore.core.runtime import Runtime

if TYPE_CHECKING:  # albumentations comes with them: imported where a loader is made, not to read an export's kind
    from tlcore.inputs.input_path import InputPath
    from tlcore.inputs.loader import EpochLoader

__all__ = ["Modality", "Item"]

Item = Any  # one item to classify, as a modality reads it (a picture's path, a text)


class Modality:
    """One kind of data and its models. Subclasses set the attributes and implement the methods that raise
    `NotImplementedError`; the others have a default that fits most kinds.

    Attributes:
        key: the kind's name in the settings' metadata (`tlcore.core.schema.Meta.modalities`) and in `BuiltModel.modality`.
        export_key: the kind's name in an export's config.json ("modality").
        items_word, item_word: what its items are called ("pictures", "picture").
        default_model: the model a run of this kind of data gets when none of this kind is named.
        task: the Hugging Face Hub's task of its classifiers (id, words), for the model card.
        library: the library that loads its exports as its own (the model card's `library_name`).
        pretrained_words: what its pretrained weights were trained as ("ImageNet", "sentence encoder").
        data_words: what data of this kind is, for hints ("a CSV, TSV or JSONL file of texts").
        speed_unit: its items per second, in a table's header ("img/s").
        first_group_words: its models' first layer group, in words ("stem"; a text encoder's "embeddings").
        early_features_words: what the first groups compute ("generic edges and textures").
        normalisation_words: what frozen groups' normalisation keeps, or "" when its models have no BatchNorm.
    """

    key: str = ""
    export_key: str = ""
    items_word: str = "items"
    item_word: str = "item"
    default_model: str = ""
    task: tuple[str, str] = ("", "")
    library: str = "pytorch"
    pretrained_words: str = "pretrained"
    data_words: str = "data of this kind"
    speed_unit: str = "items/s"
    first_group_words: str = "first group"
    early_features_words: str = "generic features"
    normalisation_words: str = ""

    # ---- which data and which models are of this kind ----
    def owns_data(self, source: str) -> bool:
        """True when `source` (a folder, zip or file the user gave) holds data of this kind."""
        raise NotImplementedError

    def owns_model(self, name: str) -> bool:
        """True when the model `name` takes this kind of data."""
        raise NotImplementedError

    # ---- data ----
    def read(self, source: str, data: Any = None, **options: Any) -> Any:
        """The scan report of `source`: `root`, `layout`, `classes`, `images` (records with `path`, `label`,
        `sha256`, `split`), `errors`, `warnings`, `leakage`, `ok`, `summary()` and `to_json()`.

        Args:
            source: the data; data: the run config's `data` part (columns and the like), or None;
            options: reader limits (`max_file_mb` ...), where the kind has them.

        Raises:
            DatasetError: the source cannot be read at all.
        """
        raise NotImplementedError

    def left_out_words(self, data: Any) -> str:
        """Items of the data the split leaves out, in one line, for the run's log ("" for none).

        Args:
            data: the run config's `data` part.
        """
        return ""

    # ---- the model ----
    def build(self, spec: ModelSpec, num_classes: int, *, input_size: tuple[int, int, int] | None = None,
              seed: int = 0) -> BuiltModel:
        """The model a spec names, with a new head of `num_classes` outputs, on the CPU (None: the kind's own
        choice, e.g. the pretrained classifier kept, to show the model).

        Raises:
            WeightsError: its weights cannot be found.

        Args:
            spec: the model part of a run config; num_classes: see above; input_size: (channels, height,
            width), where the kind takes one; seed: the new head's initialisation.
        """
        raise NotImplementedError

    def candidate_models(self) -> list[str]:
        """The models `models rank` tries on this kind of data when none are named (default: the default model)."""
        return [self.default_model]

    def check_model(self, spec: ModelSpec) -> None:
        """Refuse a model that cannot load, before a run is queued (default: build it, random weights, 2 classes).

        Raises:
            TransferLabError: it cannot be found or read.

        Args:
            spec: the model part of a run config.
        """
        from dataclasses import replace

        self.build(replace(spec, weights="random"), 2)

    def warm_up(self) -> None:
        """Import what building this kind's models needs, once per process (an estimate leaves this out of the
        run's start-up: a worker pays it once, not per run). Default: nothing."""

    def example_input(self, built: BuiltModel, n: int = 2) -> torch.Tensor:
        """A batch of `n` inputs of the model's shape (for checks that run the model once).

        Args:
            built: the model; n: how many inputs.
        """
        return torch.randn(n, *built.preprocessing.input_size, generator=torch.Generator().manual_seed(0))

    def runtime(self, runtime: Runtime) -> Runtime:
        """The runtime the kind's batches want (default: as selected, without channels_last, which only batches of
        pictures have)."""
        from dataclasses import replace

        return replace(runtime, channels_last=False)

    def check_run(self, config: Any) -> None:
        """Refuse settings this kind cannot train with (default: none).

        Raises:
            TransferLabError: one line naming the setting.

        Args:
            config: the run config.
        """

    # ---- batches ----
    def dataset(self, built: BuiltModel, items: list[tuple[Path, int]], *, root: str, source: str, config: Any,
                training: bool) -> tuple[torch.utils.data.Dataset, Callable | None]:
        """The items as the model takes them, and the collate function of their batches (None: torch's).

        Args:
            built: the model; items: (root / location, class index) pairs; root, source: where the items are
            read from; config: the run config; training: augment as the run says.
        """
        raise NotImplementedError

    def loader(self, prep: Any, split: str, training: bool, generator: torch.Generator | None = None,
               batch_size: int | None = None) -> EpochLoader:
        """A loader of one split of a prepared run (see `tlcore.training.steps.make_loader`); default: `dataset` in one
        process, this rank's share when training under torchrun.

        Args:
            prep: the prepared run; split: "train", "val", "test" (pictures also "target", "labelled");
            training: augment, and take this rank's share; generator: the training loader's random
            generator; batch_size: overrides the config's.
        """
        from tlcore.core.collectives import rank_world
        from tlcore.inputs.loader import EpochLoader

        config = prep.config
        dataset, collate = self.dataset(prep.built, prep.manifest.files(split), root=prep.manifest.root,
                                        source=config.data.source, config=config, training=training)
        rank, world = rank_world() if training and split == "train" else (0, 1)
        return EpochLoader(dataset, batch_size=batch_size or config.batch_size, num_workers=0, pin_memory=False,
                           generator=generator, rank=rank, world=world, collate_fn=collate)

    def eval_batches(self, built: BuiltModel, items: list[tuple[Path, int]], *, root: str, source: str,
                     config: Any, runtime: Runtime) -> DataLoader:
        """Batches of items to score, unaugmented, in order.

        Args:
            built: the model; items: (path, class index) pairs; root, source: where they are read from;
            config: the run config (batch size, columns); runtime: the device and loader workers.
        """
        dataset, collate = self.dataset(built, items, root=root, source=source, config=config, training=False)
        return DataLoader(dataset, batch_size=config.batch_size, collate_fn=collate)

    def choose_inputs(self, prep: Any, say: Callable[[str, str], None]) -> InputPath:
        """How items reach the model (a decoded cache, augmentation on the device); default: the plain path.

        Args:
            prep: the prepared run; say: hears (event kind, message) while the choice is made (a cache being built).
        """
        from tlcore.inputs.input_path import InputPath

        return InputPath()

    def inputs_words(self, prep: Any) -> str:
        """How the items reach the model, for the run's first log line.

        Args:
            prep: the prepared run.
        """
        return f"{self.items_word} read by the loader"

    # ---- the head-only fast path ----
    def feature_keys(self, prep: Any, split: str) -> list[str]:
        """What keys each item's features in the cache, in the order of the split's loader: a hash of exactly
        what the model reads (default: the manifest's content hashes).

        Args:
            prep: the prepared run; split: "train" or "val".
        """
        return prep.manifest.hashes(split)

    def augment_key(self, config: Any) -> dict:
        """The training augmentation as plain data (part of the feature cache's key); empty when the training
        items are not augmented (their features are then shared by every seed and view).

        Args:
            config: the run config.
        """
        return {}

    def fast_path_allowed(self, config: Any) -> bool:
        """Head-only runs of this kind may train on features computed once (default: yes).

        Args:
            config: the run config.
        """
        return True

    # ---- new items ----
    def items_to_predict(self, given: str) -> list[tuple[str, Item]]:
        """What the user asked to classify, as (name shown, item) pairs.

        Raises:
            TransferLabError: nothing to classify, or too much.

        Args:
            given: a path or a value, as the user typed it.
        """
        raise NotImplementedError

    def probabilities(self, built: BuiltModel, items: list[Item], batch_size: int = 32) -> torch.Tensor:
        """Every class's probability for each item (rows sum to 1), on the CPU in float32.

        Args:
            built: the trained model; items: as `items_to_predict` gives them; batch_size: items per pass.
        """
        raise NotImplementedError

    # ---- export ----
    def export_formats(self, formats: tuple[str, ...]) -> tuple[str, ...]:
        """The formats of `formats` this kind's exports hold besides the weights (default: all)."""
        return formats

    def export_steps_words(self) -> str:
        """What the weights step writes besides the weights ("" or " and tokenizer")."""
        return ""

    def export_example(self, run_dir: Path, config: Any, manifest: SplitManifest, built: BuiltModel,
                       n: int = 4) -> torch.Tensor:
        """A few held-out items as the model takes them, to check the exported files against the model.

        Args:
            run_dir: the run's folder; config: the run config; manifest: its split; built: the trained
            model; n: at most this many items.
        """
        items = (manifest.files("test") or manifest.files("val"))[:n]
        dataset, collate = self.dataset(built, items, root=manifest.root, source=config.data.source, config=config,
                                        training=False)
        batch = [dataset[i] for i in range(len(dataset))]
        return (collate or torch.utils.data.default_collate)(batch)[0]

    def write_weights(self, config: Any, classes: list[str], model: torch.nn.Module, out_dir: Path) -> None:
        """The export's weights (default: `model.safetensors` at its root).

        Args:
            config: the run config; classes: the run's classes; model: the trained model; out_dir: the
            export folder being written.
        """
        from safetensors.torch import save_model

        from tlcore.core.run_files import EXPORT_WEIGHTS

        save_model(model, str(out_dir / EXPORT_WEIGHTS))

    def onnx_inputs(self, model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.nn.Module, tuple, list[str], dict]:
        """(module, example arguments, input names, dynamic axes) for `torch.onnx.export`; default: one input
        named `inputs` with a dynamic batch.

        Args:
            model: the trained model; x: a batch of `export_example`.
        """
        return model, (x[:1],), ["inputs"], {"inputs": {0: "batch"}}

    def onnx_feed(self, batch: torch.Tensor) -> dict:
        """A batch as the ONNX model's inputs (the names of `onnx_inputs`)."""
        return {"inputs": batch.numpy()}

    def onnx_other_batches(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Other batches the ONNX model is checked on (texts: shorter ones); default: none."""
        return []

    def export_meta(self, built: BuiltModel) -> dict:
        """What the export's config.json says of the kind.

        Args:
            built: the trained model.
        """
        return {"modality": self.export_key, "max_length": None}

    def check_export_meta(self, meta: Any) -> None:
        """Refuse an export's config.json whose kind-specific fields are damaged (default: none).

        Raises:
            TransferLabError: one line naming the field.

        Args:
            meta: the export's config.json, typed.
        """

    def export_file_allowed(self, parts: tuple[str, ...]) -> bool:
        """A file an export may list, by its path's parts (default: at the export's root only)."""
        return len(parts) == 1

    def export_weights_file(self, meta: Any) -> str:
        """Where an export of this kind keeps its weights, relative to the export folder.

        Args:
            meta: the export's config.json, typed.
        """
        from tlcore.core.run_files import EXPORT_WEIGHTS

        return EXPORT_WEIGHTS

    def export_model(self, folder: Path, meta: Any) -> BuiltModel:
        """The exported model's architecture built from the export's files, random weights (they are loaded and
        checked after).

        Args:
            folder: the export folder; meta: its config.json, typed.
        """
        from dataclasses import replace

        return self.build(replace(meta.model, weights="random"), len(meta.classes), input_size=meta.input_size)

    def card_base_model(self, built: BuiltModel) -> str:
        """The Hub name of the pretrained model the run started from.

        Args:
            built: the trained model.
        """
        return built.arch

    def card_augment_words(self, config: Any) -> str:
        """The run's training augmentation in a few words ("" for none).

        Args:
            config: the run config.
        """
        return ""

    def card_input_line(self, built: BuiltModel) -> str:
        """The model card's line on the model's input.

        Args:
            built: the trained model.
        """
        return f"- Input: {tuple(built.preprocessing.input_size)}"

    def card_files_lines(self, built: BuiltModel, classes: list[str], diffs: dict[str, float],
                         opset: int) -> list[str]:
        """The model card's "Files" section: what each file is and how to load it.

        Args:
            built: the trained model; classes: its classes; diffs: each format's largest logit
            difference; opset: the ONNX opset.
        """
        checked = ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
        return ["", "## Files", "", "- `model.safetensors`: weights; `config.json`: classes and checksums",
                f"- exported formats (opset {opset} for ONNX): max logit difference from PyTorch {checked}"]

    # ---- words ----
    def items(self, n: int) -> str:
        """"1 picture", "12 pictures".

        Args:
            n: how many.
        """
        return f"{n:,} {self.item_word if n == 1 else self.items_word}"

    def refuse_other_data(self, config: Any) -> TransferLabError:
        """The error for a model of this kind given data of another.

        Args:
            config: the run config.
        """
        return TransferLabError(f"{config.model.name} takes {self.items_word}, and {config.data.source} holds "
                                "something else", f"choose a model for that data, or give {self.items_word}")
