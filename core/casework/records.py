"""Typed casework records that leave ``core/casework`` (the GUI and the CLI see these, never rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class ReviewMark(str, Enum):
    """A person's decision on a candidate. CLEAR withdraws an earlier mark (back to not reviewed)."""

    POSSIBLE = "possible"  # a possible lead, to be followed up
    EXCLUDED = "excluded"  # looked at and ruled out
    CLEAR = "clear"

    @property
    def label(self) -> str:
        return {"possible": "possible lead", "excluded": "excluded", "clear": "not reviewed"}[self.value]


class QueryKind(str, Enum):
    STROKES = "strokes"  # drawn in the window: strokes JSON and the PNG the model was given
    FILE = "file"  # a sketch file: its bytes as read


@dataclass(frozen=True)
class CaseInfo:
    id: int
    number: str
    title: str
    operator: str
    notes: str
    opened_at: datetime
    closed_at: datetime | None
    searches: int = 0

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class SearchQuery:
    """What was searched with. ``png`` holds the exact pixels given to the model for a drawn
    sketch; for a file, ``file_bytes`` are those pixels' source and ``png`` a picture for reports."""

    kind: QueryKind
    name: str
    png: bytes
    strokes_json: str | None = None
    file_bytes: bytes | None = None


@dataclass(frozen=True)
class GalleryState:
    photos: int
    last_import: int | None  # id of the newest import run, None before the first


@dataclass(frozen=True)
class RecordedCandidate:
    rank: int
    photo_id: int
    photo_sha256: str
    score: float
    thumbnail: bytes  # JPEG, kept with the record: a pruned photo still shows in old records


@dataclass(frozen=True)
class SearchRevision:
    """One ranking of a recorded search (revision 1, or a re-rank with other filters or K)."""

    id: int
    search_id: int
    revision: int
    model_name: str
    embedding_key: str
    gallery: GalleryState
    filters: dict[str, str]
    min_confidence: float
    top_k: int
    started_at: datetime
    finished_at: datetime
    operator: str
    audit_seq: int
    candidates: list[RecordedCandidate] = field(default_factory=list)
    query_warnings: list[str] = field(default_factory=list)  # as recorded in its audit entry
    origin: str = ""  # where a ranking copied from another search comes from, as its audit entry says


@dataclass(frozen=True)
class RecordedSearch:
    id: int
    case_id: int | None
    query_kind: QueryKind
    query_name: str
    query_sha256: str
    query_png: bytes
    operator: str
    app_version: str
    created_at: datetime
    revisions: list[SearchRevision] = field(default_factory=list)

    @property
    def latest(self) -> SearchRevision:
        return self.revisions[-1]

    @property
    def origin(self) -> str:
        """Empty for a search run here; else where its ranking was taken over from."""
        return self.revisions[0].origin if self.revisions else ""


@dataclass(frozen=True)
class Review:
    search_id: int
    photo_id: int
    photo_sha256: str
    rank: int
    mark: ReviewMark
    note: str
    operator: str
    at: datetime


@dataclass(frozen=True)
class CaseMark:
    """A case's newest decision on a photo, in whichever of the case's searches it was made (a
    withdrawn mark is none): what a later search of the case shows on that photo's card."""

    photo_id: int
    mark: ReviewMark
    search_id: int
    rank: int
    note: str
    operator: str
    at: datetime


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    kind: str
    operator: str
    case_id: int | None
    payload: dict
    content_sha256: str
    prev_sha256: str
    entry_sha256: str

    def to_json(self) -> dict:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "operator": self.operator,
            "case_id": self.case_id,
            "payload": self.payload,
            "content_sha256": self.content_sha256,
            "prev_sha256": self.prev_sha256,
            "entry_sha256": self.entry_sha256,
        }


@dataclass(frozen=True)
class AuditCheck:
    ok: bool
    entries: int
    head_sha256: str  # of the newest entry (the genesis value for an empty log)
    first_bad: int | None = None  # seq of the first entry found altered, removed or out of order
    problem: str = ""  # the first problem found
    problems: tuple[str, ...] = ()  # every problem found (records checked after an intact chain)


@dataclass(frozen=True)
class ReplayReport:
    search_id: int
    revision: int
    identical: bool
    differences: list[str]
    candidates: list[tuple[int, str, float]]  # (photo id, sha256, score) ranked now
