"""Decoding photos of every common kind, and refusing bad files with a reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.common.errors import ImageLoadError
from core.common.imaging import MAX_PIXELS, decode_image, load_rgb, make_thumbnail


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_exif_orientation_is_applied():
    # 40 wide x 20 high, left half red; EXIF orientation 6 means "rotate 90 degrees clockwise to view"
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(array), "JPEG", exif=exif, quality=95)
    upright = decode_image(data)
    assert upright.size == (20, 40)
    pixels = np.asarray(upright)
    assert pixels[5, 10, 0] > 200 and pixels[35, 10, 0] < 60  # red moved to the top half


@pytest.mark.parametrize(
    "image, fmt",
    [
        (Image.new("CMYK", (16, 8), (0, 255, 255, 0)), "JPEG"),  # pure red in CMYK
        (Image.new("RGB", (16, 8), (255, 0, 0)).convert("P"), "PNG"),
        (Image.new("RGB", (16, 8), (255, 0, 0)), "WEBP"),
        (Image.new("RGB", (16, 8), (255, 0, 0)), "TIFF"),
        (Image.new("RGB", (16, 8), (255, 0, 0)), "BMP"),
    ],
    ids=["cmyk-jpeg", "palette-png", "webp", "tiff", "bmp"],
)
def test_formats_and_modes_decode_to_rgb(image, fmt):
    decoded = decode_image(encode(image, fmt))
    assert decoded.mode == "RGB" and decoded.size == (16, 8)
    red, green, blue = np.asarray(decoded)[4, 8]
    assert red > 200 and green < 60 and blue < 60


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    decoded = np.asarray(decode_image(encode(Image.fromarray(ramp), "PNG")))
    assert decoded.shape == (8, 8, 3)
    assert decoded[0, 0, 0] == 0 and decoded[7, 7, 0] == 255 and 100 < decoded[4, 0, 0] < 160


def test_transparency_becomes_white():
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert tuple(np.asarray(decode_image(encode(rgba, "PNG")))[0, 0]) == (255, 255, 255)


def bad_files(folder) -> dict[str, str]:
    """Each bad-file kind the importer must survive, with the reason it must give."""
    good = encode(Image.new("RGB", (64, 64), (10, 200, 30)), "JPEG")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "not_an_image.png").write_text("this is a text file, not a picture")
    # a PNG whose header declares 30000 x 30000 pixels: decoding it would need gigabytes
    bomb = Image.new("1", (30_000, 30_000))
    (folder / "bomb.png").write_bytes(encode(bomb, "PNG"))
    (folder / "dangling.jpg").symlink_to(folder / "does_not_exist.jpg")
    return {
        "empty.jpg": "empty file",
        "truncated.jpg": "truncated",
        "not_an_image.png": "not an image",
        "bomb.png": "decompression bomb",
        "dangling.jpg": "unreadable",
    }


def test_each_bad_file_is_refused_with_its_reason(tmp_path):
    expected = bad_files(tmp_path)
    for name, reason in expected.items():
        if name == "dangling.jpg":
            continue  # a dangling link is caught when the import stats it
        with pytest.raises(ImageLoadError) as error:
            load_rgb(tmp_path / name)
        assert reason in error.value.reason, (name, error.value.reason)
        assert name in str(error.value)
    assert 30_000 * 30_000 > MAX_PIXELS


def test_thumbnail_is_a_small_jpeg():
    thumb = Image.open(io.BytesIO(make_thumbnail(Image.new("RGB", (800, 1600), (1, 2, 3)))))
    assert thumb.format == "JPEG" and max(thumb.size) <= 192 and thumb.size[1] == 192


def test_gallery_decoding_reduces_large_jpegs_but_records_the_original_size():
    from core.common.imaging import GALLERY_DECODE_SIDE, decode_for_gallery

    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.new("RGB", (4000, 3000), (200, 30, 30)), "JPEG", exif=exif)
    width, height, image = decode_for_gallery(data, "big.jpg")
    assert (width, height) == (3000, 4000)
    assert min(image.size) >= GALLERY_DECODE_SIDE and max(image.size) <= 1000
    assert image.size[1] > image.size[0]  # upright
