"""Sketch clean-up: a scan, a photo of paper or a canvas render -> the drawing alone, framed.

Greyscale, auto-contrast (paper white, pencil dark) and a crop to the drawn marks with a small
margin. Scans come with grey paper and wide margins, canvas renders with empty space around a
figure; after this step both frame the person as the training sketches did. A model whose
manifest asks for it (``PreprocessConfig.clean_sketch``) gets it in training and at search time.
"""

from __future__ import annotations

import cv2
import numpy as np

INK_THRESHOLD = 200  # grey level below which a pixel counts as drawn, after auto-contrast
MARGIN = 0.04  # of the drawing's size, kept around the crop


def auto_contrast(grey: np.ndarray, low_percent: float = 1.0, high_percent: float = 99.0) -> np.ndarray:
    """Stretch the 1st..99th percentile to 0..255 (paper becomes white, pencil dark)."""
    low, high = np.percentile(grey, [low_percent, high_percent])
    if high - low < 1:
        return grey.copy()
    stretched = (grey.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(stretched, 0, 255).astype(np.uint8)


def content_box(grey: np.ndarray, threshold: int = INK_THRESHOLD) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) around the dark marks, ignoring specks; None on a blank page."""
    ink = (grey < threshold).astype(np.uint8)
    ink = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    ys, xs = np.nonzero(ink)
    if len(xs) == 0:
        return None
    # robust to a few stray marks at the page edges: keep the central 99.6 % of ink
    x0, x1 = np.percentile(xs, [0.2, 99.8]).astype(int)
    y0, y1 = np.percentile(ys, [0.2, 99.8]).astype(int)
    return int(x0), int(y0), int(x1) + 1, int(y1) + 1


def crop_to_ink(grey: np.ndarray, margin: float = MARGIN) -> np.ndarray:
    """Auto-contrasted greyscale cropped to its drawing plus ``margin``; a blank page stays whole."""
    grey = auto_contrast(grey)
    box = content_box(grey)
    if box is None:
        return grey
    x0, y0, x1, y1 = box
    pad_x, pad_y = int((x1 - x0) * margin) + 2, int((y1 - y0) * margin) + 2
    height, width = grey.shape
    return grey[max(0, y0 - pad_y) : min(height, y1 + pad_y), max(0, x0 - pad_x) : min(width, x1 + pad_x)]


def clean_sketch(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB -> the cleaned, cropped drawing as h x w x 3 uint8 (three equal channels)."""
    grey = crop_to_ink(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2RGB)
