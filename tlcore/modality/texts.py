"""Texts: a CSV, TSV or JSONL file (or class folders of .txt files), BERT-family encoders from Hugging Face, word
augmentation, and exports that load in plain transformers."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from tlcore.errors import TransferLabError
from tlcore.inputs.inference import outputs
from tlcore.modality.base import Item, Modality
from tlcore.models import BuiltModel, ModelSpec
from tlcore.core.run_files import EXPORT_ENCODER, EXPORT_WEIGHTS
from tlcore.core.runtime import select_runtime
from tlcore.text.catalog import DEFAULT_TEXT_MODEL, is_text_model
from tlcore.text.data import is_text_source, read_texts
from tlcore.text.given import texts_to_predict
from tlcore.text.loader import TextDataset, collate_texts, texts_of

__all__ = ["Texts", "text_probabilities", "MAX_TOKENS"]

MAX_TOKENS = 65_536  # the longest max_length an export may state


def text_probabilities(model: torch.nn.Module, tokenizer, max_length: int, texts: list[str],
                       batch_size: int = 32) -> torch.Tensor:
    """Every class's probability for each text, on the CPU.

    Args:
        model: a text classifier; tokenizer, max_length: its own; texts: the texts; batch_size: texts per pass.

    Returns:
        A (texts, classes) tensor, rows summing to 1.
    """
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    batches = [collate_texts([(torch.tensor(ids), 0) for ids in encoded[i:i + batch_size]])
               for i in range(0, len(encoded), batch_size)]
    runtime = select_runtime("cpu", "fp32", 0)
    return torch.cat([logits.float().softmax(1) for logits, _ in outputs(model.eval(), batches, runtime)])


class _TokenInputs(torch.nn.Module):
    """The text model with transformers' two inputs, `input_ids` and `attention_mask`, for its ONNX export."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)  # a new module trains by default, and the exporter would run it so: dropout on

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits for (batch, length) token ids and attention mask."""
        return self.model(torch.stack([input_ids, attention_mask], 1))


class Texts(Modality):
    """Labelled texts and BERT-family encoders (mean pooling, then the same head as the image models)."""

    key = "texts"
    export_key = "text"
    items_word = "texts"
    item_word = "text"
    default_model = DEFAULT_TEXT_MODEL
    task = ("text-classification", "Text Classification")
    library = "transformers"
    pretrained_words = "sentence encoder"
    data_words = "a CSV, TSV or JSONL file of texts"
    speed_unit = "texts/s"
    first_group_words = "embeddings"
    early_features_words = "word meanings and their context"
    normalisation_words = ""  # LayerNorm has no running statistics to keep or update

    def owns_data(self, source: str) -> bool:
        """A CSV, TSV or JSONL file, or a folder whose files are mostly .txt."""
        return is_text_source(source)

    def owns_model(self, name: str) -> bool:
        """A packaged text model or a Hugging Face model folder."""
        return is_text_model(name)

    def read(self, source: str, data: Any = None, **options: Any):
        """The texts' report (`tlcore.text.data.read_texts`), with the run's columns."""
        limit = options.get("max_file_mb")
        return read_texts(source, text_column=getattr(data, "text_column", None),
                          label_column=getattr(data, "label_column", None), **({"max_file_mb": limit} if limit else {}))

    def left_out_words(self, data: Any) -> str:
        """The rows of the file the split leaves out, counted by reason."""
        return read_texts(data.source, text_column=data.text_column, label_column=data.label_column).left_out_words()

    def build(self, spec: ModelSpec, num_classes: int, *, input_size: tuple[int, int, int] | None = None,
              seed: int = 0) -> BuiltModel:
        """The encoder with mean pooling and a new head (`input_size` does not apply)."""
        from tlcore.text.model import build_text_model

        return build_text_model(spec, num_classes or 2, seed=seed)  # None: a head of 2 (to show the model)

    def candidate_models(self) -> list[str]:
        """The packaged encoder and its randomly initialised twin (what pretraining brings; one text encoder ships
        offline)."""
        return [DEFAULT_TEXT_MODEL, DEFAULT_TEXT_MODEL + "@random"]

    def warm_up(self) -> None:
        """transformers' model and tokenizer classes."""
        import transformers

        transformers.AutoModel, transformers.AutoTokenizer  # their modules load on first use

    def check_model(self, spec: ModelSpec) -> None:
        """The model's folder is here."""
        from tlcore.text.model import check_text_model

        check_text_model(spec.name)

    def example_input(self, built: BuiltModel, n: int = 2) -> torch.Tensor:
        """`n` texts of 8 random tokens each, all of them real (mask 1)."""
        vocabulary = int(getattr(built.tokenizer, "vocab_size", 1000) or 1000)
        ids = torch.randint(0, vocabulary, (n, 8), generator=torch.Generator().manual_seed(0))
        return torch.stack([ids, torch.ones_like(ids)], 1)

    def check_run(self, config: Any) -> None:
        """Domain adaptation, and the few labelled target items, are for pictures so far.

        Raises:
            TransferLabError: the run asks for an adaptation method or labelled target items.
        """
        asked = [f"adapt.method {config.adapt.method}" if config.adapt.method != "none" else "",
                 "adapt.labelled" if config.adapt.labelled.strip() else ""]
        if any(asked):
            raise TransferLabError(f"domain adaptation ({', '.join(a for a in asked if a)}) is for pictures so far",
                                   "set adapt.method to none and adapt.labelled to empty for text data")

    def dataset(self, built: BuiltModel, items: list[tuple[Path, int]], *, root: str, source: str, config: Any,
                training: bool):
        """The texts, tokenized once; augmented by the run's text augmentation when training."""
        locations = [Path(path).relative_to(root).as_posix() for path, _ in items]
        texts = texts_of(source, locations, config.data.text_column, config.data.label_column) if items else []
        augment = config.text_augment if training else None
        return TextDataset(items, texts, built.tokenizer, built.max_length, augment), collate_texts

    def feature_keys(self, prep: Any, split: str) -> list[str]:
        """A hash of each text exactly as written: the manifest's hashes are of the normalised text (case and
        spacing folded, to find duplicates), and a cased or Unicode-aware tokenizer reads "Apple" and "apple"
        apart."""
        import hashlib

        manifest, data = prep.manifest, prep.config.data
        locations = [Path(path).relative_to(manifest.root).as_posix() for path, _ in manifest.files(split)]
        texts = texts_of(data.source, locations, data.text_column, data.label_column) if locations else []
        return [hashlib.sha256(("text\x00" + text).encode("utf-8", "surrogatepass")).hexdigest() for text in texts]

    def inputs_words(self, prep: Any) -> str:
        """Tokenized once, padded per batch."""
        return f"texts tokenized once, at most {prep.built.max_length} tokens each, padded per batch"

    def augment_key(self, config: Any) -> dict:
        """The text augmentation's shares; empty without augmentation (the texts are the same for every seed)."""
        return config.text_augment.to_dict() if config.text_augment.active else {}

    def fast_path_allowed(self, config: Any) -> bool:
        """Not with text augmentation: augmented texts change every epoch, so each epoch embeds its own."""
        return not config.text_augment.active

    def items_to_predict(self, given: str) -> list[tuple[str, Item]]:
        """One text, the lines of a .txt file, or a table's text column; each named by its text."""
        return [(text, text) for text in texts_to_predict(given)]

    def probabilities(self, built: BuiltModel, items: list[Item], batch_size: int = 32) -> torch.Tensor:
        """The texts tokenized as in training."""
        return text_probabilities(built.model, built.tokenizer, built.max_length, list(items), batch_size)

    def export_formats(self, formats: tuple[str, ...]) -> tuple[str, ...]:
        """No TorchScript: a traced transformer is tied to the traced length (ONNX takes any)."""
        return tuple(f for f in formats if f != "torchscript")

    def export_steps_words(self) -> str:
        """The tokenizer goes with the weights."""
        return " and tokenizer"

    def write_weights(self, config: Any, classes: list[str], model: torch.nn.Module, out_dir: Path) -> None:
        """A transformers model folder, `encoder/`: the encoder's config (with the classes as id2label/label2id,
        the head, and `AutoModelForSequenceClassification` mapped to `modeling_transferlab.py`), its tokenizer
        files, that modeling file and the weights: it loads in plain transformers, and tokenizes on a machine
        without the model's package. One copy of the weights, which tlcore reads too."""
        from safetensors.torch import save_model

        from tlcore.text import modeling_transferlab
        from tlcore.text.catalog import model_folder

        source, encoder = model_folder(config.model.name), out_dir / EXPORT_ENCODER
        encoder.mkdir()
        for path in sorted(source.iterdir()):
            if path.is_file() and (path.name == "config.json" or path.name.startswith(
                    ("tokenizer", "vocab", "special_", "merges", "sentencepiece"))):
                shutil.copy(path, encoder / path.name)
        own = json.loads((encoder / "config.json").read_text())  # the encoder's, kept whole inside the classifier's
        classifier = modeling_transferlab.TransferLabTextClassifier.__name__
        hf_config = {"model_type": modeling_transferlab.MODEL_TYPE, "architectures": [classifier],
                     "auto_map": {"AutoConfig": f"modeling_transferlab.{modeling_transferlab.TransferLabTextConfig.__name__}",
                                  "AutoModelForSequenceClassification": f"modeling_transferlab.{classifier}"},
                     "encoder": own, "id2label": {str(i): name for i, name in enumerate(classes)},
                     "label2id": {name: i for i, name in enumerate(classes)},
                     "transferlab_head": {"hidden": config.model.head.hidden, "dropout": config.model.head.dropout}}
        (encoder / "config.json").write_text(json.dumps(hf_config, indent=1))
        shutil.copy(modeling_transferlab.__file__, encoder / "modeling_transferlab.py")
        save_model(model, str(encoder / EXPORT_WEIGHTS))

    def onnx_inputs(self, model: torch.nn.Module, x: torch.Tensor):
        """transformers' convention: `input_ids` and `attention_mask`, dynamic batch and length."""
        names, axes = ["input_ids", "attention_mask"], {0: "batch", 1: "length"}
        return _TokenInputs(model), (x[:1, 0], x[:1, 1]), names, {n: axes for n in names}

    def onnx_feed(self, batch: torch.Tensor) -> dict:
        """Token ids and mask as two int64 arrays."""
        return {"input_ids": batch[:, 0].numpy(), "attention_mask": batch[:, 1].numpy()}

    def onnx_other_batches(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Traced at one length: checked at another too (the texts cut to half as many tokens)."""
        return [x[:, :, : max(2, x.shape[2] // 2)].contiguous()]

    def export_meta(self, built: BuiltModel) -> dict:
        """The maximum length in tokens."""
        return {"modality": self.export_key, "max_length": built.max_length}

    def check_export_meta(self, meta: Any) -> None:
        """`max_length` is a number of tokens.

        Raises:
            TransferLabError: it is not.
        """
        if meta.max_length is None or not 1 <= meta.max_length <= MAX_TOKENS:
            raise TransferLabError(f"the export's max_length {meta.max_length!r} is not a number of tokens",
                                   f"it is 1 to {MAX_TOKENS:,} in an export; export the run again")

    def export_file_allowed(self, parts: tuple[str, ...]) -> bool:
        """At the root, or in the transformers folder."""
        return len(parts) == 1 or (len(parts) == 2 and parts[0] == EXPORT_ENCODER)

    def export_weights_file(self, meta: Any) -> str:
        """In the transformers folder (exports from before it kept them at the root)."""
        inside = f"{EXPORT_ENCODER}/{EXPORT_WEIGHTS}"
        return inside if inside in meta.files else EXPORT_WEIGHTS

    def export_model(self, folder: Path, meta: Any) -> BuiltModel:
        """The encoder from the export's own config and tokenizer."""
        from tlcore.text.model import build_text_model

        spec = replace(meta.model, name=str(folder / EXPORT_ENCODER), weights="random")
        return build_text_model(spec, len(meta.classes), max_length=meta.max_length)

    def card_base_model(self, built: BuiltModel) -> str:
        """The sentence-transformers model on the Hub."""
        return f"sentence-transformers/{built.arch}"

    def card_augment_words(self, config: Any) -> str:
        """The text augmentation's shares ("" for none)."""
        words = config.text_augment.words()
        return f"text augmentation {words}" if words else ""

    def card_input_line(self, built: BuiltModel) -> str:
        """A text, cut at the maximum length, tokenized by the exported tokenizer."""
        return (f"- Input: a text, up to {built.max_length} tokens (longer texts are cut), tokenized by the encoder's "
                f"own tokenizer in `{EXPORT_ENCODER}/`")

    def card_files_lines(self, built: BuiltModel, classes: list[str], diffs: dict[str, float],
                         opset: int) -> list[str]:
        """The transformers folder, the ONNX model's inputs, and the transformers snippet that loads them."""
        return ["", "## Files", "",
                f"- `{EXPORT_ENCODER}/`: a transformers model folder: `model.safetensors` (encoder and head), "
                "`config.json` (the encoder's, with `id2label`/`label2id`), the tokenizer files, and "
                "`modeling_transferlab.py` (mean pooling over the attention mask, then the head)",
                "- `config.json`: classes, maximum length, checksums (for `python -m tlcore predict`)",
                f"- `model.onnx` (opset {opset}): inputs `input_ids` and `attention_mask`, int64 (batch, "
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
