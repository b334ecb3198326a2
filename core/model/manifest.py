"""The checkpoint manifest (``manifest.json``): what a model is, how its inputs are prepared and
where it came from. Read without torch, so that commands that need no model never load it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import safe_open

from core.common.errors import CheckpointError
from core.model.attributes import AttributeSchema
from core.model.modality import Modality
from core.model.preprocess import PreprocessConfig

WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class OnnxFile:
    """An encoder exported to ONNX beside the weights (see core.model.onnx_export)."""

    file: str  # a name inside the model folder
    sha256: str

    def to_json(self) -> dict:
        return {"file": self.file, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: dict) -> OnnxFile:
        name = str(data["file"])
        if Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"an ONNX file must be named inside the model folder, got {name!r}")
        return cls(file=name, sha256=str(data["sha256"]))


@dataclass(frozen=True)
class Manifest:
    name: str
    backbone: str
    embedding_dim: int
    preprocess: dict[Modality, PreprocessConfig]
    attribute_schema: AttributeSchema
    attribute_head_trained: bool
    provenance: dict = field(default_factory=dict)  # command, data, split, seed, commit, metrics ...
    weights_sha256: str = ""
    shared_backbone: bool = False  # the encoders' convolutions share weights (see SketchPhotoNet)
    # an embedding is the mean of the image's and its mirror image's (both unit length): a person
    # walking left is the same person walking right, and a sketch may be drawn either way round
    test_time_flip: bool = False
    parts: int = 1  # horizontal stripes pooled side by side (see ModalityEncoder)
    part_columns: int = 1  # columns of the pooling grid
    feature_stride: int = 32  # where the backbone is cut (32: the whole backbone)
    # who may use the weights, and the terms of the data they were trained on (shown in the About box)
    licence: str = ""
    data_terms: str = ""
    # each encoder exported to ONNX (what the app and the command line run on ONNX Runtime);
    # empty when the model was not exported (it then runs on torch)
    onnx: dict[Modality, OnnxFile] = field(default_factory=dict)

    @property
    def embedding_key(self) -> str:
        """Identifies the embeddings this model produces: its weights and every setting that
        changes an embedding. Galleries store vectors under this key, so a change of weights,
        preprocessing or flip re-indexes them instead of mixing incompatible vectors.

        The attribute schema (names and the order of their values) is part of it too: predictions
        are stored beside the vectors as value names read through the schema, so a manifest whose
        values were reordered (gender male/female swapped) predicts the gallery again rather than
        filtering on names that meant the other value.

        The ONNX files are part of it when the model has them: the two runtimes agree to 1e-4
        (tests/core/test_onnx.py), and a re-export is a new key, so a gallery never mixes vectors
        from a graph it was not checked against."""
        settings = {m.value: cfg.to_json() for m, cfg in self.preprocess.items()}
        described = {
            "weights": self.weights_sha256,
            "preprocess": settings,
            "flip": self.test_time_flip,
            "attributes": self.attribute_schema.to_json(),
        }
        if self.onnx:  # absent for a model without an export: its key stays what it was
            described["onnx"] = {m.value: f.sha256 for m, f in self.onnx.items()}
        blob = json.dumps(described, sort_keys=True)  # sorted keys: the same settings always give the same key
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_json(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "backbone": self.backbone,
            "shared_backbone": self.shared_backbone,
            "test_time_flip": self.test_time_flip,
            "parts": self.parts,
            "part_columns": self.part_columns,
            "feature_stride": self.feature_stride,
            "embedding_dim": self.embedding_dim,
            "preprocess": {m.value: cfg.to_json() for m, cfg in self.preprocess.items()},
            "attributes": {"trained": self.attribute_head_trained, "schema": self.attribute_schema.to_json()},
            "provenance": self.provenance,
            "licence": self.licence,
            "data_terms": self.data_terms,
            "weights_sha256": self.weights_sha256,
            **({"onnx": {m.value: f.to_json() for m, f in self.onnx.items()}} if self.onnx else {}),
        }

    @classmethod
    def from_json(cls, data: dict) -> Manifest:
        if not isinstance(data, dict):
            raise CheckpointError(f"the manifest must be a JSON object, not a {type(data).__name__}")
        if data.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"unsupported checkpoint format version {data.get('format_version')}")
        if data.get("dilated"):
            raise CheckpointError("a dilated backbone is not supported: this checkpoint needs an older SketchSearch")
        for name in ("embedding_dim", "parts", "part_columns", "feature_stride"):
            value = data.get(name, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CheckpointError(f"'{name}' must be a positive whole number, got {value!r}")
        # written as 0 by earlier versions, which could also keep early backbone stages per modality
        if data.get("separate_early_stages", 0) != 0:
            raise CheckpointError(
                "'separate_early_stages' (per-modality early backbone stages) is no longer supported: "
                "this checkpoint needs an older SketchSearch"
            )
        return cls(
            name=data["name"],
            backbone=data["backbone"],
            shared_backbone=bool(data.get("shared_backbone", False)),
            test_time_flip=bool(data.get("test_time_flip", False)),
            # absent from older manifests: the whole backbone, one global pool
            parts=int(data.get("parts", 1)),
            part_columns=int(data.get("part_columns", 1)),
            feature_stride=int(data.get("feature_stride", 32)),
            embedding_dim=int(data["embedding_dim"]),
            preprocess={Modality(k): PreprocessConfig.from_json(v) for k, v in data["preprocess"].items()},
            attribute_schema=AttributeSchema.from_json(data["attributes"]["schema"]),
            attribute_head_trained=bool(data["attributes"]["trained"]),
            provenance=data.get("provenance", {}),
            licence=str(data.get("licence", "")),
            data_terms=str(data.get("data_terms", "")),
            weights_sha256=data.get("weights_sha256", ""),
            onnx={Modality(k): OnnxFile.from_json(v) for k, v in data.get("onnx", {}).items()},
        )


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomically(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")
    os.replace(tmp, path)  # 0600 as mkstemp made it: a model trained on a gallery is private like it


def read_manifest(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder}: not a model folder (no {MANIFEST_FILE})")
    try:
        return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: invalid manifest ({exc})") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: invalid manifest ({exc.__class__.__name__}: {exc})") from None


def check_schema_against_weights(weights: Path, manifest: Manifest) -> None:
    """Refuse a manifest whose attribute names or value order differ from the ones the weights were
    saved with (checkpoints written before the weights carried their schema cannot be checked)."""
    try:
        with safe_open(str(weights), "numpy") as handle:
            recorded = (handle.metadata() or {}).get("attribute_schema")
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a broken file
        raise CheckpointError(f"{weights}: unreadable ({exc})") from None
    if recorded is not None and json.loads(recorded) != manifest.attribute_schema.to_json():
        raise CheckpointError(
            f"{weights}: the manifest's attribute schema (names or value order) differs from the one "
            "these weights were saved with; the manifest was edited"
        )


def verified_manifest(folder: Path) -> Manifest:
    """The manifest of a checkpoint folder whose weights file is the one it names: the sha256 is
    required and must match (a corrupt copy or modified weights are refused), and the attribute
    schema must be the one the weights were saved with."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS_FILE}")
    if not manifest.weights_sha256:
        raise CheckpointError(
            f"{folder / MANIFEST_FILE}: no weights_sha256, so the weights cannot be checked and are not loaded "
            "(export the model again with sketchsearch-train)"
        )
    actual = file_sha256(weights)
    if actual != manifest.weights_sha256:
        raise CheckpointError(f"{weights}: sha256 {actual[:12]}... does not match the manifest (corrupt copy?)")
    check_schema_against_weights(weights, manifest)
    return manifest


def verified_onnx_model(folder: Path, manifest: Manifest, modality: Modality) -> tuple[Path, bytes]:
    """``modality``'s ONNX file and its bytes, after checking they are the ones the manifest names and
    hold every weight themselves. The bytes checked are the bytes to load (never the file read
    again), and a file whose weights live outside it (ONNX external data, covered by no hash) is
    refused."""
    from core.model.onnx_external import MalformedOnnx, external_tensors

    named = manifest.onnx.get(Modality(modality))
    if named is None:
        raise CheckpointError(f"{folder}: the manifest names no ONNX file for {Modality(modality).value}s")
    path = Path(folder) / named.file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (the manifest names it; export the model again)") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: unreadable ({exc.strerror or exc})") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != named.sha256:
        raise CheckpointError(f"{path}: sha256 {actual[:12]}... does not match the manifest (corrupt copy?)")
    try:
        external = external_tensors(data)
    except MalformedOnnx as exc:
        raise CheckpointError(f"{path}: not a readable ONNX model ({exc})") from None
    if external:
        files = sorted({location for _, location in external if location})
        where = f"in {', '.join(repr(f) for f in files[:3])}" if files else "in other files"
        raise CheckpointError(
            f"{path}: its weights are stored outside it (external data of {len(external)} tensor(s), {where}), "
            "which the manifest's sha256 does not cover; it is not loaded (export the model again)"
        )
    return path, data
