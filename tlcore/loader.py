"""Images from a split manifest to batches: decode once at the size needed, augment, normalise."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from tlcore.data.images import ImageReadError, load_rgb

__all__ = ["EpochOrder", "ImageListDataset", "seed_worker"]


class EpochOrder(torch.utils.data.Sampler):
    """The order of one epoch, set from outside: the slow and the cached-feature paths share it exactly."""

    def __init__(self, n: int) -> None:
        self.order = list(range(n))

    def shuffle(self, seed: int) -> list[int]:
        self.order = torch.randperm(len(self.order), generator=torch.Generator().manual_seed(seed)).tolist()
        return self.order

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


class ImageListDataset(Dataset):
    """(path, class index) pairs through an albumentations pipeline.

    JPEGs decode at reduced scale when the model needs far fewer pixels than the file holds
    (`min_side`): a 4000x3000 phone photo costs a 1/8 decode, not a full one.
    """

    def __init__(self, items: list[tuple[Path, int]], pipeline: A.Compose, min_side: int | None = None) -> None:
        self.items = list(items)
        self.pipeline = pipeline
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> np.ndarray:
        path, _ = self.items[index]
        try:
            return np.asarray(load_rgb(path, draft=self.min_side))
        except ImageReadError as exc:  # the file changed since the scan: name it
            raise ImageReadError(exc.reason, f"{path}: {exc.problem}", "scan the data set again") from None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.pipeline(image=self.load(index))["image"], self.items[index][1]


def seed_worker(worker_id: int) -> None:
    """Each loader worker gets its own, reproducible augmentation stream (not copies of one)."""
    info = torch.utils.data.get_worker_info()
    if info is not None and hasattr(info.dataset, "pipeline"):
        info.dataset.pipeline.set_random_seed(torch.initial_seed() % 2**31)
