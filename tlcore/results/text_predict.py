"""A trained text run on new texts: one text, the lines of a .txt file, or a column of a CSV/TSV/JSONL file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from tlcore.results.artifacts import BEST, load_export, load_trained
from tlcore.errors import TransferLabError
from tlcore.modality.texts import text_probabilities
from tlcore.text.given import texts_to_predict

__all__ = ["TextExplanation", "TextPredictor", "texts_to_predict", "MAX_EXPLAINED_WORDS"]

MAX_EXPLAINED_WORDS = 200


@dataclass(frozen=True)
class TextExplanation:
    """Why a text got a class: each word's weight, the probability points the class loses without that word.

    Attributes:
        label: the class explained; probability: its probability for the whole text;
        words: (word, weight) in the text's order.
    """

    label: str
    probability: float
    words: list[tuple[str, float]]

    def strongest(self, n: int = 5) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """The words that most support the class and those that most speak against it.

        Args:
            n: at most this many of each.

        Returns:
            (supporting words, strongest first; opposing words, strongest first).
        """
        ranked = sorted(self.words, key=lambda wordweight: -wordweight[1])
        return [w for w in ranked if w[1] > 0][:n], [w for w in reversed(ranked) if w[1] < 0][:n]


@dataclass
class TextPredictor:
    """A text run's model, tokenizer and classes, ready to classify.

    Attributes:
        model, tokenizer, max_length: from the run; classes: its labels in order.
    """

    model: torch.nn.Module
    tokenizer: object
    max_length: int
    classes: list[str]

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = BEST) -> "TextPredictor":
        """Load a text run's best weights.

        Args:
            run_dir: the run's folder; checkpoint: which weights.

        Returns:
            The predictor.

        Raises:
            TransferLabError: the run cannot be loaded, or it is not a text run.
        """
        trained = load_trained(run_dir, checkpoint)
        if trained.built.tokenizer is None:  # a model without a tokenizer takes no text
            raise TransferLabError(f"{run_dir} is a picture run", "give it pictures, not texts")
        return cls(trained.built.model.eval(), trained.built.tokenizer, trained.built.max_length,
                   list(trained.manifest.classes))

    @classmethod
    def from_export(cls, folder: str | Path) -> "TextPredictor":
        """A text run's export folder, verified file by file before its model is used.

        Args:
            folder: the export folder (`python -m tlcore export RUN OUT`).

        Returns:
            The predictor.

        Raises:
            TransferLabError: the folder is not a complete, unchanged export, or it holds a picture model.
        """
        exported = load_export(folder)
        if exported.tokenizer is None:
            raise TransferLabError(f"{folder} is the export of a picture run", "give it pictures, not texts")
        return cls(exported.model, exported.tokenizer, exported.max_length, exported.classes)

    def probabilities(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Every class's probability for each text.

        Args:
            texts: the texts; batch_size: texts per pass.

        Returns:
            A (texts, classes) tensor, rows summing to 1.
        """
        return text_probabilities(self.model, self.tokenizer, self.max_length, texts, batch_size)

    def predict(self, texts: list[str], topk: int = 1, batch_size: int = 32) -> list[list[tuple[str, float]]]:
        """The top classes of each text, most likely first.

        Args:
            texts: the texts; topk: classes per text (at most the number of classes); batch_size: per pass.

        Returns:
            For each text, (class, probability) pairs.
        """
        values, indexes = self.probabilities(texts, batch_size).topk(min(topk, len(self.classes)), dim=1)
        return [[(self.classes[i], float(v)) for v, i in zip(row_v, row_i)]
                for row_v, row_i in zip(values.tolist(), indexes.tolist())]

    def explain(self, text: str, target: str | None = None) -> TextExplanation:
        """Which words made the model choose a class, by occlusion: each word's weight is how much the class's
        probability drops when that word alone is taken out of the text (negative: the class gains without it).

        Occlusion rather than integrated gradients: it asks the model itself "and without this word?", needs no
        gradients or baseline text, works the same for any encoder, and its numbers read as probability points.
        It costs one pass per word, so only the first MAX_EXPLAINED_WORDS words are tried (those past the
        model's maximum length are cut anyway).

        Args:
            text: the text.
            target: the class to explain (None: the predicted one).

        Returns:
            The class, its probability and each word with its weight, in the text's order.

        Raises:
            TransferLabError: an empty text, or a class the run does not have.
        """
        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)][:MAX_EXPLAINED_WORDS]
        if not spans:
            raise TransferLabError("there is no word to explain in an empty text", "type a text")
        if target is not None and target not in self.classes:
            raise TransferLabError(f"no class {target!r} in this run", f"use one of {', '.join(self.classes)}")
        variants = [text] + [(text[:a] + text[b:]).strip() or "." for a, b in spans]
        probabilities = self.probabilities(variants)
        index = self.classes.index(target) if target is not None else int(probabilities[0].argmax())
        drops = (probabilities[0, index] - probabilities[1:, index]).tolist()
        return TextExplanation(self.classes[index], float(probabilities[0, index]),
                               [(text[a:b], drop) for (a, b), drop in zip(spans, drops)])
