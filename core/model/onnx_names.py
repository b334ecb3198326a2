"""Names shared by the ONNX export (torch) and ONNX Runtime inference (no torch)."""

from __future__ import annotations

from pathlib import Path

from core.model.modality import Modality

EMBEDDING_OUTPUT = "embedding"
IMAGE_INPUT = "image"


def onnx_file(folder: Path, modality: Modality | str) -> Path:
    """Where a modality's encoder is exported: ``photo.onnx`` / ``sketch.onnx`` beside the weights."""
    return Path(folder) / f"{Modality(modality).value}.onnx"


def attribute_output(name: str) -> str:
    return f"attribute.{name}"
