"""Augmentation as the run config states it: albumentations' own serialised steps, the presets, and their checks.

Plain data (no torch: albumentations, which loads torch, is imported only to check a user's own steps), so the app's
pages and a config check need not load the engine; `tlcore.inputs.augment` builds the pipelines around it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from tlcore.errors import TransferLabError, check_fields
from tlcore.core.schema import setting

if TYPE_CHECKING:
    import albumentations as A

__all__ = ["PRESETS", "MAX_PARAMETER", "AugmentSpec", "AugmentError", "preset", "build_transforms"]


class AugmentError(TransferLabError):
    """An augmentation that cannot be built (unknown preset or transform, bad parameters)."""


def _t(name: str, **params: object) -> dict:
    """One transform in albumentations' serialised form."""
    return _plain({"__class_fullname__": name, **params})


def _plain(entry: dict) -> dict:
    """As JSON gives it back (tuples become lists), so a spec equals its own round trip."""
    return json.loads(json.dumps(entry))


_FLIP = _t("HorizontalFlip", p=0.5)
_REFLECT = cv2.BORDER_REFLECT_101  # fill the corners a rotation uncovers with picture, not black
_LIGHT_AFFINE = _t("Affine", scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-10, 10), border_mode=_REFLECT,
                   p=0.5)
# (one sentence on what it is for, transforms)
PRESETS: dict[str, tuple[str, list[dict]]] = {
    "none": ("No augmentation: every epoch sees the same pictures; fine for a first look, overfits small sets.", []),
    "light": ("Mirror images, small shifts, zooms and colour changes: safe for almost any photo set.", [
        _FLIP, _LIGHT_AFFINE,
        _t("ColorJitter", brightness=0.1, contrast=0.1, saturation=0.1, hue=0.02, p=0.5),
    ]),
    "medium": ("Stronger zoom, rotation and colour changes plus occasional blur: the usual choice for a few hundred "
               "images per class.", [
        _FLIP,
        _t("Affine", scale=(0.8, 1.2), translate_percent=(-0.1, 0.1), rotate=(-20, 20), border_mode=_REFLECT, p=0.7),
        _t("ColorJitter", brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05, p=0.7),
        _t("GaussianBlur", blur_limit=(3, 5), p=0.1),
    ]),
    "heavy": ("Large geometric and colour changes, noise and cut-out patches: for tiny data sets where "
              "overfitting is the main risk; slows learning.", [
        _FLIP,
        _t("Affine", scale=(0.7, 1.3), translate_percent=(-0.15, 0.15), rotate=(-30, 30), shear=(-10, 10),
           border_mode=_REFLECT, p=0.8),
        _t("ColorJitter", brightness=0.3, contrast=0.3, saturation=0.3, hue=0.08, p=0.8),
        _t("ToGray", p=0.1),
        _t("GaussNoise", std_range=(0.02, 0.08), p=0.2),
        _t("CoarseDropout", num_holes_range=(1, 4), hole_height_range=(0.05, 0.15), hole_width_range=(0.05, 0.15),
           p=0.3),
    ]),
    "photos": ("Everyday photos: mirroring, modest zoom, lighting and white-balance changes, as cameras vary.", [
        _FLIP, _LIGHT_AFFINE,
        _t("RandomBrightnessContrast", brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        _t("HueSaturationValue", hue_shift_limit=5, sat_shift_limit=15, val_shift_limit=10, p=0.3),
    ]),
    "aerial": ("Aerial and satellite views have no 'up': any flip or quarter turn is free, plus mild colour "
               "changes.", [
        _FLIP, _t("VerticalFlip", p=0.5), _t("RandomRotate90", p=0.5),
        _t("RandomBrightnessContrast", brightness_limit=0.15, contrast_limit=0.15, p=0.5),
    ]),
    "documents": ("Scans and documents: no mirroring (text has a direction), slight skew, grey scale, blur and "
                  "contrast as scanners vary.", [
        _t("Affine", scale=(0.95, 1.05), rotate=(-3, 3), border_mode=cv2.BORDER_REPLICATE, p=0.5),
        _t("ToGray", p=0.5),
        _t("RandomBrightnessContrast", brightness_limit=0.2, contrast_limit=0.3, p=0.5),
        _t("GaussianBlur", blur_limit=(3, 3), p=0.2),
    ]),
    "microscopy": ("Microscopy and medical images: any orientation, but only mild colour changes, since stain "
                   "colour carries meaning.", [
        _FLIP, _t("VerticalFlip", p=0.5), _t("RandomRotate90", p=0.5),
        _t("ColorJitter", brightness=0.05, contrast=0.05, saturation=0.05, hue=0.01, p=0.3),
    ]),
}


@dataclass(frozen=True)
class AugmentSpec:
    """An ordered list of albumentations transforms in its own serialised form (`A.to_dict` entries)."""

    transforms: tuple[dict, ...] = setting((), label="Augmentation steps", modalities=("images",), group="augment",
                                           help="albumentations transforms in their own serialised form.")
    # the preset it started from, for people; the transforms are what runs
    preset: str | None = setting(None, label="Augmentation preset", axis="aug", try_values=["light", "heavy"],
                                 suggestions=tuple(PRESETS), modalities=("images",), group="augment",
                                 help="A named pipeline of transforms for pictures.")

    def to_dict(self) -> dict:
        """As the run config stores it: the preset's name and the steps."""
        return {"preset": self.preset, "transforms": [dict(t) for t in self.transforms]}

    @classmethod
    def from_dict(cls, data: dict) -> "AugmentSpec":
        """From a run config's `augment` (a preset's name, or steps), checked now rather than in a run.

        Args:
            data: the `augment` mapping.

        Raises:
            AugmentError: an unknown key, preset or transform, or parameters albumentations refuses.
        """
        check_fields(data, {"preset", "transforms"}, "'augment'", AugmentError)
        if "transforms" not in data and data.get("preset"):
            return preset(data["preset"])
        steps = data.get("transforms", [])
        if not isinstance(steps, list):
            raise AugmentError("augmentation 'transforms' must be a list of steps", "write [] for none")
        spec = cls(transforms=tuple(_plain(t) if isinstance(t, dict) else t for t in steps), preset=data.get("preset"))
        build_transforms(spec)  # validate now, not in the middle of a run
        return spec


def preset(name: str) -> AugmentSpec:
    """A named augmentation preset.

    Args:
        name: one of PRESETS.

    Returns:
        Its `AugmentSpec`.

    Raises:
        AugmentError: no such preset.
    """
    if name not in PRESETS:
        raise AugmentError(f"unknown augmentation preset '{name}'", f"choose one of {', '.join(PRESETS)}")
    return AugmentSpec(transforms=tuple(dict(t) for t in PRESETS[name][1]), preset=name)


MAX_PARAMETER = 10_000  # pixels, degrees, counts and shares all fit; 1e308 made the test warp run for minutes


def _check_numbers(value: object, where: str, depth: int = 0) -> None:
    """Every number in a step's parameters finite and within +-MAX_PARAMETER, nested at most 8 deep."""
    if depth > 8:
        raise AugmentError(f"the parameters of {where} are nested too deeply", "use plain numbers and short lists")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or abs(value) > MAX_PARAMETER:
            raise AugmentError(f"a parameter of {where} is {value!r:.40}, outside -{MAX_PARAMETER:,} to "
                               f"{MAX_PARAMETER:,}", "use the ranges the albumentations documentation gives")
        return
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    for item in items:
        _check_numbers(item, where, depth + 1)


def build_transforms(spec: AugmentSpec) -> list[A.BasicTransform]:
    """Albumentations objects for the spec; any problem becomes one line naming the transform."""
    import albumentations as A

    built = []
    for position, entry in enumerate(spec.transforms, 1):
        name = entry.get("__class_fullname__") if isinstance(entry, dict) else None
        if not name or not isinstance(name, str):
            raise AugmentError(f"augmentation step {position} has no '__class_fullname__' naming a transform",
                               "write each step as {\"__class_fullname__\": \"HorizontalFlip\", \"p\": 0.5}")
        _check_numbers(entry, f"{name} (step {position})")
        try:
            transform = A.from_dict({"transform": entry})
        except KeyError:
            raise AugmentError(f"unknown augmentation '{name}' (step {position})",
                               "use an albumentations transform name such as HorizontalFlip or Affine") from None
        except (ValueError, TypeError) as exc:
            detail = " ".join(str(exc).split())[:240]
            raise AugmentError(f"invalid parameters for {name} (step {position}): {detail}",
                               "check the values against the albumentations documentation") from None
        if not callable(transform):
            raise AugmentError(f"{name} (step {position}) is not an image transform", "remove it")
        built.append(transform)
    try:  # a transform that needs boxes, masks or a fixed size fails here rather than in a run
        A.Compose(built)(image=np.zeros((48, 64, 3), dtype=np.uint8))
    except Exception as exc:  # noqa: BLE001 - albumentations raises many types; the user needs one line
        raise AugmentError(f"the augmentation pipeline fails on a test image: {type(exc).__name__}: {str(exc)[:200]}",
                           "remove or change the step it names") from None
    return built
