"""Augmentation pipelines: a spec in albumentations' own serialisation, the model's preprocessing added for you.

Every pipeline is `resize (shorter side to input/crop_pct) -> the user's transforms ->
centre crop to the input size -> normalise with the model's mean/std`. Resizing first
keeps augmentation cheap on 4000x3000 photos; the evaluation pipeline is the same
without the user's random transforms, which is exactly timm's evaluation transform.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from tlcore.errors import TransferLabError, check_fields

__all__ = [
    "PRESETS",
    "AugmentSpec",
    "AugmentError",
    "preset",
    "build_transforms",
    "train_pipeline",
    "eval_pipeline",
    "preview",
    "model_view",
    "resize_target",
    "make_grid",
]

_INTERPOLATION = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
                  "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}


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

    transforms: tuple[dict, ...] = ()
    preset: str | None = None  # the preset it started from, for people; the transforms are what runs

    def to_dict(self) -> dict:
        return {"preset": self.preset, "transforms": [dict(t) for t in self.transforms]}

    @classmethod
    def from_dict(cls, data: dict) -> "AugmentSpec":
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


def resize_target(input_size: tuple[int, int, int], crop_pct: float) -> int:
    """Shorter side before the centre crop, as timm computes it (224 / 0.875 = 256).

    Args:
        input_size: the model's (channels, height, width).
        crop_pct: the share of the resized picture the centre crop keeps.

    Returns:
        The shorter side in pixels.
    """
    return int(math.floor(input_size[-1] / crop_pct))


def _head(prep) -> list[A.BasicTransform]:
    interpolation = _INTERPOLATION.get(prep.interpolation, cv2.INTER_LINEAR)
    return [A.SmallestMaxSize(max_size=resize_target(prep.input_size, prep.crop_pct), interpolation=interpolation)]


def _crop(prep) -> list[A.BasicTransform]:
    height, width = prep.input_size[1], prep.input_size[2]
    return [A.CenterCrop(height=height, width=width, pad_if_needed=True)]


def _normalise(prep) -> list[A.BasicTransform]:
    return [A.Normalize(mean=prep.mean, std=prep.std, max_pixel_value=255.0), ToTensorV2()]


def train_pipeline(spec: AugmentSpec, prep, seed: int | None = None) -> A.Compose:
    """uint8 HxWx3 array -> normalised float CHW tensor of the model's input size, augmented.

    Args:
        spec: the augmentation spec.
        prep: the model's preprocessing (input size, resize, normalisation).
        seed: seeds albumentations' random choices (None: not seeded).

    Returns:
        The albumentations pipeline.
    """
    return A.Compose(_head(prep) + build_transforms(spec) + _crop(prep) + _normalise(prep), seed=seed)


def eval_pipeline(prep) -> A.Compose:
    """The same without the random parts: what validation, test and prediction use.

    Args:
        prep: the model's preprocessing.

    Returns:
        The albumentations pipeline.
    """
    return A.Compose(_head(prep) + _crop(prep) + _normalise(prep))


def preview(image: np.ndarray, spec: AugmentSpec, prep, n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """`n` augmented versions of one picture as the model would get them (before normalising); same seed, same pictures.

    Args:
        image: a uint8 HxWx3 picture.
        spec: the augmentation spec.
        prep: the model's preprocessing.
        n: how many versions.
        seed: the first version's seed.

    Returns:
        `n` uint8 pictures at the model's input size.
    """
    pipeline = A.Compose(_head(prep) + build_transforms(spec) + _crop(prep), seed=seed)
    return [pipeline(image=image)["image"] for _ in range(n)]


def model_view(tensor: torch.Tensor, prep) -> np.ndarray:
    """A normalised CHW tensor back to the uint8 picture it stands for: 'what the model sees'.

    Args:
        tensor: a normalised CHW float tensor.
        prep: the preprocessing that normalised it.

    Returns:
        A uint8 HxWx3 picture.
    """
    mean = torch.tensor(prep.mean).view(3, 1, 1)
    std = torch.tensor(prep.std).view(3, 1, 1)
    pixels = (tensor.detach().cpu().float() * std + mean).clamp(0, 1) * 255
    return pixels.round().byte().permute(1, 2, 0).numpy()


def make_grid(images: list[np.ndarray], columns: int = 4, pad: int = 4) -> np.ndarray:
    """Same-sized uint8 pictures side by side on a white sheet.

    Args:
        images: uint8 pictures of one size.
        columns: pictures per row.
        pad: white pixels between them.

    Returns:
        One uint8 picture.
    """
    if not images:
        raise AugmentError("no pictures to put in a grid", "ask for at least one")
    height, width = images[0].shape[:2]
    rows = math.ceil(len(images) / columns)
    sheet = np.full((rows * (height + pad) + pad, min(columns, len(images)) * (width + pad) + pad, 3), 255, np.uint8)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        sheet[top:top + height, left:left + width] = image
    return sheet
