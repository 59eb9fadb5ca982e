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
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tlcore.data import SplitManifest
from tlcore.core.files import atomic_write
from tlcore.spec.freeze import FreezePlan
from tlcore.inputs.inference import outputs
from tlcore.inputs.loader import EpochLoader
from tlcore.models import BuiltModel
from tlcore.core.paths import data_home
from tlcore.core.runtime import Runtime

__all__ = ["uses_fast_path", "FeatureCache", "FeatureSet", "HeadOnFeatures", "backbone_features", "cached_features",
           "cached_feature_set", "fast_path_fits", "train_view_key"]


def uses_fast_path(plan: FreezePlan, n_groups: int, epochs: int) -> bool:
    """Only the head trains in every epoch, and frozen BatchNorm keeps its statistics.

    Args:
        plan: the freeze plan.
        n_groups: the model's number of layer groups.
        epochs: the run's epochs.

    Returns:
        True when every epoch trains the head alone and `train_bn` is off.
    """
    return not plan.train_bn and all(plan.trainable_from(e, n_groups) == n_groups - 1 for e in range(epochs))


def _file_fingerprint(path: str) -> str:
    """The weights' file by name, size and time; a model folder (a text encoder's) by each of its files, so weights
    rewritten in place in the folder (as `save_pretrained` does) are new weights."""
    if not path:
        return "random"
    where = Path(path)
    files = sorted(p for p in where.iterdir() if p.is_file()) if where.is_dir() else [where]
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


def _buffers_fingerprint(model: nn.Module, with_parameters: bool = False) -> str:
    """BatchNorm statistics are part of what the backbone computes (AdaBN changes them): a digest of them. Random
    weights have no file to name them, so their parameters are digested too (another seed, other features)."""
    digest = hashlib.sha256()
    tensors = list(model.named_buffers()) + (list(model.named_parameters()) if with_parameters else [])
    for name, tensor in tensors:
        if tensor.is_floating_point():
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class FeatureCache:
    """One safetensors file per (model, weights, preprocessing, view): picture hash -> feature vector."""

    def __init__(self, built: BuiltModel, view_key: dict, root: Path | None = None) -> None:
        key = {"arch": built.arch, "weights": _file_fingerprint(built.weights.location), "kind": built.weights.kind,
               "preprocessing": built.preprocessing.to_dict(), "view": view_key,
               "buffers": _buffers_fingerprint(built.model, with_parameters=not built.weights.pretrained)}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        # the name only helps a person: a model given as a folder path ("/models/mybert") is its last part, so the
        # file stays in the cache folder (the digest keys the whole name)
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(built.arch).name)[:60] or "model"
        self.path = (root or data_home() / "feature_cache") / f"{name}-{digest}.safetensors"

    def load(self, on_note: Callable[[str], None] = lambda note: None) -> dict[str, torch.Tensor]:
        """The cached features; a damaged cache file (a kill mid-write, a full disk) is dropped, never trusted.

        Args:
            on_note: told when a damaged file was dropped.

        Returns:
            Picture hash -> feature vector.
        """
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
        """Written whole (a temporary file renamed into place).

        Args:
            features: picture hash -> feature vector.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda tmp: save_file({k: v.contiguous() for k, v in features.items()}, str(tmp)))


def _pooled(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.forward_features(x), pre_logits=True)


def _no_progress(pictures: int) -> None:
    pass


def backbone_features(model: nn.Module, loader: Iterable, runtime: Runtime,
                      on_batch: Callable[[int], None] = _no_progress) -> torch.Tensor:
    """Pooled features before the classifier, in loader order, from the model in eval mode (on the CPU).

    Args:
        model: a timm model (its head is not used).
        loader: batches of (pictures, labels).
        runtime: device and precision.
        on_batch: called with the number of pictures of each batch done (progress).

    Returns: one row of features per picture.
    """
    done = []
    for features, _ in outputs(model, loader, runtime, forward=_pooled):
        done.append(features.cpu())
        on_batch(len(done[-1]))
    return torch.cat(done)


def cached_features(model: nn.Module, built: BuiltModel, loader: Iterable, hashes: list[str], view_key: dict,
                    runtime: Runtime, on_note: Callable[[str], None] = lambda note: None,
                    on_batch: Callable[[int], None] = _no_progress) -> tuple[torch.Tensor, bool]:
    """Features for the loader's pictures (in order): from the cache where present; returns (features, hit).
    `on_batch` hears of every batch extracted (all the pictures at once on a cache hit).

    Args:
        model: the model whose backbone computes the features.
        built: the built model (its name and weights key the cache).
        loader: batches of the pictures, in the order of `hashes`.
        hashes: the pictures' content hashes.
        view_key: what else keys these features (split, augmentation, seed).
        runtime: the device and precision.
        on_note: hears a note when the cache is written or read.
        on_batch: see above.

    Returns:
        (features, one row per picture; True when all came from the cache).
    """
    cache = FeatureCache(built, view_key)
    stored = cache.load(on_note)
    if all(h in stored for h in hashes):
        on_batch(len(hashes))
        return torch.stack([stored[h] for h in hashes]), True
    features = backbone_features(model, loader, runtime, on_batch)
    stored.update({h: f for h, f in zip(hashes, features)})
    cache.save(stored)
    return features, False


def train_view_key(augment: dict, view_seed: int, workers: int) -> dict:
    """What keys one view of the training items in the feature cache, besides the model.

    Args:
        augment: the augmentation spec (plain data); empty: the items are not augmented.
        view_seed: the view's seed; workers: the loader workers (each draws its own augmentation stream).

    Returns:
        The key: without augmentation every view is the same, whatever the seed, so they share one key.
    """
    if not augment:
        return {"split": "train"}
    return {"split": "train", "augment": augment, "seed": view_seed, "workers": workers}


class HeadOnFeatures(nn.Module):
    """The model's own classifier applied to cached pooled features, with the model's head dropout."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.classifier = model.get_classifier()
        self.drop_rate = float(getattr(model, "drop_rate", 0.0) or 0.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(nn.functional.dropout(features, self.drop_rate, self.training))


def fast_path_fits(model: nn.Module, example: torch.Tensor) -> bool:
    """The cached-feature head must compute exactly what the whole model does (checked once, on one input).

    Args:
        model: the model.
        example: a batch of its inputs (the modality's `example_input`).

    Returns:
        True when the head on the pooled features gives the model's logits.
    """
    if not all(hasattr(model, a) for a in ("forward_features", "forward_head", "get_classifier")):
        return False
    model.eval()
    device = next(model.parameters()).device
    x = example.to(device)
    with torch.inference_mode():
        whole = model(x)
        parts = model.get_classifier()(_pooled(model, x))
    return whole.shape == parts.shape and torch.allclose(whole, parts, atol=1e-4, rtol=1e-4)


@dataclass
class FeatureSet:
    """Backbone features of a run's pictures, what the head trains on in the fast path."""

    views: list[torch.Tensor]  # per augmented view: features of every training picture, manifest order
    train_labels: torch.Tensor
    val: torch.Tensor
    val_labels: torch.Tensor
    from_cache: bool  # every part was read from the cache
    target: torch.Tensor | None = None  # an adaptation target's pictures (unaugmented), for its loss term
    views_from_cache: int = 0  # training views read from the cache (the others were computed now)

    def epoch_batches(self, epoch: int, order: list[int], batch_size: int):
        """The epoch's view, in the epoch's order, in batches: what the slow path's loader would give.

        Args:
            epoch: which view (they repeat after the last).
            order: the epoch's order of the training pictures.
            batch_size: pictures per batch.
        """
        view = self.views[epoch % len(self.views)]
        return ((view[idx], self.train_labels[idx]) for idx in torch.tensor(order).split(batch_size))


def cached_feature_set(model: nn.Module, built: BuiltModel, manifest: SplitManifest, train_loader: EpochLoader,
                       val_loader: EpochLoader, runtime: Runtime, *, seed: int, views: int, augment: dict,
                       on_note: Callable[[str], None] = lambda note: None, target=None,
                       on_progress: Callable[[int, int], None] = lambda done, total: None,
                       keys: dict[str, list[str]] | None = None) -> FeatureSet:
    """Features of the val pictures and of `views` augmented views of the training pictures; read from the cache,
    or computed once and cached. `target`, a (TargetSet, loader) pair, adds the adaptation target's features.
    `on_progress(done, total)` counts pictures over all of it (the val pictures, each view, the target).

    The views of seed s are views s..s+views-1 of one seeded pool, so repeats over seeds (a comparison with
    `--seeds 3`) share all but one view with the seed before and read them from the cache; the head's
    initialisation and the batch order still differ with the seed.

    Args:
        model: the model whose backbone computes the features.
        built: the built model.
        manifest: the split.
        train_loader: the training pictures' loader (augmented).
        val_loader: the validation pictures' loader.
        runtime: the device and precision.
        seed: the run's seed.
        views: augmented views per training picture.
        augment: the augmentation spec (plain data), part of the cache key; empty: the training items are not
            augmented, so their features are the same for every seed and view.
        on_note: hears notes about the cache.
        target: see above.
        on_progress: see above.
        keys: each split's cache keys in loader order (the modality's `feature_keys`; None: the manifest's hashes).

    Returns:
        The features and labels, ready for the head's epochs.
    """
    hashes = keys or {split: manifest.hashes(split) for split in ("train", "val")}
    # without augmentation every view has one key, passed once: counted once (a count of 372 for 204 texts misled)
    distinct = len({json.dumps(train_view_key(augment, seed + view, runtime.num_workers), sort_keys=True)
                    for view in range(views)})
    total = len(hashes["val"]) + distinct * len(hashes["train"]) + (len(target[0].sha256) if target is not None else 0)
    done = [0]

    def on_batch(pictures: int) -> None:
        done[0] += pictures
        on_progress(done[0], total)

    on_progress(0, total)  # the wait has begun: "0 of n" before the first batch is through

    val, hit = cached_features(model, built, val_loader, hashes["val"], {"split": "eval"}, runtime, on_note, on_batch)
    computed, hits = [], [hit]
    train_loader.in_manifest_order()  # matches `hashes`
    done_here: dict[str, tuple[torch.Tensor, bool]] = {}  # without augmentation every view has one key: one pass
    for view in range(views):
        view_seed = seed + view
        train_loader.reseed(view_seed)
        key = train_view_key(augment, view_seed, runtime.num_workers)
        same = json.dumps(key, sort_keys=True)
        if same in done_here:
            features, hit = done_here[same]
        else:
            features, hit = cached_features(model, built, train_loader, hashes["train"], key, runtime, on_note, on_batch)
            done_here[same] = (features, hit)
        computed.append(features)
        hits.append(hit)
    target_features = None
    if target is not None:
        target_set, target_loader = target
        target_features, hit = cached_features(model, built, target_loader, target_set.sha256, {"split": "eval"},
                                               runtime, on_note, on_batch)
        hits.append(hit)
    return FeatureSet(computed, train_loader.labels(), val, val_loader.labels(), all(hits), target_features,
                      sum(hits[1:1 + views]))
