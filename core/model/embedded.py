"""What any inference runtime returns, and what the catalogue, import and search ask of a loaded
model (no torch here: the app's inference runs on ONNX Runtime, training and CUDA on torch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from core.common.errors import CheckpointError
from core.model.manifest import Manifest
from core.model.modality import Modality
from core.model.preprocess import preprocess


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


class EmbeddingModel:
    """A loaded model: torch's :class:`~core.model.inference.InferenceModel` or ONNX Runtime's
    :class:`~core.model.onnx_inference.OnnxInferenceModel`. What they share lives here; each runs
    :meth:`embed_preprocessed` on its own runtime."""

    manifest: Manifest
    device: Device
    runtime: str  # "torch" or "onnxruntime", shown beside the device
    folder: Path | None  # where it was loaded from (a model adapted from it starts here)
    batch_size: int

    @property
    def sha256(self) -> str:
        """The weights file's sha256 (what a person compares with a manifest)."""
        return self.manifest.weights_sha256

    @property
    def embedding_key(self) -> str:
        """What stored embeddings are filed under (see :attr:`Manifest.embedding_key`)."""
        return self.manifest.embedding_key

    @property
    def embedding_dim(self) -> int:
        return self.manifest.embedding_dim

    @property
    def predicts_attributes(self) -> bool:
        return self.manifest.attribute_head_trained

    def preprocess(self, image: np.ndarray, modality: Modality | str) -> np.ndarray:
        return preprocess(image, self.manifest.preprocess[Modality(modality)])

    def embed_images(self, images: Sequence[np.ndarray], modality: Modality | str) -> EmbeddedBatch:
        """Decoded RGB uint8 images of any size -> embeddings (preprocessing included)."""
        inputs = [self.preprocess(image, modality) for image in images]
        return self.embed_preprocessed(np.stack(inputs) if inputs else np.empty((0, 3, 1, 1), np.float32), modality)

    def embed_preprocessed(self, batch: np.ndarray, modality: Modality | str) -> EmbeddedBatch:
        """Preprocessed N x 3 x H x W float32 -> embeddings, in chunks of ``batch_size``."""
        raise NotImplementedError


def require_finite(batch: EmbeddedBatch, model: EmbeddingModel, modality: Modality | str) -> EmbeddedBatch:
    """``batch`` when every embedding is finite. A model whose weights are damaged (NaN) gives NaN
    embeddings, which rank nothing: a search would show (and record) an empty list, an import would
    store vectors that match nothing. Refused instead, naming the model (the training's collapse
    guard measures non-finite embeddings itself, so this is asked for where embeddings are used)."""
    bad = int((~np.isfinite(batch.embeddings).all(axis=1)).sum()) if batch.embeddings.size else 0
    if bad:
        raise CheckpointError(
            f"{model.folder or model.manifest.name}: the model produced non-finite embeddings (NaN or infinity) "
            f"for {bad} of {len(batch.embeddings)} {Modality(modality).value} image(s); its weights are damaged, "
            "so nothing was searched or stored"
        )
    return batch
