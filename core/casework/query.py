"""Turn what was searched with into a ``SearchQuery`` to record: the exact pixels for a drawn
sketch, the exact bytes for a file."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from core.casework.logged_paths import path_text
from core.casework.records import QueryKind, SearchQuery
from core.common.imaging import decode_sketch, read_file_bytes

REPORT_SIDE = 512  # a file's picture in reports; the file's own bytes are kept for replay


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=3)  # lossless: replay sees the same pixels
    return buffer.getvalue()


def drawn_query(pixels: np.ndarray, strokes_json: str, scan: tuple[str, bytes] | None = None) -> SearchQuery:
    """A sketch drawn in the window, over an imported scan (its path and the file's bytes) or not,
    named plainly: a drawing, an imported scan searched as imported, or a drawing over one."""
    name = "drawing"
    if scan is not None:
        drawn = bool(json.loads(strokes_json or "{}").get("strokes"))
        kind = "drawing over imported scan" if drawn else "imported scan"
        name = f"{kind} {path_text(scan[0])} (file sha256 {hashlib.sha256(scan[1]).hexdigest()})"
    png = png_bytes(np.ascontiguousarray(pixels))
    return SearchQuery(QueryKind.STROKES, name, png, strokes_json=strokes_json, file_bytes=scan[1] if scan else None)


def file_query(path: str | Path) -> tuple[SearchQuery, np.ndarray]:
    """The query for a sketch file and the pixels decoded from exactly the bytes recorded."""
    data = read_file_bytes(path)
    image = decode_sketch(data, path)  # a large scan decoded scaled down (core.common.imaging)
    picture = image.copy()
    picture.thumbnail((REPORT_SIDE, REPORT_SIDE))
    # the name as text (a byte that is not UTF-8 as \\xNN): a label; the bytes searched are recorded
    return SearchQuery(QueryKind.FILE, path_text(path), png_bytes(picture), file_bytes=data), np.asarray(image)


def query_pixels(kind: QueryKind, data: bytes, label: str) -> np.ndarray:
    """The pixels a recorded query gives the model (for replay)."""
    return np.asarray(decode_sketch(data, label))
