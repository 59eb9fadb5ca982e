"""The models a user can choose from, with the facts they choose by.

Facts come from timm's own `pretrained_cfg` (plain data: input size, mean, std,
interpolation, crop); parameter counts come from building the model on the meta
device (no memory, no weights) and are cached on disk, so listing stays fast.
"""

from __future__ import annotations

import difflib
import json
import threading
from dataclasses import asdict, dataclass
from collections.abc import Callable
from functools import lru_cache

from tlcore.errors import TransferLabError
from tlcore.core.paths import data_home

__all__ = [
    "DEFAULT_MODEL",
    "RECOMMENDED",
    "ModelCard",
    "ModelNotFoundError",
    "model_card",
    "resolve_name",
    "search",
    "family_of",
    "count_parameters",
]

# The packaged ImageNet weights were ported from TensorFlow: they belong to timm's TF-compatible variant
# (SAME padding, BatchNorm eps 1e-3). Same tensor shapes as efficientnet_lite0, but on the hymenoptera
# photos ImageNet top-1 is 0.850 in this variant against 0.797 in the PyTorch-padded one.
DEFAULT_MODEL = "tf_efficientnet_lite0"
# The seeds of transfer-learning practice first, then modern small models; the three with offline weights last
# (the default, then its larger siblings: on the hymenoptera photos ImageNet top-1 0.850, 0.889, 0.882).
RECOMMENDED = (
    "vgg16",
    "resnet50",
    "inception_v3",
    "resnet18",
    "efficientnet_b0",
    "convnext_tiny",
    "vit_small_patch16_224",
    DEFAULT_MODEL,
    "tf_efficientnet_lite1",
    "tf_efficientnet_lite2",
)
_CACHE_VERSION = 1
_cache_lock = threading.Lock()


class ModelNotFoundError(TransferLabError):
    """A model name timm does not know."""


@dataclass(frozen=True)
class ModelCard:
    """What the Model page shows of an architecture: size, input size, normalisation, family, offline weights."""
    name: str  # timm architecture, e.g. "resnet50"
    pretrained_tag: str  # timm's default pretrained tag, e.g. "a1_in1k"
    family: str  # timm module, e.g. "resnet", "vision_transformer"
    params: int
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    crop_pct: float
    hf_hub_id: str
    offline_weights: str | None  # where weights are found without a network, or None

    @property
    def params_millions(self) -> float:
        """Parameters in millions."""
        return self.params / 1e6

    def to_dict(self) -> dict:
        """The card as plain data."""
        return asdict(self)


@lru_cache(maxsize=1)
def _families() -> dict[str, str]:
    import timm
    return {arch: module for module in timm.list_modules() for arch in timm.list_models(module=module)}


def family_of(name: str) -> str:
    """The timm module an architecture comes from (e.g. "resnet").

    Args:
        name: an architecture name.

    Returns:
        The family, or "other".
    """
    return _families().get(name, "other")


@lru_cache(maxsize=1)
def _pretrained_archs() -> tuple[str, ...]:
    import timm
    return tuple(sorted({timm.models.get_arch_name(n) for n in timm.list_pretrained()}))


def resolve_name(name: str) -> tuple[str, str]:
    """`resnet50` or `resnet50.a1_in1k` -> (architecture, tag); unknown names get close suggestions."""
    import timm
    arch, tag = timm.models.split_model_name_tag(name.strip())
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch.lower(), _pretrained_archs(), n=5, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see `python -m tlcore models list --search TEXT`"
        raise ModelNotFoundError(f"unknown model '{name}'", hint)
    if not tag:
        cfg = timm.models.get_pretrained_cfg(arch)
        tag = cfg.tag if cfg is not None and cfg.tag else ""
    return arch, tag


def _cache_path():
    import timm
    return data_home() / "cache" / f"param_counts_v{_CACHE_VERSION}_timm{timm.__version__}.json"


def _load_counts() -> dict[str, int]:
    try:
        return json.loads(_cache_path().read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def count_parameters(arch: str) -> int:
    """Parameter count of the ImageNet model, built on the meta device and cached.

    Args:
        arch: a timm architecture name.

    Returns:
        Its parameter count with the ImageNet head.
    """
    import timm
    import torch
    counts = _load_counts()
    if arch in counts:
        return counts[arch]
    with torch.device("meta"):
        model = timm.create_model(arch, pretrained=False)
    n = sum(p.numel() for p in model.parameters())
    with _cache_lock:
        counts = _load_counts()
        counts[arch] = n
        path = _cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(counts, sort_keys=True))
        tmp.replace(path)
    return n


def model_card(name: str) -> ModelCard:
    """The facts of one model, from timm's pretrained config and the offline weights.

    Args:
        name: an architecture, optionally with a pretrained tag ("resnet50.a1_in1k").

    Returns:
        Its `ModelCard`.

    Raises:
        ModelNotFoundError: timm does not know the name.
    """
    import timm
    from tlcore.models.weights import offline_weights_location, preprocessing_overrides

    arch, tag = resolve_name(name)
    cfg = timm.models.get_pretrained_cfg(f"{arch}.{tag}" if tag else arch)
    cfg_dict = cfg.to_dict() if cfg is not None else {}
    overrides = preprocessing_overrides(arch)
    return ModelCard(
        name=arch,
        pretrained_tag=tag,
        family=family_of(arch),
        params=count_parameters(arch),
        input_size=tuple(cfg_dict.get("input_size", (3, 224, 224))),
        mean=tuple(overrides.get("mean", cfg_dict.get("mean", (0.485, 0.456, 0.406)))),
        std=tuple(overrides.get("std", cfg_dict.get("std", (0.229, 0.224, 0.225)))),
        interpolation=overrides.get("interpolation", cfg_dict.get("interpolation", "bilinear")),
        crop_pct=float(overrides.get("crop_pct", cfg_dict.get("crop_pct", 0.875))),
        hf_hub_id=cfg_dict.get("hf_hub_id") or "",
        offline_weights=offline_weights_location(arch, tag),
    )


def search(text: str = "", *, limit: int = 50,
           on_card: Callable[[int, int], None] = lambda done, total: None) -> list[ModelCard]:
    """Recommended models first (when they match), then the rest of timm's pretrained models by name.

    Matches on the architecture name and its family, so "vit" finds every vision transformer. A model's first
    card builds it on the meta device to count its parameters (a fraction of a second each, then cached).

    Args:
        text: what to look for; empty: the recommended models.
        limit: at most this many cards.
        on_card: called as (cards done, cards in all) before each card: a page shows its progress.

    Returns:
        The matching models' cards.
    """
    needle = text.strip().lower()

    def matches(arch: str) -> bool:
        return not needle or needle in arch.lower() or needle in family_of(arch).lower()

    ordered = [a for a in RECOMMENDED if matches(a)]
    if needle:
        rest = [a for a in _pretrained_archs() if a not in RECOMMENDED and matches(a)]
        # Names that start with the text, then names that contain it, then family matches.
        ordered += sorted(rest, key=lambda a: (not a.lower().startswith(needle), needle not in a.lower(), a))
    chosen = ordered[:limit]
    cards = []
    for index, arch in enumerate(chosen):
        on_card(index, len(chosen))
        cards.append(model_card(arch))
    return cards
