"""A scanned or photographed paper sketch -> a clean greyscale background for the canvas:
greyscale, auto-contrast, cropped to the drawing, scaled to a comfortable canvas size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.imaging import load_rgb

MAX_SIDE = 800  # canvas pixels; the model looks at far fewer
MARGIN = 0.04  # of the content size, kept around the crop


def auto_contrast(grey: np.ndarray, low_percent: float = 1.0, high_percent: float = 99.0) -> np.ndarray:
    """Stretch the 1st..99th percentile to 0..255 (paper becomes white, pencil dark)."""
    low, high = np.percentile(grey, [low_percent, high_percent])
    if high - low < 1:
        return grey.copy()
    stretched = (grey.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(stretched, 0, 255).astype(np.uint8)


def content_box(grey: np.ndarray, threshold: int = 200) -> tuple[int, int, int, int] | None:
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


def prepare_scan(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = auto_contrast(grey)
    box = content_box(grey)
    if box is not None:
        x0, y0, x1, y1 = box
        pad_x, pad_y = int((x1 - x0) * MARGIN) + 2, int((y1 - y0) * MARGIN) + 2
        height, width = grey.shape
        grey = grey[max(0, y0 - pad_y): min(height, y1 + pad_y), max(0, x0 - pad_x): min(width, x1 + pad_x)]
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
    return prepare_scan(load_rgb(path))
