"""The checkpoint manifest (``manifest.json``): what a model is, how its inputs are prepared and
where it came from. Read without torch, so that commands that need no model never load it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import CheckpointError
from core.model.attributes import AttributeSchema
from core.model.modality import Modality
from core.model.preprocess import PreprocessConfig

WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


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
    dilated: bool = False  # the whole backbone, dilated past feature_stride instead of cut there

    @property
    def embedding_key(self) -> str:
        """Identifies the embeddings this model produces: its weights and every setting that
        changes an embedding. Galleries store vectors under this key, so a change of weights,
        preprocessing or flip re-indexes them instead of mixing incompatible vectors."""
        settings = {m.value: cfg.to_json() for m, cfg in self.preprocess.items()}
        blob = json.dumps(
            {"weights": self.weights_sha256, "preprocess": settings, "flip": self.test_time_flip}, sort_keys=True
        )  # sorted keys: the same settings always give the same key
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
            "dilated": self.dilated,
            "embedding_dim": self.embedding_dim,
            "preprocess": {m.value: cfg.to_json() for m, cfg in self.preprocess.items()},
            "attributes": {"trained": self.attribute_head_trained, "schema": self.attribute_schema.to_json()},
            "provenance": self.provenance,
            "weights_sha256": self.weights_sha256,
        }

    @classmethod
    def from_json(cls, data: dict) -> Manifest:
        if data.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"unsupported checkpoint format version {data.get('format_version')}")
        return cls(
            name=data["name"],
            backbone=data["backbone"],
            shared_backbone=bool(data.get("shared_backbone", False)),
            test_time_flip=bool(data.get("test_time_flip", False)),
            # absent from older manifests: the whole backbone, one global pool
            parts=int(data.get("parts", 1)),
            part_columns=int(data.get("part_columns", 1)),
            feature_stride=int(data.get("feature_stride", 32)),
            dilated=bool(data.get("dilated", False)),
            embedding_dim=int(data["embedding_dim"]),
            preprocess={Modality(k): PreprocessConfig.from_json(v) for k, v in data["preprocess"].items()},
            attribute_schema=AttributeSchema.from_json(data["attributes"]["schema"]),
            attribute_head_trained=bool(data["attributes"]["trained"]),
            provenance=data.get("provenance", {}),
            weights_sha256=data.get("weights_sha256", ""),
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
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; a manifest is meant to be read by anyone
    os.replace(tmp, path)


def read_manifest(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder}: not a model folder (no {MANIFEST_FILE})")
    try:
        return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid manifest ({exc})") from exc


def verified_manifest(folder: Path) -> Manifest:
    """The manifest, with the sha256 of the weights file as found (a corrupt copy is refused)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS_FILE}")
    actual = file_sha256(weights)
    if manifest.weights_sha256 and actual != manifest.weights_sha256:
        raise CheckpointError(f"{weights}: sha256 {actual[:12]}... does not match the manifest (corrupt copy?)")
    return Manifest(**{**manifest.__dict__, "weights_sha256": actual})
