"""Augmentation for texts: words dropped to the unknown token, swapped, or deleted (plain data, no torch).

The three are the token-level noise that helps small text sets without a word list or a second model: word
dropout (Dai and Le 2015's token dropout: the model must not lean on one word), and EDA's random swap and random
deletion (Wei and Zou 2019). Synonym replacement is left out: it needs a word list, and none ships offline here.
Every draw follows (epoch seed, text index), so an epoch augments the same way however it is resumed.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from tlcore.errors import TransferLabError
from tlcore.core.schema import setting

__all__ = ["TextAugment", "TextAugmenter", "TEXT_AUGMENT_PRESETS", "augment_text"]

MAX_SHARE = 0.5  # beyond half the words changed, the text no longer says what its label says


@dataclass(frozen=True)
class TextAugment:
    """How much each epoch changes the training texts (0 everywhere: the texts as they are).

    Attributes:
        word_dropout: each word becomes the tokenizer's unknown token with this probability.
        swap: this share of a text's words is swapped with another word of the text.
        deletion: each word is deleted with this probability (one word always stays).
    """

    word_dropout: float = setting(0.0, label="Word dropout", low=0.0, high=MAX_SHARE, modalities=("texts",),
                                  group="augment", help="Each word becomes the unknown token with this probability.")
    swap: float = setting(0.0, label="Word swap", low=0.0, high=MAX_SHARE, modalities=("texts",), group="augment",
                          help="This share of a text's words is swapped with another word of the text.")
    deletion: float = setting(0.0, label="Word deletion", low=0.0, high=MAX_SHARE, modalities=("texts",),
                              group="augment", help="Each word is deleted with this probability (one always stays).")

    def check(self) -> None:
        """Every share from 0 to MAX_SHARE.

        Raises:
            TransferLabError: one naming the field.
        """
        for name, value in asdict(self).items():
            if not 0 <= value <= MAX_SHARE:
                raise TransferLabError(f"invalid text_augment.{name}: {value!r}", f"use 0 (off) to {MAX_SHARE}, e.g. 0.1")

    @property
    def active(self) -> bool:
        """Any of the three changes texts."""
        return any(asdict(self).values())

    def to_dict(self) -> dict:
        """As the run config stores it."""
        return asdict(self)

    def words(self) -> str:
        """The shares in use, for people: "word dropout 0.05, swap 0.1" ("" when none is).

        Returns:
            The words.
        """
        names = {"word_dropout": "word dropout", "swap": "swap", "deletion": "deletion"}
        return ", ".join(f"{names[name]} {share:g}" for name, share in asdict(self).items() if share)


TEXT_AUGMENT_PRESETS = {
    "none": TextAugment(),
    "light": TextAugment(word_dropout=0.05, swap=0.05, deletion=0.05),
    "medium": TextAugment(word_dropout=0.1, swap=0.1, deletion=0.1),
}


def augment_text(text: str, spec: TextAugment, rng: random.Random, unknown: str = "[UNK]") -> str:
    """One augmented version of a text: deletion, then swaps, then word dropout, on its whitespace-split words.

    Args:
        text: the text.
        spec: how much to change.
        rng: the random draws (seeded by the caller).
        unknown: the tokenizer's unknown token, which a dropped word becomes.

    Returns:
        The changed text (the text itself when nothing is drawn, or when it has no words).
    """
    words = text.split()
    if not words or not spec.active:
        return text
    if spec.deletion:
        kept = [w for w in words if rng.random() >= spec.deletion]
        words = kept or [rng.choice(words)]
    for _ in range(round(spec.swap * len(words))):
        i, j = rng.randrange(len(words)), rng.randrange(len(words))
        words[i], words[j] = words[j], words[i]
    if spec.word_dropout:
        words = [unknown if rng.random() < spec.word_dropout else w for w in words]
    return " ".join(words)


class TextAugmenter:
    """A text dataset's augmentation, reseeded each epoch as the picture pipelines are (`set_random_seed`).

    Args:
        spec: how much to change.
        unknown: the tokenizer's unknown token.
    """

    def __init__(self, spec: TextAugment, unknown: str = "[UNK]") -> None:
        self.spec, self.unknown, self.seed = spec, unknown, 0

    def set_random_seed(self, seed: int) -> None:
        """The next epoch's draws.

        Args:
            seed: the epoch's seed.
        """
        self.seed = int(seed)

    def __call__(self, text: str, index: int) -> str:
        """The text at `index`, augmented the same way for the same epoch seed, in any order.

        Args:
            text: the text; index: its place in the data set.
        """
        return augment_text(text, self.spec, random.Random(self.seed * 1_000_003 + index), self.unknown)
