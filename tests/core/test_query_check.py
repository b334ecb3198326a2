"""The query is checked: a photo rather than a drawing and a gallery photo are warned of, the
warnings are recorded with the search (its audit entry) and shown by ``search``, ``case show`` and
the PDF report; a large sketch scan is decoded scaled down, while a photo that size is refused."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from core.casework.query import file_query
from core.casework.query_check import PHOTO_COLOUR_SHARE, colour_share
from core.common.errors import ImageLoadError
from core.common.imaging import MAX_PIXELS, SKETCH_DECODE_SIDE, decode_image, decode_sketch
from tests.core.test_casework_cli import pdf_text
from tests.core.test_cli import cli

SKETCHES = ["1.jpg", "57.jpg", "120.jpg", "197.jpg"]


def tinted(path, tint=(1.0, 0.93, 0.75)) -> Image.Image:
    """A sketch as if scanned from yellowed paper: every pixel multiplied by the paper's colour."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) * np.array(tint, dtype=np.float32)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def test_colour_share_separates_sketches_from_photos(pku_root):
    for name in SKETCHES:
        sketch = pku_root / "sketch" / name
        assert colour_share(Image.open(sketch)) < PHOTO_COLOUR_SHARE
        assert colour_share(tinted(sketch)) < PHOTO_COLOUR_SHARE  # paper colour is no photo
    photos = sorted((pku_root / "photo").iterdir())[:8]
    assert all(colour_share(Image.open(p)) >= PHOTO_COLOUR_SHARE for p in photos)


@pytest.fixture
def pku_gallery(tmp_path, pku_root, model_dir):
    """A gallery of three PKU photos (copied to a temporary folder), imported with the bundled model."""
    from core.cli.commands import main

    folder = tmp_path / "gallery"
    folder.mkdir()
    photos = sorted((pku_root / "photo").iterdir())[:3]
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    data = ["--data-dir", tmp_path / "data", "--model", model_dir]
    assert main([str(a) for a in [*data, "import", folder]]) == 0
    return data, [folder / p.name for p in photos], pku_root


def test_query_warnings_recorded_and_shown(pku_gallery, capsys, tmp_path):
    data, gallery_photos, pku_root = pku_gallery
    sketch = pku_root / "sketch" / "1.jpg"
    other_photo = sorted((pku_root / "photo").iterdir())[10]
    assert cli(capsys, *data, "case", "new", "2026-7", "--title", "queries")[0] == 0

    code, out, err = cli(capsys, *data, "search", sketch, other_photo, gallery_photos[1], "--case", "2026-7", "--json")
    assert code == 0, err
    results = json.loads(out)
    assert results[0]["query_warnings"] == []  # a sketch
    (photo_like,) = results[1]["query_warnings"]
    assert "looks like a photo" in photo_like
    warnings = results[2]["query_warnings"]
    sha = hashlib.sha256(gallery_photos[1].read_bytes()).hexdigest()
    assert len(warnings) == 2 and "looks like a photo" in warnings[0]
    assert "is a gallery photo" in warnings[1] and sha[:12] in warnings[1] and gallery_photos[1].name in warnings[1]

    code, out, _ = cli(capsys, *data, "search", gallery_photos[1])
    assert code == 0 and "warning: The query is a gallery photo" in out and "warning: The query looks like" in out

    # recorded with the search: in its hash-chained audit entry
    from core.workspace import Workspace

    with Workspace(data[1], model_dir=data[3]) as workspace:
        logged = {e.payload["search_id"]: e.payload for e in workspace.casework.audit_entries() if e.kind == "search"}
    assert logged[results[0]["search_id"]]["query_warnings"] == []
    assert logged[results[2]["search_id"]]["query_warnings"] == warnings
    assert cli(capsys, *data, "audit", "verify")[0] == 0

    code, out, _ = cli(capsys, *data, "case", "show", "2026-7", "--json")
    shown = {s["search_id"]: s["query_warnings"] for s in json.loads(out)["searches"]}
    assert shown == {r["search_id"]: r["query_warnings"] for r in results}
    code, out, _ = cli(capsys, *data, "case", "show", "2026-7")
    assert out.count("warning: The query looks like a photo") == 2 and out.count("is a gallery photo") == 1

    report = tmp_path / "report.pdf"
    assert cli(capsys, *data, "case", "report", "2026-7", "--pdf", report)[0] == 0
    text = " ".join(pdf_text(report).split())
    assert text.count("Query warning: The query looks like a photo") == 2
    assert text.count("Query warning: The query is a gallery photo") == 1


def white_jpeg(width: int, height: int) -> bytes:
    """A mostly white greyscale page with one drawn mark: large in pixels, small as a file."""
    page = Image.new("L", (width, height), 255)
    page.paste(40, (width // 3, height // 3, width // 3 + 400, height // 3 + 900))
    buffer = io.BytesIO()
    page.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def streamed_png(width: int, height: int, rows: int | None = None) -> bytes:
    """A white greyscale PNG written row by row (never the whole page in memory); ``rows``: stop
    after that many (a header that promises more than the file holds)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    packer, row, parts = zlib.compressobj(9), b"\x00" + b"\xff" * width, []
    for _ in range(height if rows is None else rows):
        parts.append(packer.compress(row))
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def test_large_sketch_scan_is_decoded_scaled_down(tmp_path):
    scan = tmp_path / "page-1200dpi.jpg"
    scan.write_bytes(white_jpeg(12_000, 9_000))  # 108 megapixels
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        decode_image(scan.read_bytes(), scan)  # a gallery photo this size is refused, as before
    query, pixels = file_query(scan)
    assert query.file_bytes == scan.read_bytes()  # the file's own bytes are recorded
    assert pixels.shape == (2250, 3000, 3)  # decoded at 1/4 scale, no less than SKETCH_DECODE_SIDE a side
    assert min(pixels.shape[:2]) >= SKETCH_DECODE_SIDE and pixels.min() < 100  # the mark survives

    png = streamed_png(10_500, 10_000)  # 105 megapixels, not a JPEG: reduced by a whole factor
    image = decode_sketch(png, "page.png")
    assert image.size == (2625, 2500) and image.mode == "RGB"


def test_sketch_limits():
    small = streamed_png(3000, 2000)  # within MAX_PIXELS: decoded at full size, as before
    assert decode_sketch(small).size == (3000, 2000) and 3000 * 2000 < MAX_PIXELS
    too_large = streamed_png(20_001, 20_000, rows=1)  # above MAX_SKETCH_PIXELS: refused from the header
    with pytest.raises(ImageLoadError, match="decompression bomb.*(400,000,000|400000000)"):
        decode_sketch(too_large)
