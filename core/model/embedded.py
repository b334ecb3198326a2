"""What any inference runtime returns, and what the catalogue, import and search ask of a loaded
model (no torch here: the app's inference runs on ONNX Runtime, training and CUDA on torch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from core.model.manifest import Manifest
from core.model.modality import Modality


@dataclass(frozen=True)
class PredictedAttribute:
    value: str
    confidence: float


@dataclass(frozen=True)
class EmbeddedBatch:
    embeddings: np.ndarray  # N x D float32, unit rows
    attributes: list[dict[str, PredictedAttribute]]  # one dict per image; empty if the head is untrained


class Device(Protocol):
    type: str  # "cpu" or "cuda"


class EmbeddingModel(Protocol):
    """A loaded model: torch's :class:`~core.model.inference.InferenceModel` or ONNX Runtime's
    :class:`~core.model.onnx_inference.OnnxInferenceModel`."""

    manifest: Manifest
    device: Device
    runtime: str  # "torch" or "onnxruntime", shown beside the device
    folder: Path | None

    @property
    def sha256(self) -> str: ...

    @property
    def embedding_key(self) -> str: ...

    @property
    def embedding_dim(self) -> int: ...

    @property
    def predicts_attributes(self) -> bool: ...

    def preprocess(self, image: np.ndarray, modality: Modality | str) -> np.ndarray: ...

    def embed_images(self, images: Sequence[np.ndarray], modality: Modality | str) -> EmbeddedBatch: ...

    def embed_preprocessed(self, batch: np.ndarray, modality: Modality | str) -> EmbeddedBatch: ...
