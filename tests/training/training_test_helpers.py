"""Helpers shared by the training tests (kept out of conftest.py so test modules can import them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Real Market-1501 training identities (listed in market_attribute.mat's train part).
MARKET_IDS = ("0002", "0007", "0010", "0011")


def write_image(path: Path, seed: int, size: tuple[int, int] = (64, 128)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path
