"""Which runtime a model is loaded on: ONNX Runtime when the model has an ONNX export (the app, the
command line, the desktop package, which carries no torch), torch otherwise and for a GPU that
ONNX Runtime cannot drive. Reading this module imports neither."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from core.common import environment
from core.common.errors import CheckpointError
from core.model.embedded import EmbeddingModel
from core.model.manifest import read_manifest

log = logging.getLogger(__name__)

RUNTIMES = environment.RUNTIMES


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def nvidia_gpu_present() -> bool:
    """An NVIDIA driver is loaded (Linux), checked without importing torch: importing it costs
    seconds, and on a machine without a GPU it would be for nothing."""
    return Path("/proc/driver/nvidia/version").exists()


def requested_device(device: str | None) -> str:
    """``device`` (or ``SKETCHSEARCH_DEVICE``): 'auto', 'cpu' or 'cuda'."""
    return (device or environment.device() or "auto").lower()


def load_model(
    folder: Path, device: str | None = None, *, runtime: str | None = None, threads: int | None = None
) -> EmbeddingModel:
    """Load the model in ``folder`` on ``runtime`` ('auto', 'onnxruntime' or 'torch'; default
    ``SKETCHSEARCH_RUNTIME`` or auto). Auto runs ONNX Runtime when the manifest names an ONNX export
    and it is installed, except that a GPU which only torch can drive is used through torch."""
    folder = Path(folder)
    device = requested_device(device)
    runtime = (runtime or environment.runtime() or "auto").lower()
    if runtime not in RUNTIMES:
        raise CheckpointError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    chosen = runtime == "auto"
    if chosen:
        runtime = _choose_runtime(folder, device)
    if runtime == "onnxruntime":
        from core.model.onnx_inference import OnnxInferenceModel, cuda_provider_available

        if device == "cuda" and not cuda_provider_available():
            log.warning("CUDA was asked for, but this ONNX Runtime has no CUDA provider; using the CPU")
            device = "cpu"
        return OnnxInferenceModel(folder, "cuda" if device == "cuda" else "cpu", threads=threads)
    if not installed("torch"):
        if not chosen:
            raise CheckpointError("the torch runtime was asked for, but torch is not installed here")
        raise CheckpointError(
            f"{folder}: this model has no ONNX export and torch is not installed here; export it on a "
            f"machine with the training install: sketchsearch-train export-onnx {folder}"
        )
    import torch

    from core.model.inference import InferenceModel

    if threads:
        torch.set_num_threads(threads)
    return InferenceModel(folder, device)


def _choose_runtime(folder: Path, device: str) -> str:
    if not read_manifest(folder).onnx or not installed("onnxruntime"):
        return "torch"
    if device == "cpu":
        return "onnxruntime"
    from core.model.onnx_inference import cuda_provider_available

    if cuda_provider_available():
        return "onnxruntime"
    gpu_wanted = device == "cuda" or (device == "auto" and nvidia_gpu_present())
    return "torch" if gpu_wanted and installed("torch") else "onnxruntime"
