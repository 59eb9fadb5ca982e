"""A suite of domain shifts built here, so that no adaptation choice is tuned on two shifts again.

Each shift takes the ants/bees photos of `../shared/datasets/hymenoptera`: the source is `train/` as it is; the
target is `val/` changed one way (blur, noise, fog...). The first half of each class of the changed `val/` photos is
the unlabelled target (what a run adapts to; names carry their class, `ants_x.png`, for the bench's few-labels
draws), the second half the labelled target test. Every change is deterministic (seeded by the photo's name).

    python bench/shift_suite.py OUT [--shifts blur,noise]   # writes OUT/<shift>_unlabelled and OUT/<shift>_test

`bench/choose_adaptation.py --shifts suite` runs every adaptation method on all of them, with `chalk` (the bundled
shapes drawn in chalk) and `sketch` (the photos as pencil sketches) beside.
"""

from __future__ import annotations

import argparse
import io
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "hymenoptera"


def _rng(name: str) -> np.random.Generator:
    """A generator seeded by the photo's name: the same change every time."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def blur(photo: Image.Image, name: str) -> Image.Image:
    """Out of focus: a Gaussian blur of 4 pixels."""
    return photo.filter(ImageFilter.GaussianBlur(4))


def noise(photo: Image.Image, name: str) -> Image.Image:
    """A noisy sensor: Gaussian noise of 45 grey levels on each channel."""
    pixels = np.asarray(photo, dtype=np.float32)
    noisy = pixels + _rng(name).normal(0, 45, pixels.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def low_contrast(photo: Image.Image, name: str) -> Image.Image:
    """A washed-out print: contrast at 30%."""
    return ImageEnhance.Contrast(photo).enhance(0.3)


def fog(photo: Image.Image, name: str) -> Image.Image:
    """Fog: 55% white haze over a slightly softened photo."""
    haze = Image.new("RGB", photo.size, (235, 235, 240))
    return Image.blend(photo.filter(ImageFilter.GaussianBlur(1.5)), haze, 0.55)


def jpeg(photo: Image.Image, name: str) -> Image.Image:
    """A heavily compressed upload: JPEG at quality 4."""
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=4)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def pixelate(photo: Image.Image, name: str) -> Image.Image:
    """A thumbnail blown up: 20 pixels across, enlarged without smoothing."""
    small = photo.resize((20, max(1, round(20 * photo.height / photo.width))), Image.BILINEAR)
    return small.resize(photo.size, Image.NEAREST)


def colour_cast(photo: Image.Image, name: str) -> Image.Image:
    """A camera with the wrong white balance: red and green damped, blue raised."""
    pixels = np.asarray(photo, dtype=np.float32) * np.array([0.55, 0.8, 1.45], dtype=np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def greyscale(photo: Image.Image, name: str) -> Image.Image:
    """Black-and-white photos."""
    return ImageOps.grayscale(photo).convert("RGB")


def edges(photo: Image.Image, name: str) -> Image.Image:
    """An edge map: dark outlines on white, no colour or texture."""
    outline = ImageOps.grayscale(photo).filter(ImageFilter.GaussianBlur(1)).filter(ImageFilter.FIND_EDGES)
    return ImageOps.invert(ImageOps.autocontrast(outline, cutoff=2)).convert("RGB")


def dark(photo: Image.Image, name: str) -> Image.Image:
    """Taken at dusk: brightness at 30%."""
    return ImageEnhance.Brightness(photo).enhance(0.3)


def rotated(photo: Image.Image, name: str) -> Image.Image:
    """A camera held sideways: turned a quarter, then back to the photo's size."""
    return photo.rotate(90, expand=True).resize(photo.size)


def posterized(photo: Image.Image, name: str) -> Image.Image:
    """A cheap screen or print: 2 bits per channel."""
    return ImageOps.posterize(photo, 2)


def hue_shifted(photo: Image.Image, name: str) -> Image.Image:
    """Other colours, the same shapes: the hue turned by a third of the circle."""
    h, s, v = photo.convert("HSV").split()
    return Image.merge("HSV", (h.point(lambda x: (x + 85) % 256), s, v)).convert("RGB")


def motion_blur(photo: Image.Image, name: str) -> Image.Image:
    """A moving camera: a horizontal smear of 15 pixels."""
    pixels = np.asarray(photo, dtype=np.float32)
    smeared = sum(np.roll(pixels, shift, axis=1) for shift in range(-7, 8)) / 15
    return Image.fromarray(np.clip(smeared, 0, 255).astype(np.uint8))


def salt_and_pepper(photo: Image.Image, name: str) -> Image.Image:
    """Dead and stuck pixels: 8% of them black or white."""
    pixels = np.asarray(photo).copy()
    hit = _rng(name).random(pixels.shape[:2])
    pixels[hit < 0.04] = 0
    pixels[hit > 0.96] = 255
    return Image.fromarray(pixels)


SHIFTS: dict[str, Callable[[Image.Image, str], Image.Image]] = {
    "blur": blur, "noise": noise, "low_contrast": low_contrast, "fog": fog, "jpeg": jpeg, "pixelate": pixelate,
    "colour_cast": colour_cast, "greyscale": greyscale, "edges": edges, "dark": dark,
}
CONFIRMATION_SHIFTS: dict[str, Callable[[Image.Image, str], Image.Image]] = {
    "rotated": rotated, "posterized": posterized, "hue_shifted": hue_shifted, "motion_blur": motion_blur,
    "salt_and_pepper": salt_and_pepper,
}
"""Shifts made after the label-free rule was designed on the twelve others (`SHIFTS`, chalk, sketch), to test it
on shifts it has never seen."""


def photo_shift(name: str, change: Callable[[Image.Image, str], Image.Image], work: Path,
                photos: Path = PHOTOS) -> tuple[Path, Path, Path]:
    """(source photos, unlabelled target, labelled target test) for one change of the `val/` photos.

    Args:
        name: the shift's name (the folders' prefix).
        change: photo, photo name -> changed photo.
        work: where the two target folders are written.
        photos: the hymenoptera folder (train/ and val/ of class folders).

    Returns:
        The source folder, the unlabelled folder (flat, names `class_photo.png`) and the test folder (class folders).
    """
    unlabelled, test = work / f"{name}_unlabelled", work / f"{name}_test"
    for folder in sorted(p for p in (photos / "val").iterdir() if p.is_dir()):
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        half = len(found) // 2
        for index, photo in enumerate(found):
            out = (unlabelled if index < half else test / folder.name) / f"{folder.name}_{photo.stem}.png"
            if out.exists():
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            change(Image.open(photo).convert("RGB"), photo.name).save(out)
    return photos / "train", unlabelled, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--shifts", default=",".join(SHIFTS))
    args = parser.parse_args()
    for name in args.shifts.split(","):
        _, unlabelled, test = photo_shift(name, {**SHIFTS, **CONFIRMATION_SHIFTS}[name], args.out)
        print(f"{name}: {sum(1 for _ in unlabelled.iterdir())} unlabelled, {sum(1 for _ in test.rglob('*.png'))} test")


if __name__ == "__main__":
    main()
