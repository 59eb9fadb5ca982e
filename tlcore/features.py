"""The fast path for feature extraction: a frozen backbone's features computed once per picture, then reused.

When only the new head trains (and BatchNorm statistics stay frozen), every epoch
would push the same pictures through the same frozen network. Instead, features of
the validation pictures and of a fixed number of augmented views of the training
pictures are computed once, cached on disk (keyed by model, weights, preprocessing,
augmentation view and picture content), and the head trains on them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

from tlcore.files import atomic_write
from tlcore.freeze import FreezePlan
from tlcore.models import BuiltModel
from tlcore.paths import data_home

__all__ = ["uses_fast_path", "FeatureCache", "backbone_features", "cached_features"]


def uses_fast_path(plan: FreezePlan, n_groups: int, epochs: int) -> bool:
    """Only the head trains in every epoch, and frozen BatchNorm keeps its statistics."""
    return not plan.train_bn and all(plan.trainable_from(e, n_groups) == n_groups - 1 for e in range(epochs))


def _file_fingerprint(path: str) -> str:
    if not path:
        return "random"
    stat = Path(path).stat()
    return f"{Path(path).name}:{stat.st_size}:{int(stat.st_mtime)}"


class FeatureCache:
    """One safetensors file per (model, weights, preprocessing, view): picture hash -> feature vector."""

    def __init__(self, built: BuiltModel, view_key: dict, root: Path | None = None) -> None:
        key = {"arch": built.arch, "weights": _file_fingerprint(built.weights.location), "kind": built.weights.kind,
               "preprocessing": built.preprocessing.to_dict(), "view": view_key}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        self.path = (root or data_home() / "feature_cache") / f"{built.arch}-{digest}.safetensors"

    def load(self, on_note: Callable[[str], None] = lambda note: None) -> dict[str, torch.Tensor]:
        """The cached features; a damaged cache file (a kill mid-write, a full disk) is dropped, never trusted."""
        if not self.path.exists():
            return {}
        try:
            stored = load_file(str(self.path))
            sizes = {tuple(v.shape) for v in stored.values()}
            if len(sizes) > 1 or any(len(s) != 1 for s in sizes):
                raise ValueError("feature vectors of different shapes")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            self.path.unlink(missing_ok=True)
            on_note(f"the feature cache {self.path.name} was damaged ({' '.join(str(exc).split())[:120]}); it was "
                    "dropped and the features are computed again")
            return {}
        return stored

    def save(self, features: dict[str, torch.Tensor]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda tmp: save_file({k: v.contiguous() for k, v in features.items()}, str(tmp)))


def backbone_features(model: nn.Module, loader: DataLoader, device: torch.device, autocast_dtype,
                      channels_last: bool = False) -> torch.Tensor:
    """Pooled features before the classifier, in loader order, from the model in eval mode."""
    model.eval()
    outputs = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                                                enabled=autocast_dtype is not None):
        for x, _ in loader:
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            outputs.append(model.forward_head(model.forward_features(x), pre_logits=True).float().cpu())
    return torch.cat(outputs)


def cached_features(model: nn.Module, built: BuiltModel, loader: DataLoader, hashes: list[str], view_key: dict,
                    device: torch.device, autocast_dtype, channels_last: bool = False,
                    on_note: Callable[[str], None] = lambda note: None) -> tuple[torch.Tensor, bool]:
    """Features for the loader's pictures (in order): from the cache where present; returns (features, hit)."""
    cache = FeatureCache(built, view_key)
    stored = cache.load(on_note)
    if all(h in stored for h in hashes):
        return torch.stack([stored[h] for h in hashes]), True
    features = backbone_features(model, loader, device, autocast_dtype, channels_last)
    stored.update({h: f for h, f in zip(hashes, features)})
    cache.save(stored)
    return features, False
