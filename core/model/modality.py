"""The two kinds of image the network embeds (no torch here: the catalogue and search use it too)."""

from __future__ import annotations

from enum import Enum


class Modality(str, Enum):
    PHOTO = "photo"
    SKETCH = "sketch"
