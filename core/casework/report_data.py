"""What a case report states, gathered from the store, the catalogue and the audit log into typed
records (core.casework.report lays them out): each search's query described plainly, the
candidates shown (the top N and every reviewed one) with their files, the OS account each action
ran under, and the region figures where the model open now made the search."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
from PIL import Image
from sqlalchemy import Connection, func, select

from core.casework.records import AuditCheck, CaseInfo, QueryKind, RecordedCandidate, RecordedSearch, Review
from core.casework.regions import QueryRegions, RegionCompare, RegionComparison
from core.casework.store import CaseworkStore
from core.casework.tables import audit_log, reviews, searches
from core.catalogue.catalogue import Catalogue
from core.catalogue.videos import video_sources_by_sha256
from core.common.types import PhotoRecord, VideoSource

DEFAULT_TOP = 10  # candidates shown per search besides every reviewed one
REGION_TOP = 3  # candidates of each search given a region map besides every reviewed one (a map costs a page's time)


@dataclass(frozen=True)
class QueryDescription:
    """What was searched with, in plain words."""

    kind: str  # "sketch file", "drawing", "imported scan" or "drawing over imported scan"
    file_name: str  # the sketch file or scan as it was named ("" for a drawing)
    file_sha256: str  # of that file's bytes as read ("" for a drawing)
    picture_sha256: str  # of the picture the model was given (PNG) for a window search; the file's for a file
    strokes: int  # drawn in the window


@dataclass(frozen=True)
class ShownCandidate:
    candidate: RecordedCandidate
    file_name: str  # "" when the photo is no longer catalogued
    folder: str
    where_note: str  # "" or why the file named may not be the one ranked (removed, missing, replaced)
    review: Review | None
    review_account: str | None  # the OS account the review was recorded under (None: not recorded)
    regions: RegionComparison | None
    video: VideoSource | None = None  # where a crop cut from video was seen (core.video)


@dataclass(frozen=True)
class ReportSearch:
    search: RecordedSearch
    query: QueryDescription
    account: str | None  # OS account of the newest ranking's entry
    shown: list[ShownCandidate]
    total: int  # candidates in the newest ranking
    top: int
    region_top: int  # region maps for the top ``region_top`` and every reviewed candidate
    sketch_view_png: bytes | None  # the query as the model saw it (region grid)
    regions_unavailable: str  # why no region figures, for the search as a whole


@dataclass(frozen=True)
class CaseReport:
    case: CaseInfo
    case_account: str | None
    searches: list[ReportSearch]
    audit: AuditCheck
    sealed: bool
    generated_by: str  # 'J. Smith (OS account: root)'
    app_version: str
    top: int
    region_top: int  # region maps for each search's top ``region_top`` and every reviewed candidate


def describe_query(kind: QueryKind, name: str, png_sha256: str, strokes_json: str | None, file: bytes | None):
    """A search's query in plain words (records older than these words are read the same way)."""
    if kind == QueryKind.FILE:
        return QueryDescription("sketch file", name, png_sha256, png_sha256, 0)
    try:
        strokes = len(json.loads(strokes_json or "{}").get("strokes", []))
    except (ValueError, AttributeError):
        strokes = 0
    if file is None:
        return QueryDescription("drawing", "", "", png_sha256, strokes)
    scan = _scan_name(name)
    kind_text = "drawing over imported scan" if strokes else "imported scan"
    return QueryDescription(kind_text, scan, hashlib.sha256(file).hexdigest(), png_sha256, strokes)


def _scan_name(query_name: str) -> str:
    """The scan's path inside a window search's recorded name ('… scan PATH (file sha256 …)…')."""
    head = query_name.split(" (file sha256 ", 1)[0]
    for prefix in ("drawing over imported scan ", "imported scan ", "scanned sketch "):
        if head.startswith(prefix):
            return head[len(prefix) :]
    return head


def _accounts(c: Connection, seqs: list[int]) -> dict[int, str | None]:
    if not seqs:
        return {}
    rows = c.execute(select(audit_log.c.seq, audit_log.c.payload_json).where(audit_log.c.seq.in_(seqs)))
    found = {}
    for seq, payload in rows:
        try:
            found[seq] = json.loads(payload).get("os_account")
        except (ValueError, AttributeError):
            found[seq] = None
    return found


def _review_seqs(c: Connection, search_id: int) -> dict[int, int]:
    """photo id -> the audit entry of its newest review."""
    r = reviews.c
    newest = select(func.max(r.id)).where(r.search_id == search_id).group_by(r.photo_id).scalar_subquery()
    rows = c.execute(select(r.photo_id, r.audit_seq).where(r.id.in_(newest)))
    return {photo_id: seq for photo_id, seq in rows}


def _query_row(c: Connection, search_id: int) -> tuple[str | None, bytes | None]:
    s = searches.c
    row = c.execute(select(s.query_strokes, s.query_file).where(s.id == search_id)).first()
    return (row[0], row[1]) if row else (None, None)


def _case_seq(c: Connection, case_id: int) -> int | None:
    return c.execute(
        select(func.min(audit_log.c.seq)).where(audit_log.c.case_id == case_id, audit_log.c.kind == "case opened")
    ).scalar()


def _photo_records(catalogue: Catalogue, photo_ids: set[int]) -> dict[int, PhotoRecord]:
    """The catalogue's records of every photo shown, read a few hundred at a time."""
    ids = sorted(photo_ids)
    return {p.id: p for start in range(0, len(ids), 500) for p in catalogue.photos(ids[start : start + 500])}


def _view_png(made: dict[int, bytes], view: np.ndarray | None) -> bytes | None:
    """The query's view as PNG, encoded once for the searches that share it (``made``: by array)."""
    if view is None:
        return None
    if id(view) not in made:
        buffer = io.BytesIO()
        Image.fromarray(view).save(buffer, format="PNG")
        made[id(view)] = buffer.getvalue()
    return made[id(view)]


def shown_candidates(search: RecordedSearch, marks: dict[int, Review], top: int) -> list[RecordedCandidate]:
    """The top ``top`` of the newest ranking and every candidate with a mark, in rank order."""
    return [c for c in search.latest.candidates if c.rank <= top or c.photo_id in marks]


def mapped_candidates(shown: list[RecordedCandidate], marks: dict[int, Review]) -> list[int]:
    """The photo ids of the shown candidates given a region map: the top ``REGION_TOP`` and every
    reviewed one."""
    return [c.photo_id for c in shown if c.rank <= REGION_TOP or c.photo_id in marks]


def gather_report(
    store: CaseworkStore,
    number: str,
    *,
    top: int = DEFAULT_TOP,
    regions: RegionCompare | None,
    generated_by: str,
    app_version: str,
) -> CaseReport:
    case = store.case(number)
    searches = [s for s in store.searches_of_case(case.id) if s.revisions]
    catalogue = store.catalogue
    reported = []
    with catalogue.read_connection() as c:
        case_seq = _case_seq(c, case.id)
        case_account = _accounts(c, [case_seq]).get(case_seq) if case_seq else None
        per_search = {s.id: (_query_row(c, s.id), _review_seqs(c, s.id)) for s in searches}
        accounts = _accounts(
            c,
            [s.latest.audit_seq for s in searches] + [q for _, seqs in per_search.values() for q in seqs.values()],
        )
    marks_of = {s.id: store.current_marks(s.id) for s in searches}
    shown_of = {s.id: shown_candidates(s, marks_of[s.id], top) for s in searches}
    wanted = [(s, mapped_candidates(shown_of[s.id], marks_of[s.id])) for s in searches]
    figures = (
        regions.for_searches(wanted, store.query_source) if regions else [QueryRegions(None, {}, "")] * len(wanted)
    )
    views: dict[int, bytes] = {}  # one PNG per query picture, however many searches used it
    records = _photo_records(catalogue, {x.photo_id for shown in shown_of.values() for x in shown})
    videos = video_sources_by_sha256(catalogue, [x.photo_sha256 for shown in shown_of.values() for x in shown])
    for search, found in zip(searches, figures, strict=True):
        (strokes_json, file), review_seqs = per_search[search.id]
        marks, shown = marks_of[search.id], shown_of[search.id]
        rows = []
        for x in shown:
            record = records.get(x.photo_id)
            if record is None:
                name, folder, note = "", "", "no longer in the gallery"
            else:
                path = PurePath(record.path)
                name, folder, note = path.name, str(path.parent), ""
                if record.sha256 != x.photo_sha256:
                    note = "the file catalogued under this id now has another sha256"
                elif record.missing:
                    note = "the file was missing at the last check"
            review = marks.get(x.photo_id)
            account = accounts.get(review_seqs.get(x.photo_id)) if review else None
            regions_of = found.by_photo.get(x.photo_id)
            rows.append(ShownCandidate(x, name, folder, note, review, account, regions_of, videos.get(x.photo_sha256)))
        query = describe_query(search.query_kind, search.query_name, search.query_sha256, strokes_json, file)
        reported.append(
            ReportSearch(
                search=search,
                query=query,
                account=accounts.get(search.latest.audit_seq),
                shown=rows,
                total=len(search.latest.candidates),
                top=top,
                region_top=REGION_TOP,
                sketch_view_png=_view_png(views, found.sketch_view),
                regions_unavailable=found.unavailable if regions else "region figures were not asked for",
            )
        )
    return CaseReport(
        case=case,
        case_account=case_account,
        searches=reported,
        audit=store.verify_audit(),
        sealed=store.audit_key is not None,
        generated_by=generated_by,
        app_version=app_version,
        top=top,
        region_top=REGION_TOP,
    )


def short(sha256: str) -> str:
    """The first 12 hex digits, as the report prints a hash (the full value is in its appendix)."""
    return sha256[:12]
