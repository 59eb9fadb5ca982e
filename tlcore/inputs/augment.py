"""Augmentation pipelines: a spec in albumentations' own serialisation, the model's preprocessing added for you.

Every pipeline is `resize (shorter side to input/crop_pct) -> the user's transforms ->
centre crop to the input size -> normalise with the model's mean/std`. Resizing first
keeps augmentation cheap on 4000x3000 photos; the evaluation pipeline is the same
without the user's random transforms, which is exactly timm's evaluation transform.
"""

from __future__ import annotations

import math

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from tlcore.inputs.augment_spec import PRESETS, AugmentError, AugmentSpec, build_transforms, preset

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
