"""Checks on what a search is run with, recorded with the search as warnings: a query that looks
like a photo rather than a drawing (colour), and a query that is a gallery photo (its sha256).

The colour measure (:func:`colour_share`) is the share of pixels whose colour departs from the
paper's: each pixel's opponent chroma (R - G, (R + G)/2 - B) is compared with the paper's chroma
(the median of the brightest quarter) scaled by the pixel's brightness, so a uniformly tinted scan
(cream or yellowed paper, pencil on it) measures as grey. Validated on PKU-Sketch and CUFS (all
sketches against all photos, and the sketches tinted as scanned paper): see
benchmarks/query_check.py and benchmarks/results/query-check.md."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from core.casework.logged_paths import path_text
from core.casework.records import QueryKind, SearchQuery
from core.common.errors import ImageLoadError
from core.common.imaging import decode_image

MEASURE_SIDE = 256  # the measure is taken on the query scaled to at most this many pixels a side
# a pixel "has colour" when its chroma departs from the paper's by more than this (0-255 scale)
COLOUR_DEVIATION = 20.0
# Sketches (PKU 197, CUFS 188, and both tinted as cream, yellowed and bluish paper) measured at
# most 0.0135; photos (PKU 400, CUFS 188) at least 0.0396.
PHOTO_COLOUR_SHARE = 0.02


def colour_share(image: Image.Image | np.ndarray) -> float:
    """The share (0-1) of the image's pixels with colour other than the paper's tint."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    if max(image.size) > MEASURE_SIDE:
        image = image.copy()
        image.thumbnail((MEASURE_SIDE, MEASURE_SIDE), Image.Resampling.BILINEAR)
    rgb = np.asarray(image, dtype=np.float32)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    brightness = rgb.mean(axis=2)
    first, second = red - green, (red + green) / 2 - blue
    paper = brightness >= np.percentile(brightness, 75)
    paper_brightness = max(float(brightness[paper].mean()), 1.0)
    scale = brightness / paper_brightness  # the tint of paper under pencil darkens with it
    tint_first, tint_second = float(np.median(first[paper])), float(np.median(second[paper]))
    departure = np.hypot(first - tint_first * scale, second - tint_second * scale)
    return float((departure > COLOUR_DEVIATION).mean())


PHOTO_LIKE = "The query looks like a photo, not a drawing"
GALLERY_PHOTO = "The query is a gallery photo"
# where each warning's measure comes from, for a person weighing it
MEASURE_SOURCES = {
    PHOTO_LIKE: (
        "Colour measure of the query (its scanned file, if any): the share of pixels whose colour departs "
        f"from the paper's tint by more than {COLOUR_DEVIATION:.0f} of 255. Sketches of PKU-Sketch and CUFS, "
        "plain and tinted as scanned paper, measured at most 1.35%, their photos at least 3.92% "
        f"(benchmarks/results/query-check.md); warned from {PHOTO_COLOUR_SHARE:.0%}."
    ),
    GALLERY_PHOTO: (
        "The sha256 of the query file's bytes equals that of a gallery photo, as catalogued at import: "
        "a search for a photo finds that photo first."
    ),
}


def measure_source(warning: str) -> str:
    """Where the measure behind a recorded warning comes from ("" for a warning of no known check)."""
    return next((source for head, source in MEASURE_SOURCES.items() if warning.startswith(head)), "")


def photo_like_warning(share: float) -> str:
    if share < PHOTO_COLOUR_SHARE:
        return ""
    return (
        f"{PHOTO_LIKE}: {share:.0%} of its pixels are in colour "
        f"(sketches measured below {PHOTO_COLOUR_SHARE:.0%}). The model is trained to match sketches to photos."
    )


def gallery_photo_warning(sha256: str, photo: tuple[int, str] | None) -> str:
    if photo is None:
        return ""
    photo_id, path = photo
    return f"{GALLERY_PHOTO}: its sha256 {sha256[:12]}... is photo #{photo_id} ({path_text(path)})."


def query_warnings(query: SearchQuery, gallery_photo: Callable[[str], tuple[int, str] | None]) -> list[str]:
    """The warnings to record with a search run with ``query``. ``gallery_photo``: the gallery's
    photo (id, path) with a given sha256, or None."""
    warnings = []
    source = query.file_bytes  # a file searched with, or the scan a sketch was drawn over
    try:
        if query.kind == QueryKind.FILE and source is not None:
            picture = decode_image(query.png, query.name)  # the report picture of the file (512 a side)
        elif source is not None:
            picture = decode_image(source, query.name, at_least=MEASURE_SIDE, sketch=True)
        else:
            picture = decode_image(query.png, query.name)
        warning = photo_like_warning(colour_share(picture))
    except ImageLoadError:
        warning = ""  # the query itself was decoded to be searched; nothing to check beyond that
    if warning:
        warnings.append(warning)
    if source is not None:
        digest = hashlib.sha256(source).hexdigest()
        warning = gallery_photo_warning(digest, gallery_photo(digest))
        if warning:
            warnings.append(warning)
    return warnings
