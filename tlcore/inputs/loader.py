"""Images from a split manifest to batches: decode once at the size needed, augment, normalise."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tlcore.core.collectives import RankBatches
from tlcore.data.images import ImageReadError, load_rgb

__all__ = ["EpochOrder", "EpochLoader", "ImageListDataset", "DecodedDataset", "seed_worker"]


class EpochOrder(torch.utils.data.Sampler):
    """The order of one epoch, set from outside: the slow and the cached-feature paths share it exactly."""

    def __init__(self, n: int) -> None:
        self.order = list(range(n))

    def shuffle(self, seed: int) -> list[int]:
        """A new order for the next epoch, the same for the same seed.

        Args:
            seed: the epoch's seed.

        Returns:
            The order.
        """
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

    def __init__(self, items: list[tuple[Path, int]], pipeline: A.Compose, min_side: int | None = None,
                 decoded: tuple | None = None) -> None:
        self.items = list(items)
        self.pipeline = pipeline
        self.min_side = min_side
        self.decoded = decoded  # (DecodedArray, row per item): pixels from the decoded-image cache, no JPEG decode

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> np.ndarray:
        """One picture as a uint8 RGB array: from the decoded cache, or decoded from its file.

        Args:
            index: which item.

        Raises:
            ImageReadError: the file can no longer be read as a picture (it changed since the scan).
        """
        if self.decoded is not None:
            array, rows = self.decoded
            return array[rows[index]]
        path, _ = self.items[index]
        try:
            return np.asarray(load_rgb(path, draft=self.min_side))
        except ImageReadError as exc:  # the file changed since the scan: name it
            raise ImageReadError(exc.reason, f"{path}: {exc.problem}", "scan the data set again") from None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.pipeline(image=self.load(index))["image"], self.items[index][1]


class DecodedDataset(Dataset):
    """Cached uint8 squares as they are (HxWx3 tensors): the device augments and normalises whole batches."""

    def __init__(self, items: list[tuple[Path, int]], decoded: tuple) -> None:
        self.items = list(items)
        self.array, self.rows = decoded

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.array[self.rows[index]]), self.items[index][1]

    def __getitems__(self, indexes: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A whole batch in one read of the map (rows in file order), instead of one read per picture."""
        rows = np.array([self.rows[i] for i in indexes])
        order = np.argsort(rows, kind="stable")
        block = torch.from_numpy(self.array[rows[order]])[np.argsort(order)]  # read in file order, back in batch order
        return [(picture, self.items[i][1]) for picture, i in zip(block, indexes)]


def seed_worker(worker_id: int) -> None:
    """Each loader worker gets its own, reproducible augmentation stream (not copies of one).

    Args:
        worker_id: the loader worker's index (torch's `worker_init_fn` argument).
    """
    info = torch.utils.data.get_worker_info()
    if info is not None and getattr(info.dataset, "pipeline", None) is not None:
        info.dataset.pipeline.set_random_seed(torch.initial_seed() % 2**31)


class EpochLoader(DataLoader):
    """A DataLoader whose epoch is set by a seed: order, augmentation and loader-worker streams all follow it.

    Resume and the cached-feature fast path rely on this: the same seed gives the same batches,
    so an epoch can be repeated exactly, and the fast path can walk the pictures in manifest order.
    """

    def __init__(self, dataset: ImageListDataset | DecodedDataset, *, batch_size: int, num_workers: int,
                 pin_memory: bool, generator: torch.Generator | None = None, rank: int = 0, world: int = 1,
                 on_device=None, device: torch.device | None = None, collate_fn=None) -> None:
        order = EpochOrder(len(dataset))
        if world > 1:  # one rank of a torchrun run: its share of each global batch (tlcore.core.collectives)
            super().__init__(dataset, batch_sampler=RankBatches(order, batch_size, rank, world),
                             num_workers=num_workers, pin_memory=pin_memory, worker_init_fn=seed_worker,
                             generator=generator, persistent_workers=False, collate_fn=collate_fn)
        else:
            super().__init__(dataset, batch_size=batch_size, sampler=order, drop_last=False,
                             num_workers=num_workers, pin_memory=pin_memory, worker_init_fn=seed_worker,
                             generator=generator, persistent_workers=False, collate_fn=collate_fn)
        self.order = order
        self.on_device, self.device = on_device, device
        self.rank, self.world = rank, world

    def __iter__(self):
        """Batches as the model takes them; with `on_device`, uint8 batches go to the device and are augmented
        (or centre-cropped) and normalised there."""
        batches = super().__iter__()
        if self.on_device is None:
            return batches
        return ((self.on_device(x.to(self.device, non_blocking=True)), y.to(self.device, non_blocking=True))
                for x, y in batches)

    def reseed(self, seed: int) -> None:
        """Augmentation and loader workers from `seed`; the order is left as it is."""
        if getattr(self.dataset, "pipeline", None) is not None:
            self.dataset.pipeline.set_random_seed(seed)
        if self.on_device is not None:  # with torchrun, each rank draws its own augmentation for its share
            self.on_device.reseed(seed if self.world == 1 else seed * 1000 + self.rank)
        if self.generator is not None:
            self.generator.manual_seed(seed)

    def start_epoch(self, seed: int) -> list[int]:
        """Reseed everything for one epoch and shuffle; returns the epoch's order of picture indexes."""
        self.reseed(seed)
        return self.order.shuffle(seed)

    def in_manifest_order(self) -> None:
        """The next epoch goes in manifest order (what the feature caches are keyed by)."""
        self.order.order = list(range(len(self.dataset)))

    def step_weights(self) -> list[float] | None:
        """With torchrun: per step, this rank's share of the global batch; None in one process."""
        return self.batch_sampler.weights() if hasattr(self.batch_sampler, "weights") else None

    def labels(self) -> torch.Tensor:
        """Every item's class index, in manifest order."""
        return torch.tensor([y for _, y in self.dataset.items])
