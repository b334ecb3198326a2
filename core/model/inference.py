"""Batched inference: images in, L2-normalised embeddings and attribute predictions out.

CUDA is used when available (float16 autocast there), the CPU otherwise (float32). A model whose
manifest sets ``test_time_flip`` embeds each image and its mirror image and averages the two."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.common import environment
from core.model.checkpoint import Manifest, load_checkpoint
from core.model.embedded import EmbeddedBatch, EmbeddingModel, PredictedAttribute  # noqa: F401 - re-exported
from core.model.network import Modality, SketchPhotoNet

log = logging.getLogger(__name__)


def choose_device(requested: str | None = None) -> torch.device:
    """``requested`` (or ``SKETCHSEARCH_DEVICE``) is 'auto', 'cpu' or 'cuda'; auto prefers CUDA."""
    requested = (requested or environment.device() or "auto").lower()
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        log.warning("CUDA was asked for but is not available; using the CPU")
        return torch.device("cpu")
    return torch.device(requested)


class InferenceModel(EmbeddingModel):
    """A loaded checkpoint ready to embed photos and sketches, on torch (training's validation, CUDA,
    and models without an ONNX export; see core.model.loading)."""

    runtime = "torch"

    def __init__(self, folder: Path, device: str | None = None, batch_size: int = 32):
        network, manifest = load_checkpoint(Path(folder))
        self._attach(network, manifest, choose_device(device), batch_size)
        self.folder: Path | None = Path(folder)  # where it was loaded from (a model adapted from it starts here)

    @classmethod
    def from_network(
        cls, network: SketchPhotoNet, manifest: Manifest, device: torch.device | str | None = None, batch_size: int = 64
    ) -> InferenceModel:
        """Wrap a network held in memory (validation during training) so that it is preprocessed,
        run and decoded exactly as a loaded checkpoint is. The network is put in eval mode; a
        training loop puts it back in train mode itself."""
        model = cls.__new__(cls)
        model.folder = None
        device = torch.device(device) if device is not None else next(network.parameters()).device
        model._attach(network, manifest, device, batch_size)
        return model

    def _attach(self, network: SketchPhotoNet, manifest: Manifest, device: torch.device, batch_size: int) -> None:
        self.manifest = manifest
        self.device = device
        self.batch_size = batch_size
        self.network = network.to(self.device).eval()

    @torch.inference_mode()
    def embed_preprocessed(self, batch: np.ndarray, modality: Modality | str) -> EmbeddedBatch:
        """Preprocessed N x 3 x H x W float32 -> embeddings, in chunks of ``batch_size``."""
        if len(batch) == 0:
            return EmbeddedBatch(np.empty((0, self.embedding_dim), np.float32), [])
        encoder = self.network.encoder(modality)
        embeddings, attributes = [], []
        for start in range(0, len(batch), self.batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(batch[start : start + self.batch_size]))
            chunk = chunk.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
                embedding = encoder(chunk).embedding.float()
                unit = F.normalize(embedding, dim=1)
                if self.manifest.test_time_flip:
                    mirrored = encoder(chunk.flip(3)).embedding.float()
                    unit = F.normalize(unit + F.normalize(mirrored, dim=1), dim=1)
                    embedding = (embedding + mirrored) / 2  # what the attribute head reads
                if self.predicts_attributes:
                    attributes.extend(self._decode_attributes(self.network.attributes(embedding)))
                else:
                    attributes.extend({} for _ in range(len(chunk)))
            embeddings.append(unit.cpu().numpy())
        return EmbeddedBatch(np.concatenate(embeddings).astype(np.float32, copy=False), attributes)

    def _decode_attributes(self, logits: dict[str, torch.Tensor]) -> list[dict[str, PredictedAttribute]]:
        schema = self.manifest.attribute_schema
        per_image: list[dict[str, PredictedAttribute]] = []
        decoded = {}
        for name, values in logits.items():
            probabilities = values.float().softmax(dim=1)
            confidence, index = probabilities.max(dim=1)
            decoded[name] = (confidence.cpu().tolist(), index.cpu().tolist())
        count = len(next(iter(decoded.values()))[0]) if decoded else 0
        for i in range(count):
            per_image.append(
                {
                    name: PredictedAttribute(schema.spec(name).values[idx[i]], float(conf[i]))
                    for name, (conf, idx) in decoded.items()
                }
            )
        return per_image
