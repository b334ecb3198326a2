"""Cases, search records and reviews in the catalogue's SQLite file, each write together with its
audit entry in one transaction (a crash leaves either both or neither)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, func, insert, literal, select, update

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
from core.casework.tables import (
    append_only_triggers,
    audit_log,
    cases,
    reviews,
    search_results,
    search_revisions,
    searches,
)
from core.catalogue.catalogue import Catalogue, gallery_size, photo_hashes_and_thumbnails
from core.catalogue.structure import trigger_problems
from core.common.clock import utcnow
from core.common.errors import CaseworkError
from core.common.operator import os_account
from core.common.types import Candidate


def _logged_payload(c: Connection, seq: int | None) -> dict:
    """A search revision's audit entry payload: its query warnings (none before they were kept)
    and, for a ranking taken over from another search, its origin."""
    logged = audit.entry(c, seq) if seq is not None else None
    return logged.payload if logged is not None else {}


_CASE = select(
    cases.c.id, cases.c.number, cases.c.title, cases.c.operator, cases.c.notes, cases.c.opened_at, cases.c.closed_at,
    select(func.count()).where(searches.c.case_id == cases.c.id).scalar_subquery(),
)  # fmt: skip
_RESULTS = select(
    search_results.c.rank, search_results.c.photo_id, search_results.c.photo_sha256, search_results.c.score,
    search_results.c.thumbnail,
).order_by(search_results.c.rank)  # fmt: skip


def _exists(c: Connection, where) -> bool:
    return c.execute(select(literal(1)).where(where).limit(1)).first() is not None


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
            if _exists(c, audit_log.c.kind == "casework bound"):
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
            if _exists(c, cases.c.number == number):
                raise CaseworkError(f"case {number} already exists")
            new_case = insert(cases).values(
                number=number, title=title, operator=operator, notes=notes, opened_at=utcnow(), closed_at=None
            )
            case_id = c.execute(new_case.returning(cases.c.id)).scalar_one()
            payload = {"number": number, "title": title, "operator": operator, "notes": notes}
            self.append_entry(
                c, "case opened", operator, payload | {"bound_rows": binding.bind(c, cases=[case_id])}, case_id
            )
        return self.case(number)

    def _case_row(self, c: Connection, number: str):
        number = naming.lookup_number(c, number)
        row = c.execute(_CASE.where(cases.c.number == str(number))).first()
        if row is None:
            raise CaseworkError(f"no case numbered '{number}' (see 'sketchsearch case list')")
        return row

    @staticmethod
    def _case_info(row) -> CaseInfo:
        return CaseInfo(*row)

    def case(self, number: str) -> CaseInfo:
        with self.catalogue.read_connection() as c:
            return self._case_info(self._case_row(c, number))

    def case_by_id(self, case_id: int) -> CaseInfo:
        with self.catalogue.read_connection() as c:
            number = c.execute(select(cases.c.number).where(cases.c.id == case_id)).scalar()
            if number is None:
                raise CaseworkError(f"no case with id {case_id}")
            return self._case_info(self._case_row(c, number))

    def cases(self) -> list[CaseInfo]:
        with self.catalogue.read_connection() as c:
            rows = c.execute(_CASE.order_by(cases.c.id)).all()
        return [self._case_info(r) for r in rows]

    def set_case_state(self, number: str, closed: bool, operator: str) -> CaseInfo:
        """Close a case, or open a closed one again; both are recorded."""
        with self.catalogue.write_transaction() as c:
            info = self._case_info(self._case_row(c, number))
            if closed and not info.is_open:
                raise CaseworkError(f"case {number} is already closed")
            if not closed and info.is_open:
                raise CaseworkError(f"case {number} is already open")
            c.execute(update(cases).where(cases.c.id == info.id).values(closed_at=utcnow() if closed else None))
            payload = {"number": number, "bound_rows": binding.bind(c, cases=[info.id])}
            self.append_entry(c, "case closed" if closed else "case reopened", operator, payload, info.id)
        return self.case(number)

    def update_case(self, number: str, operator: str, title: str | None = None, notes: str | None = None) -> CaseInfo:
        title, notes = naming.case_title(title), naming.case_notes(notes)
        with self.catalogue.write_transaction() as c:
            info = self._case_info(self._case_row(c, number))
            new_title = info.title if title is None else title
            new_notes = info.notes if notes is None else notes
            c.execute(update(cases).where(cases.c.id == info.id).values(title=new_title, notes=new_notes))
            payload = {"number": number, "title": new_title, "notes": new_notes}
            self.append_entry(
                c, "case edited", operator, payload | {"bound_rows": binding.bind(c, cases=[info.id])}, info.id
            )
        return self.case(number)

    # -- searches ------------------------------------------------------------------------------
    @staticmethod
    def _refuse_closed(c: Connection, case_id: int | None, to_do: str) -> None:
        if case_id is None:
            return
        closed = c.execute(select(cases.c.closed_at).where(cases.c.id == case_id)).first()
        if closed is None:
            raise CaseworkError(f"no case with id {case_id}")
        if closed[0] is not None:
            raise CaseworkError(f"the case is closed: open it again to {to_do}")

    def _recorded_candidates(
        self, c: Connection, candidates: Sequence[Candidate | RecordedCandidate]
    ) -> list[RecordedCandidate]:
        """A recorded candidate (a ranking copied from another search) is kept as it was recorded."""
        if not candidates:
            return []
        found = photo_hashes_and_thumbnails(c, [x.photo_id for x in candidates])  # one statement for K rows
        recorded = []
        for x in candidates:
            if isinstance(x, RecordedCandidate):
                recorded.append(x)
                continue
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
        candidates: Sequence[Candidate | RecordedCandidate],
        started_at: datetime,
        finished_at: datetime,
        revision_of: int | None = None,
        query_warnings: Sequence[str] = (),
        gallery: GalleryState | None = None,
        provenance: Mapping[str, object] | None = None,
    ) -> tuple[int, int]:
        """Store a search (or, with ``revision_of``, a new ranking of a recorded one) and its audit
        entry in one transaction. Returns (search id, revision). ``query_warnings`` (what was found
        wrong with the query when it was searched) are recorded in the audit entry's payload. A
        ranking copied from another record (core.casework.takeover) gives the ``gallery`` it was
        ranked in and its ``provenance``, added to the payload as given."""
        with self.catalogue.write_transaction() as c:
            if revision_of is None:
                self._refuse_closed(c, case_id, "record searches in it")
                query_sha = audit.sha256_hex(query.file_bytes if query.kind == QueryKind.FILE else query.png)
                query_name = query.name
                new_search = insert(searches).values(
                    case_id=case_id, query_kind=query.kind.value, query_name=query.name, query_sha256=query_sha,
                    query_png=query.png, query_strokes=query.strokes_json, query_file=query.file_bytes,
                    operator=operator, app_version=app_version, created_at=started_at,
                )  # fmt: skip
                search_id = c.execute(new_search.returning(searches.c.id)).scalar_one()
                revision = 1
            else:
                search = c.execute(
                    select(searches.c.case_id, searches.c.query_sha256, searches.c.query_name).where(
                        searches.c.id == revision_of
                    )
                ).first()
                if search is None:
                    raise CaseworkError(f"no recorded search {revision_of}")
                search_id, (case_id, query_sha, query_name) = revision_of, search
                self._refuse_closed(c, case_id, "record searches in it")
                newest = select(func.max(search_revisions.c.revision)).where(search_revisions.c.search_id == search_id)
                revision = 1 + c.execute(newest).scalar_one()
            gallery = gallery or GalleryState(*gallery_size(c))
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
                **(provenance or {}),
            }
            seq = audit.next_seq(c)  # the revision row names its entry, and the entry binds the row
            new_revision = insert(search_revisions).values(
                search_id=search_id, revision=revision, model_name=model_name, embedding_key=embedding_key,
                gallery_photos=gallery.photos, gallery_last_import=gallery.last_import,
                filters_json=audit.canonical_json(stored_filters), top_k=top_k, started_at=started_at,
                finished_at=finished_at, operator=operator, audit_seq=seq,
            )  # fmt: skip
            revision_id = c.execute(new_revision.returning(search_revisions.c.id)).scalar_one()
            if recorded:
                c.execute(
                    insert(search_results),
                    [
                        dict(revision_id=revision_id, rank=x.rank, photo_id=x.photo_id, photo_sha256=x.photo_sha256,
                             score=x.score, thumbnail=x.thumbnail)
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
        s = searches.c
        row = c.execute(
            select(
                s.id, s.case_id, s.query_kind, s.query_name, s.query_sha256, s.query_png, s.operator, s.app_version,
                s.created_at,
            ).where(s.id == search_id)
        ).first()  # fmt: skip
        if row is None:
            raise CaseworkError(f"no recorded search {search_id}")
        revisions = []
        in_order = select(search_revisions).where(search_revisions.c.search_id == search_id)
        for r in c.execute(in_order.order_by(search_revisions.c.revision)).all():
            filters, logged = json.loads(r[7]), _logged_payload(c, r[12])
            candidates = [
                RecordedCandidate(*result) for result in c.execute(_RESULTS.where(search_results.c.revision_id == r[0]))
            ]
            revisions.append(
                SearchRevision(
                    id=r[0], search_id=r[1], revision=r[2], model_name=r[3], embedding_key=r[4],
                    gallery=GalleryState(r[5], r[6]), filters=filters["where"],
                    min_confidence=filters["min_confidence"], top_k=r[8], started_at=r[9],
                    finished_at=r[10], operator=r[11], audit_seq=r[12], candidates=candidates,
                    query_warnings=list(logged.get("query_warnings", [])), origin=logged.get("origin", ""),
                )
            )  # fmt: skip
        return RecordedSearch(
            id=row[0], case_id=row[1], query_kind=QueryKind(row[2]), query_name=row[3], query_sha256=row[4],
            query_png=row[5], operator=row[6], app_version=row[7], created_at=row[8], revisions=revisions,
        )  # fmt: skip

    def query_source(self, search_id: int) -> tuple[QueryKind, bytes]:
        """The bytes to replay a search from: the PNG the model saw, or the file as it was read."""
        with self.catalogue.read_connection() as c:
            row = c.execute(
                select(searches.c.query_kind, searches.c.query_png, searches.c.query_file).where(
                    searches.c.id == search_id
                )
            ).first()
        if row is None:
            raise CaseworkError(f"no recorded search {search_id}")
        kind = QueryKind(row[0])
        return kind, row[2] if kind == QueryKind.FILE else row[1]

    def searches_of_case(self, case_id: int | None) -> list[RecordedSearch]:
        """Every search of a case (None: those recorded under no case), oldest first."""
        with self.catalogue.read_connection() as c:
            where = searches.c.case_id == case_id if case_id is not None else searches.c.case_id.is_(None)
            ids = c.execute(select(searches.c.id).where(where).order_by(searches.c.id)).scalars()
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
            new_review = insert(reviews).values(
                search_id=search_id, photo_id=candidate.photo_id, photo_sha256=candidate.photo_sha256, rank=rank,
                mark=mark.value, note=note, operator=operator, at=now, audit_seq=seq,
            )  # fmt: skip
            review_id = c.execute(new_review.returning(reviews.c.id)).scalar_one()
            payload["bound_rows"] = binding.bind(c, reviews=[review_id])
            if self.append_entry(c, "review", operator, payload, search.case_id) != seq:
                raise RuntimeError("the audit log moved during a write transaction")
        return Review(search_id, candidate.photo_id, candidate.photo_sha256, rank, mark, note, operator, now)

    def reviews(self, search_id: int) -> list[Review]:
        """Every decision on the search's candidates, oldest first (the history)."""
        with self.catalogue.read_connection() as c:
            r = reviews.c
            rows = c.execute(
                select(r.search_id, r.photo_id, r.photo_sha256, r.rank, r.mark, r.note, r.operator, r.at)
                .where(r.search_id == search_id)
                .order_by(r.id)
            ).all()
        return [Review(s, p, sha, rank, ReviewMark(m), n, op, at) for s, p, sha, rank, m, n, op, at in rows]

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

    def record_import_run(self, kind: str, operator: str, import_id: int, extra: Mapping | None = None) -> int:
        """The entry that ends an import run: it names the run's record in the catalogue's import log
        (folders, status, counts) and binds that record's content (core.casework.binding), read in
        the entry's own transaction, with the number of photos the gallery then holds. ``extra``
        holds what the run's record has no column for (the duplicates count)."""
        with self.catalogue.write_transaction() as c:
            photos, _ = gallery_size(c)
            run = binding.bind_import_run(c, import_id)
            payload = {"import_id": import_id, **run, **(extra or {}), "photos_after": photos}
            return self.append_entry(c, kind, operator, payload)

    def last_event(self, kind: str):
        with self.catalogue.read_connection() as c:
            return audit.last_of_kind(c, kind)

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
            found += [(problem.seq, problem.message) for problem in binding.compare_import_runs(payloads.items(), c)]
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
        r = search_revisions.c
        revisions = c.execute(select(r.id, r.search_id, r.revision, r.audit_seq).order_by(r.id))
        for revision_id, search_id, revision, seq in revisions.all():
            logged = payloads.get(seq)
            if logged is not None and "bound_rows" in logged:
                continue  # bound by its own entry: binding.compare checked it
            candidates = [
                RecordedCandidate(*row)
                for row in c.execute(_RESULTS.where(search_results.c.revision_id == revision_id))
            ]
            if logged is None or logged.get("results") != results_payload(candidates):
                message = f"search {search_id} revision {revision}: its stored results differ from audit entry {seq}"
                found.append((seq, message))
        r = reviews.c
        for seq, search_id, photo_id, mark, note in c.execute(
            select(r.audit_seq, r.search_id, r.photo_id, r.mark, r.note).order_by(r.id)
        ):
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
