"""Export a checkpoint's two encoders (and the attribute head) to ONNX beside its safetensors, so
that inference can run on ONNX Runtime without torch. Each file computes exactly what
:meth:`InferenceModel.embed_preprocessed` does on the CPU: the unit embedding (with the mirror
image averaged in when the manifest asks for it) and one logits output per attribute."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import CheckpointError
from core.model.checkpoint import load_checkpoint
from core.model.manifest import Manifest
from core.model.modality import Modality
from core.model.network import SketchPhotoNet

EMBEDDING_OUTPUT = "embedding"
IMAGE_INPUT = "image"


def onnx_file(folder: Path, modality: Modality | str) -> Path:
    """Where a modality's encoder is exported: ``photo.onnx`` / ``sketch.onnx`` beside the weights."""
    return Path(folder) / f"{Modality(modality).value}.onnx"


def attribute_output(name: str) -> str:
    return f"attribute.{name}"


class _ExportedEncoder(nn.Module):
    """Preprocessed N x 3 x H x W -> (unit embedding, logits of each attribute), as inference computes them."""

    def __init__(self, network: SketchPhotoNet, manifest: Manifest, modality: Modality):
        super().__init__()
        self.encoder = network.encoder(modality)
        self.head = network.attributes if manifest.attribute_head_trained else None
        self.flip = manifest.test_time_flip
        self.names = [a.name for a in manifest.attribute_schema.attributes] if self.head is not None else []

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        embedding = self.encoder(images).embedding
        unit = F.normalize(embedding, dim=1)
        if self.flip:
            mirrored = self.encoder(images.flip(3)).embedding
            unit = F.normalize(unit + F.normalize(mirrored, dim=1), dim=1)
            embedding = (embedding + mirrored) / 2
        if self.head is None:
            return (unit,)
        logits = self.head(embedding)
        return (unit, *(logits[name] for name in self.names))


def export_onnx(folder: Path) -> dict[Modality, Path]:
    """Write ``photo.onnx`` and ``sketch.onnx`` into the checkpoint ``folder``; returns their paths."""
    network, manifest = load_checkpoint(Path(folder))
    written = {}
    for modality in Modality:
        module = _ExportedEncoder(network, manifest, modality).eval()
        config = manifest.preprocess[modality]
        example = torch.zeros(1, 3, config.height, config.width)
        outputs = [EMBEDDING_OUTPUT, *(attribute_output(n) for n in module.names)]
        path = onnx_file(folder, modality)
        try:
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=[IMAGE_INPUT],
                output_names=outputs,
                dynamic_axes={name: {0: "batch"} for name in (IMAGE_INPUT, *outputs)},
                dynamo=False,  # the TorchScript exporter needs only the onnx package
            )
        except (ImportError, torch.onnx.OnnxExporterError) as exc:
            raise CheckpointError(f"{folder}: cannot export to ONNX ({exc}); install the 'onnx' extra") from None
        written[modality] = path
    return written
