"""Reading photos and sketches safely: any common format in, RGB uint8 out, or a clear reason.

Originals are only ever opened for reading."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.common.errors import ImageLoadError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# Refuse images above this many pixels (about 12k x 8k): such a file is either a decompression bomb
# or nothing a person-search gallery needs, and decoding it could exhaust memory.
MAX_PIXELS = 100_000_000
# A sketch scan may be larger (a 1200-dpi page is about 108 megapixels): up to this many pixels it
# is decoded scaled down (see decode_sketch); above it, it is refused like a photo above MAX_PIXELS.
MAX_SKETCH_PIXELS = 400_000_000
# A sketch above MAX_PIXELS is decoded at no less than this many pixels a side (the model sees a
# few hundred, reports 512): a JPEG at 1/2, 1/4 or 1/8 scale while decoding, another format reduced
# by a whole factor after decoding (so its peak memory is the full image's, 3 bytes a pixel for RGB).
SKETCH_DECODE_SIDE = 2048
# Refuse files above this size before reading them: a gallery photo is a few megabytes, and a
# file this big is read whole into memory to be decoded.
MAX_FILE_BYTES = 256 * 1024 * 1024
THUMBNAIL_SIZE = 192
# Pillow's own check refuses images above twice this when opened; every decode here checks its own
# limit (MAX_PIXELS, or MAX_SKETCH_PIXELS for sketches) from the header before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = MAX_SKETCH_PIXELS // 2


def _regular_file_size(path: str | Path) -> int:
    """The size of ``path`` (following links), refusing anything but a regular file: opening a
    device or a pipe named ``x.jpg`` could read forever or block."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ImageLoadError(path, "not a regular file")
    return info.st_size


@contextmanager
def _reading(path: str | Path):
    """Check that ``path`` is a regular file within the size limit, then let the caller read it;
    whatever goes wrong becomes an ImageLoadError naming the file and the reason."""
    try:
        size = _regular_file_size(path)
        if size > MAX_FILE_BYTES:
            raise ImageLoadError(path, f"file too large ({size:,} bytes; the limit is {MAX_FILE_BYTES:,})")
        yield
    except PermissionError:
        raise ImageLoadError(path, "permission denied") from None
    except IsADirectoryError:
        raise ImageLoadError(path, "is a directory") from None
    except FileNotFoundError:
        raise ImageLoadError(path, "no such file") from None
    except OSError as exc:
        raise ImageLoadError(path, f"unreadable ({exc.strerror or exc})") from None


def read_file_bytes(path: str | Path) -> bytes:
    with _reading(path), open(path, "rb") as handle:
        return handle.read()


def read_photo_file(path: str | Path, chunk: int = 1 << 20) -> tuple[bytes, str]:
    """-> (the file's bytes, their sha256), after the cheap checks: a regular file, no larger than
    MAX_FILE_BYTES, whose header is an image within MAX_PIXELS. A file that fails them is never
    read whole (a 3 GB file of zeros named ``.jpg`` costs one header read); the hash is computed
    block by block as the file is read."""
    with _reading(path), open(path, "rb") as handle:
        _check_header(handle, path)
        handle.seek(0)
        digest = hashlib.sha256()
        blocks = []
        while block := handle.read(chunk):
            digest.update(block)
            blocks.append(block)
    return b"".join(blocks), digest.hexdigest()


def _check_header(handle, path: str | Path) -> None:  # noqa: ANN001 - a binary file object
    """Identify the format and size from the header alone (Pillow reads a few kilobytes)."""
    if handle.read(1) == b"":
        raise ImageLoadError(path, "empty file")
    handle.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is MAX_PIXELS, checked here
        try:
            with Image.open(handle) as image:
                width, height = image.size
        except UnidentifiedImageError:
            raise ImageLoadError(path, "not an image (unrecognised format)") from None
        except Image.DecompressionBombError as exc:
            raise ImageLoadError(path, f"decompression bomb: {exc}") from None
        except (SyntaxError, ValueError, OSError) as exc:
            raise _corrupt(path, exc) from None
    _check_pixels(width, height, path)


def _corrupt(path: str | Path, exc: Exception) -> ImageLoadError:
    message = str(exc)
    if "truncated" in message.lower():
        return ImageLoadError(path, "truncated image")
    return ImageLoadError(path, f"corrupt image ({message})")


def _check_pixels(width: int, height: int, path: str | Path, limit: int = MAX_PIXELS) -> None:
    if width * height > limit:
        raise ImageLoadError(path, f"decompression bomb: {width}x{height} pixels exceeds the {limit:,} limit")


def decode_image(
    data: bytes, path: str | Path = "<memory>", at_least: int | None = None, *, sketch: bool = False
) -> Image.Image:
    """Decode bytes into an upright RGB PIL image (EXIF orientation applied, CMYK, 16-bit, palette
    and alpha images converted; transparency becomes white, as on paper).

    ``at_least``: the caller needs no more than this many pixels on each side, so a JPEG may be
    decoded at 1/2, 1/4 or 1/8 scale (much faster for camera-sized photos).

    ``sketch``: a sketch scan, allowed up to MAX_SKETCH_PIXELS; one above MAX_PIXELS is decoded
    scaled down to no less than SKETCH_DECODE_SIDE a side (one within it exactly as before)."""
    if not data:
        raise ImageLoadError(path, "empty file")
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89.5 megapixels; the documented limits are checked here, and
            # Pillow's own error (above MAX_SKETCH_PIXELS) is no lower than either
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_pixels(*image.size, path, MAX_SKETCH_PIXELS if sketch else MAX_PIXELS)
            reduce_to = None
            if sketch and image.size[0] * image.size[1] > MAX_PIXELS:
                reduce_to = SKETCH_DECODE_SIDE if at_least is None else max(at_least, SKETCH_DECODE_SIDE)
            if at_least or reduce_to:
                image.draft("RGB", (reduce_to or at_least,) * 2)
            image.load()
            image = ImageOps.exif_transpose(image)
            if reduce_to and min(image.size) // reduce_to > 1:
                # not a JPEG (or one draft could not scale enough): a whole-factor box reduction
                factor = min(image.size) // reduce_to
                if image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):  # what reduce() takes; P, 1, CMYK, I;16 ...
                    image = to_rgb(image)
                image = image.reduce(factor)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(path, f"decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise ImageLoadError(path, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise _corrupt(path, exc) from None
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit greyscale: scale the actual range to 8 bits instead of clipping at 255
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        array = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        image = Image.fromarray(np.rint(array).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, F ...
    return image


def load_rgb(path: str | Path) -> np.ndarray:
    """Read and decode an image file into an H x W x 3 uint8 RGB array."""
    return np.asarray(decode_image(read_file_bytes(path), path))


def decode_sketch(data: bytes, path: str | Path = "<memory>") -> Image.Image:
    """A sketch's bytes decoded: as :func:`decode_image`, a scan up to MAX_SKETCH_PIXELS allowed
    (one above MAX_PIXELS scaled down on decode)."""
    return decode_image(data, path, sketch=True)


def load_sketch_rgb(path: str | Path) -> np.ndarray:
    """A sketch file decoded into an H x W x 3 uint8 RGB array (see :func:`decode_sketch`)."""
    return np.asarray(decode_sketch(read_file_bytes(path), path))


# Gallery photos are only ever shown as thumbnails or fed to a network of a few hundred pixels;
# decoding them beyond this size is wasted time.
GALLERY_DECODE_SIDE = 512


def decode_for_gallery(data: bytes, path: str | Path) -> tuple[int, int, Image.Image]:
    """-> (upright width, upright height of the original, upright RGB image decoded at no less
    than GALLERY_DECODE_SIDE pixels a side)."""
    image = decode_image(data, path, at_least=GALLERY_DECODE_SIDE)  # validates the file
    with Image.open(io.BytesIO(data)) as header:
        width, height = header.size
        if header.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientations that turn by 90 degrees
            width, height = height, width
    return width, height, image


def make_thumbnail(image: Image.Image, size: int = THUMBNAIL_SIZE) -> bytes:
    thumb = image.copy()
    # a box reduction by the whole factor first, then bilinear: half the time of Pillow's default
    # (which reduces by half the factor), with no difference to see at thumbnail size
    thumb.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=1.0)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=82)
    return buffer.getvalue()
