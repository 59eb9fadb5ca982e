"""Decode any picture a user drops in into the 8-bit RGB image a person sees.

Phones store their rotation in EXIF, PNGs carry transparency, scanners write
CMYK and 16-bit files: each must reach the model as the picture on screen, and
each failure must say which of these went wrong.
"""

from __future__ import annotations

import io
import os
import stat
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tlcore.errors import TransferLabError

__all__ = [
    "SUPPORTED_FORMATS",
    "ImageReadError",
    "ImageFacts",
    "decode_image",
    "load_rgb",
    "to_rgb",
]

SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
# Modes whose own `convert("RGB")` is correct (CMYK: Pillow undoes Adobe's inversion on decode).
_PLAIN_CONVERT_MODES = frozenset({"1", "L", "P", "CMYK", "YCbCr", "RGBX", "LAB", "HSV"})


class ImageReadError(TransferLabError):
    """A file that cannot be used as a training image; `reason` is a short code for reports."""

    def __init__(self, reason: str, problem: str, hint: str = "") -> None:
        self.reason = reason
        super().__init__(problem, hint)


@dataclass(frozen=True)
class ImageFacts:
    """What a scan needs to know of one decoded file (size after EXIF rotation)."""

    format: str
    mode: str
    width: int
    height: int


def _pixel_limit(max_pixels: int | None) -> int:
    # Pillow's own decompression-bomb guard stays the ceiling; a caller may only lower it.
    pillow_limit = Image.MAX_IMAGE_PIXELS or 0
    if max_pixels is None:
        return pillow_limit
    return min(max_pixels, pillow_limit) if pillow_limit else max_pixels


def decode_image(data: bytes, *, max_pixels: int | None = None, draft: int | None = None) -> tuple[Image.Image, ImageFacts]:
    """Fully decode `data` (so truncation shows), apply EXIF orientation, return RGB.

    `draft=N` lets JPEGs decode at a reduced scale (1/2 to 1/8) as long as the
    shorter side stays at least N pixels: every byte is still read, so truncation is
    still caught, at a fraction of the cost. The scan uses 1; training, its resize target.

    Args:
        data: the file's bytes.
        max_pixels: larger pictures are refused (default: Pillow's limit).
        draft: see above.

    Returns:
        The RGB picture and facts about the file (format, mode, size).

    Raises:
        ImageReadError: the bytes are not a picture Pillow reads, or it is truncated or too large.
    """
    if not data:
        raise ImageReadError("empty", "empty file (0 bytes)", "remove it or copy it again")
    limit = _pixel_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            width, height = img.size
            if limit and width * height > limit:
                raise ImageReadError(
                    "too_large",
                    f"image is {width}x{height} = {width * height:,} pixels, over the limit of {limit:,} "
                    "(decompression-bomb guard)",
                    "resize it below the limit",
                )
            if fmt not in SUPPORTED_FORMATS:
                raise ImageReadError(
                    "unsupported_format",
                    f"unsupported image format {fmt}",
                    f"convert it to JPEG or PNG (supported: {', '.join(sorted(SUPPORTED_FORMATS))})",
                )
            if draft and fmt == "JPEG":
                factor = draft / min(width, height)
                img.draft("RGB", (math.ceil(width * factor), math.ceil(height * factor)))
            img.load()
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError("too_large", f"image too large: {exc}", "resize it below the limit") from None
    except UnidentifiedImageError:
        raise ImageReadError("not_image", "not an image (Pillow cannot identify it)", "remove it from the folder") from None
    except (OSError, SyntaxError, ValueError) as exc:
        message = str(exc)
        if "truncated" in message.lower():
            raise ImageReadError("truncated", "truncated image: the file ends before the picture does", "copy it again") from None
        raise ImageReadError("corrupt", f"cannot decode image: {message}", "open it in an image viewer and re-save it") from None
    mode = img.mode
    quarter_turn = _orientation(img) in _QUARTER_TURNS
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the user a readable image
        quarter_turn = False
    # Sizes are the file's own (a draft-decoded JPEG is smaller), as the EXIF rotation shows them.
    shown_w, shown_h = (height, width) if quarter_turn else (width, height)
    return to_rgb(img), ImageFacts(format=fmt, mode=mode, width=shown_w, height=shown_h)


_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - unreadable EXIF means "as stored"
        return 1


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB the way a viewer shows it.

    Transparency is flattened onto white (what the user saw), 16-bit values are
    scaled rather than clipped (Pillow's own convert would turn most of a 16-bit
    picture white).

    Args:
        img: a decoded picture of any mode.

    Returns:
        An RGB picture.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(img), mode), mode="L").convert("RGB")
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in _PLAIN_CONVERT_MODES:
        return img.convert("RGB")
    raise ImageReadError("unsupported_mode", f"unsupported colour mode {mode}", "re-save it as 8-bit RGB")


def _to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Scale by the source type, never by the picture's own peak: a dark 16-bit scan must stay dark.

    16-bit and 32-bit integer modes hold 0..65535 (Pillow opens 16-bit files as these); float
    pictures hold 0..1 by convention (values above 1 are taken as already 0..255, as Pillow does).
    """
    if values.dtype.kind == "f":
        scale = 255.0 if values.size == 0 or float(np.nanmax(values)) <= 1.0 else 1.0
        values = np.nan_to_num(values.astype(np.float64))
    else:
        scale = 255.0 / 65535.0 if mode in _SIXTEEN_BIT_MODES or mode == "I" else 1.0
        values = values.astype(np.float64)
    return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)


DEFAULT_MAX_FILE_MB = 64  # no photo is this large; a bigger file is a video, a disk image or a mistake


def max_file_bytes() -> int:
    """The largest picture file read, in bytes: `TRANSFERLAB_MAX_FILE_MB` changes it (scan also has --max-file-mb)."""
    try:
        megabytes = float(os.environ.get("TRANSFERLAB_MAX_FILE_MB", DEFAULT_MAX_FILE_MB))
    except ValueError:
        megabytes = DEFAULT_MAX_FILE_MB
    return int(max(megabytes, 0.001) * 2**20)


def read_picture_file(path: str | Path, max_bytes: int | None = None, inside: str | Path | None = None) -> bytes:
    """A file's bytes, read only when it is a regular file under the size limit, inside the user's folder.

    A symlink to /dev/zero would read until memory runs out, a FIFO would block forever,
    and a 3 GB video would be read whole just to say "not an image": each is refused
    from its type and size before reading, and the read itself stops at the limit. A link that
    leads out of the folder the user gave (a picture elsewhere on the machine) is not followed.

    Args:
        path: the file; max_bytes: the size limit (None: TRANSFERLAB_MAX_FILE_MB);
        inside: the folder the user gave (None: anywhere).

    Returns:
        The bytes.

    Raises:
        ImageReadError: with its reason (not_a_file, too_large, unreadable, link_out).
    """
    limit = max_bytes or max_file_bytes()
    if inside is not None:
        root, real = Path(inside).resolve(), Path(path).resolve()
        if real != root and root not in real.parents:
            raise ImageReadError("link_out", f"a link out of the data folder (to {real})",
                                 "copy the picture into the folder: links out of it are not followed")
    try:
        info = os.stat(path)  # follows symlinks: what would actually be read
        if not stat.S_ISREG(info.st_mode):
            kind = "folder" if stat.S_ISDIR(info.st_mode) else "pipe" if stat.S_ISFIFO(info.st_mode) else \
                "device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "special file"
            raise ImageReadError("not_a_file", f"not a regular file but a {kind}", "only picture files can be read")
        if info.st_size > limit:
            raise ImageReadError("too_large", f"file is {info.st_size / 2**20:.0f} MiB, over the {limit / 2**20:.0f} "
                                              "MiB limit", "raise TRANSFERLAB_MAX_FILE_MB if it really is a picture")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # never blocks, even if swapped for a FIFO
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ImageReadError("not_a_file", "not a regular file", "only picture files can be read")
            data = fh.read(limit + 1)
    except OSError as exc:
        raise ImageReadError("unreadable", f"cannot read {path}: {exc.strerror or exc}",
                             "check the file and its permissions") from None
    if len(data) > limit:
        raise ImageReadError("too_large", f"file is over the {limit / 2**20:.0f} MiB limit",
                             "raise TRANSFERLAB_MAX_FILE_MB if it really is a picture")
    return data


def load_rgb(path: str | Path, *, max_pixels: int | None = None, draft: int | None = None) -> Image.Image:
    """Read one file from disk as RGB; raises `ImageReadError` with the reason. `draft`: as for `decode_image`.

    Args:
        path: the picture file.
        max_pixels: larger pictures are refused.
        draft: see `decode_image`.

    Returns:
        The RGB picture.

    Raises:
        ImageReadError: the file is missing, not a regular file, too large, or not a readable picture.
    """
    return decode_image(read_picture_file(path), max_pixels=max_pixels, draft=draft)[0]
