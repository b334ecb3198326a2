"""Export a checkpoint's two encoders (and the attribute head) to ONNX beside its safetensors, so
that inference can run on ONNX Runtime without torch. Each file computes exactly what
:meth:`InferenceModel.embed_preprocessed` does on the CPU: the unit embedding (with the mirror
image averaged in when the manifest asks for it) and one logits output per attribute. The manifest
then names both files with their sha256 (and so the embedding key covers them)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.common.errors import CheckpointError
from core.model.checkpoint import load_checkpoint
from core.model.manifest import MANIFEST_FILE, Manifest, OnnxFile, file_sha256, write_json_atomically
from core.model.modality import Modality
from core.model.network import SketchPhotoNet
from core.model.onnx_names import EMBEDDING_OUTPUT, IMAGE_INPUT, attribute_output, onnx_file  # noqa: F401


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
    """Write ``photo.onnx`` and ``sketch.onnx`` into the checkpoint ``folder`` and name them in its
    manifest; returns their paths. Each file is written beside itself and moved into place, and the
    manifest last, so an interrupted export leaves a model that still loads (on torch)."""
    folder = Path(folder)
    network, manifest = load_checkpoint(folder)
    written = {}
    for modality in Modality:
        module = _ExportedEncoder(network, manifest, modality).eval()
        config = manifest.preprocess[modality]
        example = torch.zeros(1, 3, config.height, config.width)
        outputs = [EMBEDDING_OUTPUT, *(attribute_output(n) for n in module.names)]
        path = onnx_file(folder, modality)
        partial = path.with_name(path.name + ".partial")
        try:
            with warnings.catch_warnings():
                # the TorchScript exporter is deprecated in favour of torch.export, which needs
                # onnxscript on top; its graphs are checked against torch's to 1e-4 all the same
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(
                    module,
                    (example,),
                    str(partial),
                    input_names=[IMAGE_INPUT],
                    output_names=outputs,
                    dynamic_axes={name: {0: "batch"} for name in (IMAGE_INPUT, *outputs)},
                    dynamo=False,  # the TorchScript exporter needs only the onnx package
                )
        except (ImportError, torch.onnx.OnnxExporterError) as exc:
            partial.unlink(missing_ok=True)
            raise CheckpointError(f"{folder}: cannot export to ONNX ({exc}); install the onnx package") from None
        os.replace(partial, path)
        written[modality] = path
    named = {m: OnnxFile(path.name, file_sha256(path)) for m, path in written.items()}
    write_json_atomically(folder / MANIFEST_FILE, Manifest(**{**manifest.__dict__, "onnx": named}).to_json())
    return written
