"""Cases, search records and reviews in the catalogue's SQLite file, each write together with its
audit entry in one transaction (a crash leaves either both or neither)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, text

from core.casework import audit, binding, naming
from core.casework.records import (
    AuditCheck,
    CaseInfo,
    GalleryState,
    QueryKind,
    RecordedCandidate,
    RecordedSearch,
    Review,
    ReviewMark,
    SearchQuery,
    SearchRevision,
)
from core.catalogue.catalogue import Catalogue
from core.catalogue.orm import append_only_triggers
from core.catalogue.structure import trigger_problems
from core.common.clock import utcnow
from core.common.errors import CaseworkError
from core.common.operator import os_account
from core.common.types import Candidate


def _when(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _logged_query_warnings(c: Connection, seq: int | None) -> list[str]:
    """The query warnings recorded in a search revision's audit entry (none before they were kept)."""
    logged = audit.entry(c, seq) if seq is not None else None
    return list(logged.payload.get("query_warnings", [])) if logged is not None else []


def results_payload(candidates: Sequence[RecordedCandidate]) -> list[list]:
    """The results as they go into the audit entry: rank, photo id, sha256, score, thumbnail sha256."""
    return [
        [c.rank, c.photo_id, c.photo_sha256, c.score, audit.sha256_hex(c.thumbnail)]
        for c in sorted(candidates, key=lambda c: c.rank)
    ]


class CaseworkStore:
    def __init__(self, catalogue: Catalogue, audit_key: bytes | None = None):
        """``audit_key``: seal every entry written through this store (core.casework.audit)."""
        self.catalogue = catalogue
        self.audit_key = audit_key
        if 3 <= getattr(catalogue, "schema_found", 0) < 7:
            self._bind_existing_rows()

    def append_entry(self, c: Connection, kind: str, operator: str, payload: dict, case_id: int | None = None) -> int:
        """One entry in the caller's write transaction ``c``, sealed under this store's key, with
        the operating-system account beside the operator named."""
        payload = {**payload, "os_account": payload.get("os_account", os_account())}
        return audit.append(c, kind, operator, payload, case_id, key=self.audit_key)

    def _bind_existing_rows(self) -> None:
        """A file upgraded from before version 7: one entry binds the casework rows it holds (they
        were written under the older checks, which verify still runs)."""
        with self.catalogue.write_transaction() as c:
            if c.execute(text("SELECT 1 FROM audit_log WHERE kind = 'casework bound'")).first():
                return
            rows = binding.all_rows(c)
            if any(rows.values()):
                payload = {"bound_rows": rows, "reason": "rows recorded before this version, bound on upgrade"}
                self.append_entry(c, "casework bound", "sketchsearch", payload)

    # -- cases ---------------------------------------------------------------------------------
    def new_case(self, number: str, title: str, operator: str, notes: str = "") -> CaseInfo:
        number, title, notes = naming.new_case_fields(number, title, notes, [c.number for c in self.cases()])
        if not number:
            raise CaseworkError("a case needs a number")
        with self.catalogue.write_transaction() as c:
            if c.execute(text("SELECT 1 FROM cases WHERE number = :n"), {"n": number}).first():
                raise CaseworkError(f"case {number} already exists")
            now = utcnow()
            case_id = c.execute(
                text(
                    "INSERT INTO cases (number, title, operator, notes, opened_at, closed_at) "
                    "VALUES (:n, :t, :o, :notes, :at, NULL) RETURNING id"
                ),
                {"n": number, "t": title, "o": operator, "notes": notes, "at": now},
            ).scalar_one()
            payload = {"number": number, "title": title, "operator": operator, "notes": notes}
            self.append_entry(
                c, "case opened", operator, payload | {"bound_rows": binding.bind(c, cases=[case_id])}, case_id
            )
        return self.case(number)

    def _case_row(self, c: Connection, number: str):
        number = naming.lookup_number(c, number)
        row = c.execute(
            text(
                "SELECT id, number, title, operator, notes, opened_at, closed_at, "
                "(SELECT count(*) FROM searches s WHERE s.case_id = cases.id) FROM cases WHERE number = :n"
            ),
            {"n": str(number)},
        ).first()
        if row is None:
            raise CaseworkError(f"no case numbered '{number}' (see 'sketchsearch case list')")
        return row

    @staticmethod
    def _case_info(row) -> CaseInfo:
        case_id, number, title, operator, notes, opened, closed, searches = row
        return CaseInfo(case_id, number, title, operator, notes, _when(opened), _when(closed), searches)

    def case(self, number: str) -> CaseInfo:
        with self.catalogue.read_connection() as c:
            return self._case_info(self._case_row(c, number))

    def case_by_id(self, case_id: int) -> CaseInfo:
        with self.catalogue.read_connection() as c:
            number = c.execute(text("SELECT number FROM cases WHERE id = :i"), {"i": case_id}).scalar()
            if number is None:
                raise CaseworkError(f"no case with id {case_id}")
            return self._case_info(self._case_row(c, number))

    def cases(self) -> list[CaseInfo]:
        with self.catalogue.read_connection() as c:
            rows = c.execute(
                text(
                    "SELECT id, number, title, operator, notes, opened_at, closed_at, "
                    "(SELECT count(*) FROM searches s WHERE s.case_id = cases.id) FROM cases ORDER BY id"
                )
            ).all()
        return [self._case_info(r) for r in rows]

    def set_case_state(self, number: str, closed: bool, operator: str) -> CaseInfo:
        """Close a case, or open a closed one again; both are recorded."""
        with self.catalogue.write_transaction() as c:
            info = self._case_info(self._case_row(c, number))
            if closed and not info.is_open:
                raise CaseworkError(f"case {number} is already closed")
            if not closed and info.is_open:
                raise CaseworkError(f"case {number} is already open")
            c.execute(
                text("UPDATE cases SET closed_at = :at WHERE id = :i"),
                {"at": utcnow() if closed else None, "i": info.id},
            )
            payload = {"number": number, "bound_rows": binding.bind(c, cases=[info.id])}
            self.append_entry(c, "case closed" if closed else "case reopened", operator, payload, info.id)
        return self.case(number)

    def update_case(self, number: str, operator: str, title: str | None = None, notes: str | None = None) -> CaseInfo:
        title, notes = naming.case_title(title), naming.case_notes(notes)
        with self.catalogue.write_transaction() as c:
            info = self._case_info(self._case_row(c, number))
            new_title = info.title if title is None else title
            new_notes = info.notes if notes is None else notes
            c.execute(
                text("UPDATE cases SET title = :t, notes = :n WHERE id = :i"),
                {"t": new_title, "n": new_notes, "i": info.id},
            )
            payload = {"number": number, "title": new_title, "notes": new_notes}
            self.append_entry(
                c, "case edited", operator, payload | {"bound_rows": binding.bind(c, cases=[info.id])}, info.id
            )
        return self.case(number)

    # -- searches ------------------------------------------------------------------------------
    def _gallery_state(self, c: Connection) -> GalleryState:
        photos = c.execute(text("SELECT count(*) FROM photos")).scalar_one()
        last_import = c.execute(text("SELECT max(id) FROM import_runs")).scalar()
        return GalleryState(photos, last_import)

    @staticmethod
    def _refuse_closed(c: Connection, case_id: int | None, to_do: str) -> None:
        if case_id is None:
            return
        closed = c.execute(text("SELECT closed_at FROM cases WHERE id = :i"), {"i": case_id}).first()
        if closed is None:
            raise CaseworkError(f"no case with id {case_id}")
        if closed[0] is not None:
            raise CaseworkError(f"the case is closed: open it again to {to_do}")

    def _recorded_candidates(self, c: Connection, candidates: Sequence[Candidate]) -> list[RecordedCandidate]:
        ids = [int(x.photo_id) for x in candidates]
        if not ids:
            return []
        marks = ",".join(str(i) for i in ids)  # ints only: safe to inline, and one statement for K rows
        found = {
            pid: (sha, thumb)
            for pid, sha, thumb in c.execute(text(f"SELECT id, sha256, thumbnail FROM photos WHERE id IN ({marks})"))
        }
        recorded = []
        for x in candidates:
            sha, thumbnail = found.get(int(x.photo_id), ("", b""))
            recorded.append(RecordedCandidate(int(x.rank), int(x.photo_id), sha, float(x.score), thumbnail))
        return recorded

    def record_search(
        self,
        query: SearchQuery,
        *,
        case_id: int | None,
        operator: str,
        app_version: str,
        model_name: str,
        embedding_key: str,
        filters: dict[str, str],
        min_confidence: float,
        top_k: int,
        candidates: Sequence[Candidate],
        started_at: datetime,
        finished_at: datetime,
        revision_of: int | None = None,
        query_warnings: Sequence[str] = (),
    ) -> tuple[int, int]:
        """Store a search (or, with ``revision_of``, a new ranking of a recorded one) and its audit
        entry in one transaction. Returns (search id, revision). ``query_warnings`` (what was found
        wrong with the query when it was searched) are recorded in the audit entry's payload."""
        with self.catalogue.write_transaction() as c:
            if revision_of is None:
                self._refuse_closed(c, case_id, "record searches in it")
                query_sha = audit.sha256_hex(query.file_bytes if query.kind == QueryKind.FILE else query.png)
                query_name = query.name
                search_id = c.execute(
                    text(
                        "INSERT INTO searches (case_id, query_kind, query_name, query_sha256, query_png, "
                        "query_strokes, query_file, operator, app_version, created_at) VALUES (:case, :kind, :name, "
                        ":sha, :png, :strokes, :file, :op, :ver, :at) RETURNING id"
                    ),
                    dict(
                        case=case_id, kind=query.kind.value, name=query.name, sha=query_sha, png=query.png,
                        strokes=query.strokes_json, file=query.file_bytes, op=operator, ver=app_version, at=started_at,
                    ),
                ).scalar_one()  # fmt: skip
                revision = 1
            else:
                search = c.execute(
                    text("SELECT case_id, query_sha256, query_name FROM searches WHERE id = :i"), {"i": revision_of}
                ).first()
                if search is None:
                    raise CaseworkError(f"no recorded search {revision_of}")
                search_id, (case_id, query_sha, query_name) = revision_of, search
                self._refuse_closed(c, case_id, "record searches in it")
                revision = (
                    1
                    + c.execute(
                        text("SELECT max(revision) FROM search_revisions WHERE search_id = :i"), {"i": search_id}
                    ).scalar_one()
                )
            gallery = self._gallery_state(c)
            recorded = self._recorded_candidates(c, candidates)
            stored_filters = {"where": dict(sorted(filters.items())), "min_confidence": float(min_confidence)}
            payload = {
                "search_id": search_id,
                "revision": revision,
                "query_sha256": query_sha,
                "query_name": query_name,
                "model": model_name,
                "embedding_key": embedding_key,
                "gallery_photos": gallery.photos,
                "gallery_last_import": gallery.last_import,
                "filters": stored_filters,
                "top_k": top_k,
                "started_at": started_at.isoformat(),
                "finished_at": finished_at.isoformat(),
                "app_version": app_version,
                "results": results_payload(recorded),
                "query_warnings": list(query_warnings),
            }
            seq = audit.next_seq(c)  # the revision row names its entry, and the entry binds the row
            revision_id = c.execute(
                text(
                    "INSERT INTO search_revisions (search_id, revision, model_name, embedding_key, gallery_photos, "
                    "gallery_last_import, filters_json, top_k, started_at, finished_at, operator, audit_seq) VALUES "
                    "(:s, :r, :m, :k, :gp, :gi, :f, :top, :start, :end, :op, :seq) RETURNING id"
                ),
                dict(
                    s=search_id, r=revision, m=model_name, k=embedding_key, gp=gallery.photos, gi=gallery.last_import,
                    f=audit.canonical_json(stored_filters), top=top_k, start=started_at, end=finished_at, op=operator,
                    seq=seq,
                ),
            ).scalar_one()  # fmt: skip
            if recorded:
                c.execute(
                    text(
                        "INSERT INTO search_results (revision_id, rank, photo_id, photo_sha256, score, thumbnail) "
                        "VALUES (:rid, :rank, :pid, :sha, :score, :thumb)"
                    ),
                    [
                        dict(rid=revision_id, rank=x.rank, pid=x.photo_id, sha=x.photo_sha256, score=x.score,
                             thumb=x.thumbnail)
                        for x in recorded
                    ],
                )  # fmt: skip
            rows = {"search_revisions": [revision_id], "search_results": [revision_id] if recorded else []}
            if revision == 1:
                rows["searches"] = [search_id]
            payload["bound_rows"] = binding.bind(c, **rows)
            kind = "search" if revision == 1 else "search revision"
            if self.append_entry(c, kind, operator, payload, case_id) != seq:
                raise RuntimeError("the audit log moved during a write transaction")
        return search_id, revision

    def search(self, search_id: int) -> RecordedSearch:
        with self.catalogue.read_connection() as c:
            return self._search(c, search_id)

    def _search(self, c: Connection, search_id: int) -> RecordedSearch:
        row = c.execute(
            text(
                "SELECT id, case_id, query_kind, query_name, query_sha256, query_png, operator, app_version, "
                "created_at FROM searches WHERE id = :i"
            ),
            {"i": search_id},
        ).first()
        if row is None:
            raise CaseworkError(f"no recorded search {search_id}")
        revisions = []
        for r in c.execute(
            text(
                "SELECT id, search_id, revision, model_name, embedding_key, gallery_photos, gallery_last_import, "
                "filters_json, top_k, started_at, finished_at, operator, audit_seq FROM search_revisions "
                "WHERE search_id = :i ORDER BY revision"
            ),
            {"i": search_id},
        ).all():
            filters = json.loads(r[7])
            candidates = [
                RecordedCandidate(rank, pid, sha, score, thumb)
                for rank, pid, sha, score, thumb in c.execute(
                    text(
                        "SELECT rank, photo_id, photo_sha256, score, thumbnail FROM search_results "
                        "WHERE revision_id = :i ORDER BY rank"
                    ),
                    {"i": r[0]},
                )
            ]
            revisions.append(
                SearchRevision(
                    id=r[0], search_id=r[1], revision=r[2], model_name=r[3], embedding_key=r[4],
                    gallery=GalleryState(r[5], r[6]), filters=filters["where"],
                    min_confidence=filters["min_confidence"], top_k=r[8], started_at=_when(r[9]),
                    finished_at=_when(r[10]), operator=r[11], audit_seq=r[12], candidates=candidates,
                    query_warnings=_logged_query_warnings(c, r[12]),
                )
            )  # fmt: skip
        return RecordedSearch(
            id=row[0], case_id=row[1], query_kind=QueryKind(row[2]), query_name=row[3], query_sha256=row[4],
            query_png=row[5], operator=row[6], app_version=row[7], created_at=_when(row[8]), revisions=revisions,
        )  # fmt: skip

    def query_source(self, search_id: int) -> tuple[QueryKind, bytes]:
        """The bytes to replay a search from: the PNG the model saw, or the file as it was read."""
        with self.catalogue.read_connection() as c:
            row = c.execute(
                text("SELECT query_kind, query_png, query_file FROM searches WHERE id = :i"), {"i": search_id}
            ).first()
        if row is None:
            raise CaseworkError(f"no recorded search {search_id}")
        kind = QueryKind(row[0])
        return kind, row[2] if kind == QueryKind.FILE else row[1]

    def searches_of_case(self, case_id: int | None) -> list[RecordedSearch]:
        """Every search of a case (None: those recorded under no case), oldest first."""
        with self.catalogue.read_connection() as c:
            where = "case_id = :i" if case_id is not None else "case_id IS NULL"
            ids = c.execute(text(f"SELECT id FROM searches WHERE {where} ORDER BY id"), {"i": case_id}).scalars()
            return [self._search(c, i) for i in list(ids)]

    # -- reviews -------------------------------------------------------------------------------
    def review(
        self, search_id: int, rank: int, mark: ReviewMark, operator: str, note: str = "", photo_id: int | None = None
    ) -> Review:
        """Record a decision on the candidate at ``rank`` of the search's newest ranking (with
        ``photo_id``: refused unless that photo is the one at that rank)."""
        with self.catalogue.write_transaction() as c:
            search = self._search(c, search_id)
            self._refuse_closed(c, search.case_id, "review its candidates")
            if not search.revisions:
                raise CaseworkError(f"recorded search {search_id} has no results")
            found = [x for x in search.latest.candidates if x.rank == rank]
            if not found:
                raise CaseworkError(
                    f"search {search_id} has no candidate at rank {rank} (ranks 1 to {len(search.latest.candidates)})"
                )
            candidate, now = found[0], utcnow()
            if photo_id is not None and candidate.photo_id != photo_id:
                raise CaseworkError(
                    f"search {search_id}: rank {rank} is photo #{candidate.photo_id} in its newest ranking, "
                    f"not #{photo_id}; nothing was marked"
                )
            payload = {
                "search_id": search_id,
                "revision": search.latest.revision,
                "rank": rank,
                "photo_id": candidate.photo_id,
                "photo_sha256": candidate.photo_sha256,
                "mark": mark.value,
                "note": note,
            }
            seq = audit.next_seq(c)
            review_id = c.execute(
                text(
                    "INSERT INTO reviews (search_id, photo_id, photo_sha256, rank, mark, note, operator, at, audit_seq)"
                    " VALUES (:s, :p, :sha, :rank, :mark, :note, :op, :at, :seq) RETURNING id"
                ),
                dict(s=search_id, p=candidate.photo_id, sha=candidate.photo_sha256, rank=rank, mark=mark.value,
                     note=note, op=operator, at=now, seq=seq),
            ).scalar_one()  # fmt: skip
            payload["bound_rows"] = binding.bind(c, reviews=[review_id])
            if self.append_entry(c, "review", operator, payload, search.case_id) != seq:
                raise RuntimeError("the audit log moved during a write transaction")
        return Review(search_id, candidate.photo_id, candidate.photo_sha256, rank, mark, note, operator, now)

    def reviews(self, search_id: int) -> list[Review]:
        """Every decision on the search's candidates, oldest first (the history)."""
        with self.catalogue.read_connection() as c:
            rows = c.execute(
                text(
                    "SELECT search_id, photo_id, photo_sha256, rank, mark, note, operator, at FROM reviews "
                    "WHERE search_id = :i ORDER BY id"
                ),
                {"i": search_id},
            ).all()
        return [Review(s, p, sha, rank, ReviewMark(m), n, op, _when(at)) for s, p, sha, rank, m, n, op, at in rows]

    def current_marks(self, search_id: int) -> dict[int, Review]:
        """photo id -> the newest decision on it, leaving out those withdrawn (CLEAR)."""
        latest: dict[int, Review] = {}
        for review in self.reviews(search_id):
            latest[review.photo_id] = review
        return {pid: r for pid, r in latest.items() if r.mark != ReviewMark.CLEAR}

    # -- audit ---------------------------------------------------------------------------------
    def record_event(self, kind: str, operator: str, payload: dict, case_id: int | None = None) -> int:
        with self.catalogue.write_transaction() as c:
            return self.append_entry(c, kind, operator, payload, case_id)

    def last_event(self, kind: str):
        with self.catalogue.read_connection() as c:
            seq = c.execute(text("SELECT max(seq) FROM audit_log WHERE kind = :k"), {"k": kind}).scalar()
            return audit.entry(c, seq) if seq is not None else None

    def verify_chain(self, against: tuple[int | None, str] | None = None) -> AuditCheck:
        """The hash chain alone (fast: the records themselves are not read)."""
        with self.catalogue.read_connection() as c:
            return audit.verify(c, against=against, key=self.audit_key)

    def verify_audit(self, against: tuple[int | None, str] | None = None) -> AuditCheck:
        """Everything the log vouches for: the append-only triggers, the chain (against a head
        printed earlier, and under the key when one is set), every casework row against the entry
        that bound it and the reverse, and each search's results and review against its entry."""
        with self.catalogue.read_connection() as c:
            check = audit.verify(c, against=against, key=self.audit_key)
            if not check.ok:
                return check

            payloads = {e.seq: e.payload for e in audit.entries(c)}
            found: list[tuple[int | None, str]] = [
                (problem.seq, problem.message) for problem in binding.compare(payloads.items(), c)
            ]
            found += self._legacy_problems(c, payloads)
            found.sort(key=lambda item: (item[0] is None, item[0] or 0))
            # a dropped trigger is a sign of tampering; what was done with it is listed first
            found += [(None, problem) for problem in trigger_problems(c, append_only_triggers())]
            if not found:
                return check
            problems = tuple(dict.fromkeys(message for _, message in found))
            return AuditCheck(False, check.entries, check.head_sha256, found[0][0], problems[0], problems)

    def _legacy_problems(self, c: Connection, payloads: dict[int, dict]) -> list[tuple[int | None, str]]:
        """Records written before rows were bound into their entries (schema 7), checked as then:
        each ranking's results and each review against the entry written with it."""
        found: list[tuple[int | None, str]] = []
        revisions = c.execute(text("SELECT id, search_id, revision, audit_seq FROM search_revisions ORDER BY id"))
        for revision_id, search_id, revision, seq in revisions.all():
            logged = payloads.get(seq)
            if logged is not None and "bound_rows" in logged:
                continue  # bound by its own entry: binding.compare checked it
            candidates = [
                RecordedCandidate(*row)
                for row in c.execute(
                    text(
                        "SELECT rank, photo_id, photo_sha256, score, thumbnail FROM search_results "
                        "WHERE revision_id = :i ORDER BY rank"
                    ),
                    {"i": revision_id},
                )
            ]
            if logged is None or logged.get("results") != results_payload(candidates):
                message = f"search {search_id} revision {revision}: its stored results differ from audit entry {seq}"
                found.append((seq, message))
        reviews = c.execute(text("SELECT audit_seq, search_id, photo_id, mark, note FROM reviews ORDER BY id"))
        for seq, search_id, photo_id, mark, note in reviews:
            logged = payloads.get(seq) or {}
            if "bound_rows" in logged:
                continue
            if tuple(logged.get(k) for k in ("search_id", "photo_id", "mark", "note")) != (
                search_id,
                photo_id,
                mark,
                note,
            ):
                found.append((seq, f"a review of search {search_id} differs from audit entry {seq}"))
        return found

    def export_document(self) -> dict:
        with self.catalogue.read_connection() as c:
            return audit.export_document(c, audit.now_iso())

    def audit_entries(self):
        with self.catalogue.read_connection() as c:
            return list(audit.entries(c))

    def audit_head(self) -> tuple[int, str]:
        with self.catalogue.read_connection() as c:
            return audit.head(c)
