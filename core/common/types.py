"""Typed records that leave ``core`` (the GUI, the CLI and training see these, never ORM objects)."""

from __future__ import annotations

import os
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
    video: VideoSource | None = None  # where a photo cut from video was seen


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


def format_time(milliseconds: float) -> str:
    """A time in a video as hh:mm:ss.fff."""
    total = int(round(max(float(milliseconds), 0.0)))
    hours, rest = divmod(total, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


@dataclass(frozen=True)
class VideoSource:
    """Where a photo cut from video was seen: the video (by its sha256 and the path it was imported
    from), the frame and its presentation time, the detector's box on that frame and its score, and
    the track (one person followed across the sampled frames) it is the kept crop of."""

    video_sha256: str
    video_path: str
    frame_index: int  # from 0, in decoding order
    timestamp_ms: float  # the frame's presentation time, from the container
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the frame's pixels (x1, y1 exclusive)
    frame_size: tuple[int, int]  # width, height
    detector: str
    score: float  # the detector's score for the box, 0 to 1: how sure it is that a person is there
    track_id: int  # within the video
    frame_file: str = ""  # the frame as stored at import, beside the crop

    @property
    def time_text(self) -> str:
        return format_time(self.timestamp_ms)

    @property
    def video_name(self) -> str:
        return os.path.basename(self.video_path)

    def describe(self) -> str:
        """One line for a card, a report or the command line."""
        x0, y0, x1, y1 = self.box
        return (
            f"{self.video_name} at {self.time_text} (frame {self.frame_index}), box {x0},{y0}-{x1},{y1}, "
            f"track {self.track_id}, {self.detector} score {self.score:.2f}"
        )

    def to_json(self) -> dict:
        return {
            "video_sha256": self.video_sha256,
            "video_path": self.video_path,
            "frame_index": self.frame_index,
            "timestamp_ms": round(self.timestamp_ms, 3),
            "time": self.time_text,
            "box": list(self.box),
            "frame_size": list(self.frame_size),
            "detector": self.detector,
            "detector_score": round(self.score, 4),
            "track_id": self.track_id,
        }


@dataclass(frozen=True)
class VideoProgress:
    path: str
    stage: str  # "checking" (hashing the file) or "sampling"
    frames_done: int  # sampled frames handled, in this run and before it
    frames_total: int  # about how many frames sampling gives (0: unknown)
    people: int  # tracks kept so far (each one crop)
    rate: float  # sampled frames per second in this run
    seconds_left: float | None  # at this rate; None until known


@dataclass
class VideoSummary:
    path: str
    sha256: str = ""
    status: str = ""  # imported | resumed | unchanged | cancelled | stopped (the file ends early)
    frames_sampled: int = 0  # in this run
    detections: int = 0  # in this run
    tracks: int = 0  # people kept in this run (each one crop, catalogued)
    added: int = 0  # crops added to the gallery in this run
    seconds: float = 0.0
    problem: str = ""  # why decoding stopped early, when it did

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "status": self.status,
            "frames_sampled": self.frames_sampled,
            "detections": self.detections,
            "tracks": self.tracks,
            "added": self.added,
            "seconds": round(self.seconds, 3),
            "problem": self.problem,
        }
