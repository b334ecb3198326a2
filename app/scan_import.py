"""A scanned or photographed paper sketch -> a clean greyscale background for the canvas:
greyscale, auto-contrast, cropped to the drawing, scaled to a comfortable canvas size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.common.imaging import decode_sketch, load_sketch_rgb, read_file_bytes
from core.model.sketch_cleanup import crop_to_ink

MAX_SIDE = 800  # canvas pixels; the model looks at far fewer


def prepare_scan(rgb: np.ndarray) -> np.ndarray:
    grey = crop_to_ink(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    scale = MAX_SIDE / max(grey.shape)
    if scale < 1:
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    elif scale > 2:  # tiny scans: enlarge so drawing over them is comfortable
        size = (round(grey.shape[1] * 2), round(grey.shape[0] * 2))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(grey)


def load_scan(path: str | Path) -> np.ndarray:
    """Read a sketch image file (raises core's ImageLoadError with the reason) and prepare it."""
    return prepare_scan(load_sketch_rgb(path))


def load_scan_with_bytes(path: str | Path) -> tuple[np.ndarray, bytes]:
    """The prepared scan and the file's bytes it was decoded from (kept with recorded searches)."""
    data = read_file_bytes(path)
    return prepare_scan(np.asarray(decode_sketch(data, path))), data
