"""Inference on ONNX Runtime: what the app and the command line embed with when the model has an
ONNX export. It starts in a fraction of torch's time, needs no torch at all (so the desktop package
leaves it out) and is faster per image on the CPU (benchmarks/results/startup.md).

Each ONNX file takes preprocessed images and returns the unit embedding (the mirror image already
averaged in when the manifest asks for it) and each attribute's logits, as
:meth:`core.model.inference.InferenceModel.embed_preprocessed` computes them on torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.common import environment
from core.common.errors import CheckpointError
from core.model.embedded import EmbeddedBatch, EmbeddingModel, PredictedAttribute
from core.model.manifest import Manifest, verified_manifest, verified_onnx_model
from core.model.modality import Modality
from core.model.onnx_names import EMBEDDING_OUTPUT, IMAGE_INPUT, attribute_output

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


@dataclass(frozen=True)
class RuntimeDevice:
    type: str  # "cpu" or "cuda", as torch.device names them

    def __str__(self) -> str:
        return self.type


def cuda_provider_available() -> bool:
    import onnxruntime

    return CUDA_PROVIDER in onnxruntime.get_available_providers()


class OnnxInferenceModel(EmbeddingModel):
    """A model folder whose manifest names its ONNX files, loaded into two ONNX Runtime sessions."""

    runtime = "onnxruntime"

    def __init__(self, folder: Path, device: str = "cpu", batch_size: int = 32, threads: int | None = None):
        try:
            import onnxruntime
        except ImportError:
            raise CheckpointError("ONNX Runtime is not installed (pip install onnxruntime)") from None
        self.folder: Path | None = Path(folder)
        self.manifest: Manifest = verified_manifest(self.folder)
        if device == "cuda" and not cuda_provider_available():
            raise CheckpointError("ONNX Runtime here has no CUDA provider (install onnxruntime-gpu, or use torch)")
        self.device = RuntimeDevice("cuda" if device == "cuda" else "cpu")
        self.batch_size = batch_size
        providers = [CUDA_PROVIDER, CPU_PROVIDER] if self.device.type == "cuda" else [CPU_PROVIDER]
        self._sessions = {}
        for modality in Modality:
            options = onnxruntime.SessionOptions()
            # every graph optimisation (operator fusion, constant folding): the measured setting
            # (benchmarks/results/startup.md)
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = threads if threads is not None else environment.threads()
            if modality is Modality.PHOTO:
                # photos are embedded while other threads decode the next ones: a worker waiting for
                # work sleeps rather than spins, leaving them its core (benchmarks/results/performance.md)
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            # from the bytes that were checked: no second read of the file, and nothing from beside it
            path, data = verified_onnx_model(self.folder, self.manifest, modality)
            try:
                self._sessions[modality] = onnxruntime.InferenceSession(data, options, providers=providers)
            except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
                raise CheckpointError(f"{path}: ONNX Runtime cannot load it ({exc})") from None
        self._attribute_names = [a.name for a in self.manifest.attribute_schema.attributes]

    def embed_preprocessed(self, batch: np.ndarray, modality: Modality | str) -> EmbeddedBatch:
        """Preprocessed N x 3 x H x W float32 -> embeddings, in chunks of ``batch_size``."""
        if len(batch) == 0:
            return EmbeddedBatch(np.empty((0, self.embedding_dim), np.float32), [])
        session = self._sessions[Modality(modality)]
        wanted = [EMBEDDING_OUTPUT]
        if self.predicts_attributes:
            wanted += [attribute_output(name) for name in self._attribute_names]
        embeddings, attributes = [], []
        for start in range(0, len(batch), self.batch_size):
            chunk = np.ascontiguousarray(batch[start : start + self.batch_size], dtype=np.float32)
            outputs = session.run(wanted, {IMAGE_INPUT: chunk})
            embeddings.append(outputs[0])
            if self.predicts_attributes:
                attributes.extend(self._decode_attributes(outputs[1:]))
            else:
                attributes.extend({} for _ in range(len(chunk)))
        return EmbeddedBatch(np.concatenate(embeddings).astype(np.float32, copy=False), attributes)

    def _decode_attributes(self, logits: list[np.ndarray]) -> list[dict[str, PredictedAttribute]]:
        schema = self.manifest.attribute_schema
        decoded = {}
        for name, values in zip(self._attribute_names, logits):
            values = values.astype(np.float64)
            exp = np.exp(values - values.max(axis=1, keepdims=True))  # a stable softmax
            probabilities = exp / exp.sum(axis=1, keepdims=True)
            decoded[name] = (probabilities.max(axis=1), probabilities.argmax(axis=1))
        count = len(logits[0]) if logits else 0
        return [
            {
                name: PredictedAttribute(schema.spec(name).values[int(index[i])], float(confidence[i]))
                for name, (confidence, index) in decoded.items()
            }
            for i in range(count)
        ]
