"""Texts as batches the training loop takes: token ids and attention masks stacked into one (batch, 2, length)
tensor, padded to the longest text of each batch (dynamic padding), in the epoch order a seed sets."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from tlcore.errors import DatasetError
from tlcore.text.augment import TextAugment, TextAugmenter
from tlcore.text.data import read_texts

__all__ = ["TextDataset", "collate_texts", "texts_of"]


def texts_of(source: str, locations: list[str], text_column: str | None, label_column: str | None) -> list[str]:
    """The texts at these locations, read again from the data source.

    Args:
        source: the data file or folder; locations: "file.csv#17" or "class/name.txt" (a manifest's paths);
        text_column, label_column: as the run's config sets them.

    Returns:
        The texts, in the order of `locations`.

    Raises:
        DatasetError: a location is no longer in the source (the file changed since the split).
    """
    report = read_texts(source, text_column=text_column, label_column=label_column, max_file_mb=float("inf"))
    by_place = {record.path: record.text for record in report.images}
    missing = [place for place in locations if place not in by_place]
    if missing:
        raise DatasetError(f"{len(missing)} text(s) of the split are no longer in {Path(source).name} (first: "
                           f"{missing[0]})", "split the data again: the file changed since")
    return [by_place[place] for place in locations]


class TextDataset(Dataset):
    """(text, class index) pairs, tokenized once when built; with augmentation, each epoch's changed texts are
    tokenized as they are drawn.

    Args:
        items: (location, class index) pairs, as a manifest's `files` gives them.
        texts: the text of each item.
        tokenizer: the model's tokenizer; max_length: tokens per text (longer texts are cut).
        augment: the training texts' augmentation (None: the texts as they are).
    """

    def __init__(self, items: list[tuple[Path, int]], texts: list[str], tokenizer, max_length: int,
                 augment: TextAugment | None = None) -> None:
        self.items, self.texts, self.tokenizer, self.max_length = items, texts, tokenizer, max_length
        encoded = tokenizer(texts, truncation=True, max_length=max_length) if texts else {"input_ids": []}
        self.ids = [torch.tensor(ids, dtype=torch.long) for ids in encoded["input_ids"]]
        # the loader reseeds a pipeline each epoch (as it does a picture pipeline)
        self.pipeline = (TextAugmenter(augment, getattr(tokenizer, "unk_token", None) or "[UNK]")
                         if augment is not None and augment.active else None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.pipeline is None:
            return self.ids[index], self.items[index][1]
        text = self.pipeline(self.texts[index], index)
        ids = self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"]
        return torch.tensor(ids, dtype=torch.long), self.items[index][1]


def collate_texts(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch to its longest text; ids and mask stacked as (batch, 2, length).

    Args:
        batch: (token ids, class index) pairs.

    Returns:
        (x, y).
    """
    length = max(len(ids) for ids, _ in batch)
    x = torch.zeros(len(batch), 2, length, dtype=torch.long)
    for row, (ids, _) in enumerate(batch):
        x[row, 0, :len(ids)] = ids
        x[row, 1, :len(ids)] = 1
    return x, torch.tensor([label for _, label in batch], dtype=torch.long)
