"""Every kind of file a user drops in decodes to the RGB picture they see, or says why it cannot."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlcore.data.images import ImageReadError, decode_image, load_rgb


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def rgb_of(data: bytes, **kwargs) -> np.ndarray:
    img, _ = decode_image(data, **kwargs)
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


def test_exif_orientation_is_applied() -> None:
    # Stored landscape, left half red; EXIF 6 = "rotate 90 degrees clockwise to show".
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    img, facts = decode_image(encode(Image.fromarray(pixels), "JPEG", exif=exif, quality=95))
    assert img.size == (20, 40)  # portrait, as a phone shows it
    assert (facts.width, facts.height) == (20, 40)
    shown = np.asarray(img).astype(int)
    assert shown[5, 10, 0] > 200 and shown[5, 10, 2] < 60  # top is the stored left: red
    assert shown[35, 10, 2] > 200 and shown[35, 10, 0] < 60  # bottom: blue


def test_rgba_transparency_is_flattened_onto_white() -> None:
    pixels = np.zeros((4, 4, 4), dtype=np.uint8)
    pixels[0, 0] = (255, 0, 0, 255)  # opaque red; everything else fully transparent black
    rgb = rgb_of(encode(Image.fromarray(pixels, mode="RGBA"), "PNG"))
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[2, 2].tolist() == [255, 255, 255]


def test_palette_with_transparency_is_flattened_onto_white() -> None:
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((1, 1), 1)
    rgb = rgb_of(encode(img, "PNG", transparency=0))
    assert rgb[1, 1].tolist() == [0, 255, 0]
    assert rgb[0, 0].tolist() == [255, 255, 255]


def test_grayscale_becomes_three_equal_channels() -> None:
    rgb = rgb_of(encode(Image.new("L", (5, 5), 77), "PNG"))
    assert rgb[2, 2].tolist() == [77, 77, 77]


def test_cmyk_jpeg_converts_to_rgb() -> None:
    cmyk_red = Image.new("CMYK", (8, 8), (0, 255, 255, 0))
    img, facts = decode_image(encode(cmyk_red, "JPEG", quality=95))
    assert facts.mode == "CMYK"
    r, g, b = np.asarray(img).astype(int)[4, 4]
    assert r > 230 and g < 30 and b < 30


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    # A mid-grey 16-bit picture: clipping (Pillow's plain convert) would make it white.
    img = Image.fromarray(np.full((6, 6), 32768, dtype=np.uint16))
    rgb = rgb_of(encode(img, "PNG"))
    assert abs(rgb[3, 3, 0] - 128) <= 1 and rgb[3, 3].tolist() == [rgb[3, 3, 0]] * 3


@pytest.mark.parametrize("values, expected", [
    ((0, 1), (0, 0)),  # a 16-bit 0/1 mask is black, not 0/255
    ((200, 255), (1, 1)),  # 16-bit 200 and 255 are both nearly black: scaled by the type, not the peak
    ((200, 256), (1, 1)),
    ((0, 65535), (0, 255)),
])
def test_sixteen_bit_is_scaled_by_its_type_not_its_peak(values, expected) -> None:
    pixels = np.zeros((4, 4), dtype=np.uint16)
    pixels[:2], pixels[2:] = values
    rgb = rgb_of(encode(Image.fromarray(pixels), "PNG"))
    assert (rgb[0, 0, 0], rgb[3, 3, 0]) == expected


@pytest.mark.parametrize("draft", [None, 1, 32])
def test_truncated_jpeg_is_reported(draft: int | None) -> None:
    rng = np.random.default_rng(0)
    data = encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ImageReadError) as info:
        decode_image(data[: len(data) // 2], draft=draft)
    assert info.value.reason == "truncated"


def test_zero_byte_and_text_files() -> None:
    with pytest.raises(ImageReadError) as empty:
        decode_image(b"")
    assert empty.value.reason == "empty"
    with pytest.raises(ImageReadError) as text:
        decode_image(b"name,label\ncat.jpg,cat\n")
    assert text.value.reason == "not_image"
    assert "not an image" in str(text.value)


def test_pillow_decompression_bomb_guard_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = encode(Image.new("RGB", (30, 30)), "PNG")  # 900 px: over twice the limit, Pillow itself refuses
    with pytest.raises(ImageReadError) as info:
        decode_image(data)
    assert info.value.reason == "too_large"
    small = encode(Image.new("RGB", (12, 12)), "PNG")  # 144 px: Pillow only warns; we still refuse
    with pytest.raises(ImageReadError, match="over the limit of 100"):
        decode_image(small)


def test_a_lower_pixel_limit_can_be_asked_for() -> None:
    with pytest.raises(ImageReadError) as info:
        decode_image(encode(Image.new("RGB", (50, 50)), "PNG"), max_pixels=1000)
    assert info.value.reason == "too_large"


def test_unsupported_format_is_named() -> None:
    with pytest.raises(ImageReadError) as info:
        decode_image(encode(Image.new("RGB", (8, 8)), "PPM"))
    assert info.value.reason == "unsupported_format"
    assert "PPM" in str(info.value)


def test_load_rgb_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError) as info:
        load_rgb(tmp_path / "gone.jpg")
    assert info.value.reason == "unreadable"


def test_draft_decoding_keeps_the_shorter_side_and_reports_the_true_size() -> None:
    rng = np.random.default_rng(1)
    data = encode(Image.fromarray(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)), "JPEG")
    img, facts = decode_image(data, draft=256)
    assert min(img.size) >= 256 and img.size[0] < 800  # decoded at 1/2 scale, not full size
    assert (facts.width, facts.height) == (800, 600)
