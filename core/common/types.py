"""Typed records that leave ``core`` (the GUI, the CLI and training see these, never ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class AttributeSource(str, Enum):
    MODEL = "model"  # predicted by the model's attribute head, with a confidence
    IMPORTED = "imported"  # from a CSV the user imported
    MANUAL = "manual"  # set by hand; wins over everything else

    @property
    def label(self) -> str:
        """What a person reads: a model's value is a prediction, never a statement."""
        return {
            AttributeSource.MODEL: "predicted",
            AttributeSource.IMPORTED: "imported",
            AttributeSource.MANUAL: "manual",
        }[self]

    @property
    def priority(self) -> int:
        return {AttributeSource.MODEL: 0, AttributeSource.IMPORTED: 1, AttributeSource.MANUAL: 2}[self]


class FileCheck(str, Enum):
    """A catalogued photo's file now, against what was imported."""

    OK = "ok"  # same size and modification time, or the same content (sha256)
    MISSING = "missing"  # gone, or no longer a readable file: the result is the photo as imported
    CHANGED = "changed"  # other content at the path: the ranked embedding is of the old photo

    @property
    def warning(self) -> str:
        """What a person reviewing the result must be told ('' when nothing)."""
        return {
            FileCheck.OK: "",
            FileCheck.MISSING: "file missing since import",
            FileCheck.CHANGED: "file changed since import",
        }[self]


@dataclass(frozen=True)
class AttributeValue:
    value: str
    confidence: float  # 1.0 for manual and imported values
    source: AttributeSource
    # for manual and imported values: the operator who stated it and when (UTC, naive); None for
    # predictions and for values recorded before the catalogue kept them
    set_by: str | None = None
    set_at: datetime | None = None

    def to_json(self) -> dict:
        """Where the value comes from, in words a reader of an export understands."""
        return {
            "value": self.value,
            "source": self.source.label,
            "confidence": round(float(self.confidence), 4),
            "set_by": self.set_by,
            "set_at": self.set_at.isoformat(timespec="seconds") + "Z" if self.set_at else None,
        }


@dataclass(frozen=True)
class PhotoRecord:
    id: int
    path: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    imported_at: datetime
    source_folder: str
    missing: bool = False
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    mtime_ns: int = 0


@dataclass(frozen=True)
class Candidate:
    rank: int  # 1-based
    photo_id: int
    path: str
    score: float  # cosine similarity of sketch and photo embeddings, in [-1, 1]
    attributes: dict[str, AttributeValue]
    file: FileCheck = FileCheck.OK  # the photo's file when the result was made


@dataclass(frozen=True)
class SearchResult:
    query: str  # the sketch's path, or a label for an in-memory sketch
    candidates: list[Candidate]


@dataclass(frozen=True)
class ImportFailure:
    path: str
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """A file not catalogued because its bytes are those of another file, catalogued in its stead."""

    path: str
    of: str


@dataclass(frozen=True)
class ImportProgress:
    done: int  # files handled so far (added, updated, unchanged or failed)
    total: int  # files found
    added: int
    failed: int
    rate: float  # files per second since the start
    current: str = ""


@dataclass
class ImportSummary:
    added: int = 0
    updated: int = 0  # moved files whose path changed, or files whose content changed
    unchanged: int = 0  # catalogued already at the same path
    failed: list[ImportFailure] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    duplicates: list[Duplicate] = field(default_factory=list)  # byte-identical copies, not catalogued twice

    def to_json(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "duplicates": [{"path": d.path, "of": d.of} for d in self.duplicates],
            "failed": [{"path": f.path, "reason": f.reason} for f in self.failed],
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class FolderSummary:
    folder: str
    photos: int
    missing: int
    failed: int = 0  # files under it that its last import recorded as failed


@dataclass(frozen=True)
class ModelInfo:
    name: str
    sha256: str
    backbone: str
    device: str
    attributes_trained: bool
    provenance: dict
    licence: str = ""  # who may use the weights
    data_terms: str = ""  # the terms of the data they were trained on
    loaded: bool = True  # False: the network was not needed (stats, verify ...); device is the one asked for
    runtime: str = ""  # "onnxruntime" or "torch" once loaded


@dataclass(frozen=True)
class CatalogueStats:
    photos: int
    indexed: int
    failed: int  # files that failed in the most recent import of each path
    missing: int
    model: ModelInfo

    def nothing_to_search(self) -> str | None:
        """Why every search of this gallery comes back empty, or None when it can find something."""
        if self.indexed:
            return None
        if not self.photos:
            return "the gallery has no photos: import some first"
        return (
            f"none of the gallery's {self.photos} photo(s) is indexed for model {self.model.name}: "
            "run rebuild-index (the window indexes them when it opens the gallery)"
        )

    def to_json(self) -> dict:
        return {
            "photos": self.photos,
            "indexed": self.indexed,
            "failed": self.failed,
            "missing": self.missing,
            "model": {
                "name": self.model.name,
                "sha256": self.model.sha256,
                "backbone": self.model.backbone,
                "device": self.model.device,
                "runtime": self.model.runtime,
                "attributes_trained": self.model.attributes_trained,
                "loaded": self.model.loaded,
            },
        }


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    problems: list[str]
