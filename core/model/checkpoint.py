"""Checkpoint format: a folder with ``model.safetensors`` (weights, no pickle) and ``manifest.json``
(everything needed to rebuild and preprocess for the network, and where it came from)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from core.common.errors import CheckpointError
from core.common.private_files import make_private_folder

# the manifest is read without torch (commands that need no model); re-exported for training
from core.model.manifest import (  # noqa: F401
    FORMAT_VERSION,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    Manifest,
    file_sha256,
    read_manifest,
    verified_manifest,
    write_json_atomically,
)
from core.model.network import SketchPhotoNet


def build_network(manifest: Manifest) -> SketchPhotoNet:
    return SketchPhotoNet(
        manifest.backbone,
        manifest.attribute_schema,
        manifest.embedding_dim,
        shared_backbone=manifest.shared_backbone,
        parts=manifest.parts,
        part_columns=manifest.part_columns,
        feature_stride=manifest.feature_stride,
    )


def save_checkpoint(network: SketchPhotoNet, manifest: Manifest, folder: Path, *, half: bool = False) -> Manifest:
    """Write weights and manifest into ``folder``; returns the manifest with the weights' sha256.

    ``half`` stores floating-point tensors as float16 (half the size; inference casts back)."""
    folder = Path(folder)
    make_private_folder(folder, warn=False)
    state = {}
    for key, tensor in network.state_dict().items():
        # A contiguous copy: safetensors refuses tensors that share memory (tied weights) or are
        # stored channels-last.
        tensor = tensor.detach().cpu().clone(memory_format=torch.contiguous_format)
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        state[key] = tensor
    weights = folder / WEIGHTS_FILE
    # the weights file (whose sha256 the manifest records) carries the attribute schema its head
    # was trained with, so an edited manifest cannot rename the head's outputs unnoticed
    metadata = {"format": "sketchsearch", "attribute_schema": json.dumps(manifest.attribute_schema.to_json())}
    partial = weights.with_name(weights.name + ".tmp")  # whole or not at all, and private
    save_file(state, str(partial), metadata=metadata)
    os.chmod(partial, 0o600)
    os.replace(partial, weights)
    # new weights: an ONNX export of other weights no longer describes them (export_onnx adds it back)
    manifest = Manifest(**{**manifest.__dict__, "weights_sha256": file_sha256(weights), "onnx": {}})
    for modality in manifest.preprocess:  # a stale export left in the folder is never run
        (folder / f"{modality.value}.onnx").unlink(missing_ok=True)
    write_json_atomically(folder / MANIFEST_FILE, manifest.to_json())
    return manifest


def _tied_keys(network: SketchPhotoNet) -> list[list[str]]:
    """State-dict keys that name one shared parameter (the shared backbone's convolutions)."""
    groups: dict[int, list[str]] = {}
    for key, tensor in network.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(key)
    return [keys for keys in groups.values() if len(keys) > 1]


def load_checkpoint(folder: Path) -> tuple[SketchPhotoNet, Manifest]:
    """Rebuild the network from a checkpoint folder, checking the weights against the manifest."""
    folder = Path(folder)
    manifest = verified_manifest(folder)
    weights = folder / WEIGHTS_FILE
    try:
        network = build_network(manifest)
    except ValueError as exc:  # e.g. a feature stride the backbone lacks: a one-line error, not a crash
        raise CheckpointError(f"{folder / MANIFEST_FILE}: describes no network that can be built ({exc})") from None
    try:
        state = load_file(str(weights))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a broken file
        raise CheckpointError(f"{weights}: unreadable ({exc})") from exc
    reference = network.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    for keys in _tied_keys(network):  # stored once per key; loading would keep only the last copy
        stored = [k for k in keys if k in state]  # a missing key fails the load below
        differing = [k for k in stored[1:] if not torch.equal(state[k], state[stored[0]])]
        if differing:
            raise CheckpointError(
                f"{weights}: the manifest says the encoders share weights, but {stored[0]} and {differing[0]} differ"
            )
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights}: weights do not fit the manifest's network ({exc})") from exc
    network.eval()
    return network, manifest
