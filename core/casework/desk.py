"""Casework as the people using one gallery meet it: the store (``core.casework.store``), who is
working (the operator, recorded with every search, review and change), and what they search with
(the model, this program's version). Every search is recorded here (:meth:`CaseDesk.record_search`),
whether the command line ran it on a file or the window showed it for a drawn sketch."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import Connection

from core.casework import audit
from core.casework.logged_paths import path_fields
from core.casework.marks import case_marks
from core.casework.query import drawn_query
from core.casework.query_check import query_warnings
from core.casework.records import AuditCheck, CaseInfo, CaseMark, Review, ReviewMark, SearchQuery
from core.casework.regions import RegionCompare
from core.casework.report_data import DEFAULT_TOP, gather_report
from core.casework.store import CaseworkStore
from core.casework.takeover import take_over_search
from core.common.clock import utcnow
from core.common.errors import CaseworkError
from core.common.operator import describe, os_account, resolve_operator, save_operator
from core.common.paths import refuse_inside_data_folder
from core.common.private_files import write_private_file
from core.common.types import Candidate
from core.common.version import app_version
from core.model.manifest import Manifest


class CaseDesk:
    def __init__(self, store: CaseworkStore, manifest: Manifest, data_dir: Path, regions: RegionCompare | None = None):
        self.store = store
        self.manifest = manifest  # the model searches are recorded with (read without loading the network)
        self.data_dir = data_dir  # exports are refused inside it
        self.regions = regions  # a report's region maps (none without: the report says so)
        # who is recorded for searches, reviews and changes (editable): --operator, the variable, the
        # data folder's setting or the OS account (core.common.operator); the OS account goes beside it
        self.operator = resolve_operator(data_dir).name
        self.os_account = os_account()

    @property
    def operator_label(self) -> str:
        """'J. Smith (OS account: root)'."""
        return describe(self.operator, self.os_account)

    def set_operator(self, name: str, remember: bool = False) -> str:
        """Work as ``name`` from now on; ``remember``: also store it as the data folder's operator
        (the window's and the command line's default), which is recorded."""
        if remember:
            self.operator = save_operator(self.data_dir, name)
            self.record("operator set", {"operator": self.operator})
        else:
            self.operator = name
        return self.operator

    # -- the audit log -------------------------------------------------------------------------
    def record(self, kind: str, payload: dict, case_id: int | None = None) -> int:
        return self.store.record_event(kind, self.operator, payload, case_id)

    def record_import_run(self, kind: str, import_id: int, extra: Mapping | None = None) -> int:
        """The entry that ends an import run: see :meth:`CaseworkStore.record_import_run`."""
        return self.store.record_import_run(kind, self.operator, import_id, extra)

    def log_in(self, connection: Connection, kind: str, payload: dict) -> None:
        """An audit entry inside the caller's write transaction ``connection`` (committed with it)."""
        self.store.append_entry(connection, kind, self.operator, payload)

    def record_model_in_use(self) -> None:
        """A model change (a gallery first opened with a model, or with another one) is logged."""
        last = self.store.last_event("model")
        m = self.manifest
        key = m.embedding_key
        if last is None or last.payload.get("embedding_key") != key:
            payload = {"name": m.name, "embedding_key": key, "weights_sha256": m.weights_sha256}
            if last is not None:
                payload["previous"] = last.payload.get("embedding_key")
            self.record("model", payload)

    # -- searches ------------------------------------------------------------------------------
    def record_search(
        self,
        query: SearchQuery,
        candidates: Sequence[Candidate],
        *,
        where: Mapping[str, str] | None,
        min_confidence: float,
        top_k: int,
        started_at: datetime,
        finished_at: datetime | None = None,
        case_id: int | None = None,
        revision_of: int | None = None,
    ) -> tuple[int, int]:
        """Store a search that was shown (or a re-rank of one, with ``revision_of``), with who ran it,
        this program's version, the model and the warnings on its query (core.casework.query_check:
        a photo rather than a drawing, a gallery photo); returns (search id, revision)."""
        return self.store.record_search(
            query,
            query_warnings=query_warnings(query, self.store.catalogue.photo_with_sha256),
            case_id=case_id,
            operator=self.operator,
            app_version=app_version(),
            model_name=self.manifest.name,
            embedding_key=self.manifest.embedding_key,
            filters=dict(where or {}),
            min_confidence=min_confidence,
            top_k=top_k,
            candidates=candidates,
            started_at=started_at,
            finished_at=finished_at or utcnow(),
            revision_of=revision_of,
        )

    def record_drawn_search(
        self,
        pixels: np.ndarray,
        strokes_json: str,
        scan: tuple[str, bytes] | None,
        candidates: Sequence[Candidate],
        *,
        where: Mapping[str, str] | None,
        min_confidence: float,
        top_k: int,
        started_at: datetime,
        case_id: int | None = None,
        revision_of: int | None = None,
    ) -> tuple[int, int]:
        """Record a ranking the window showed for a drawn sketch: the image given to the model, its
        strokes and the scanned file under them (see :meth:`record_search`)."""
        return self.record_search(
            drawn_query(pixels, strokes_json, scan),
            candidates,
            where=where,
            min_confidence=min_confidence,
            top_k=top_k,
            started_at=started_at,
            case_id=case_id,
            revision_of=revision_of,
        )

    def take_over_search(self, search_id: int, case_id: int | None, occasion: str = "") -> tuple[int, int]:
        """The search on screen recorded again in another case: see core.casework.takeover."""
        return take_over_search(self.store, search_id, case_id, self.operator, occasion)

    def review(
        self, search_id: int, rank: int, mark: ReviewMark, note: str = "", photo_id: int | None = None
    ) -> Review:
        return self.store.review(search_id, rank, mark, self.operator, note, photo_id)

    def case_marks(self, case_id: int) -> dict[int, CaseMark]:
        """The case's newest mark on each photo: see core.casework.marks."""
        return case_marks(self.store.catalogue, case_id)

    # -- cases ---------------------------------------------------------------------------------
    def new_case(self, number: str, title: str, notes: str = "") -> CaseInfo:
        return self.store.new_case(number, title, self.operator, notes)

    def open_case(self, number: str) -> CaseInfo:
        """The case, opened again if it was closed."""
        case = self.store.case(number)
        if not case.is_open:
            case = self.store.set_case_state(number, closed=False, operator=self.operator)
        return case

    def close_case(self, number: str) -> CaseInfo:
        return self.store.set_case_state(number, closed=True, operator=self.operator)

    def cases(self) -> list[CaseInfo]:
        return self.store.cases()

    # -- exports -------------------------------------------------------------------------------
    def export_case_report(self, number: str, path: Path, top: int = DEFAULT_TOP) -> Path:
        """Write a case's PDF report (each search's top ``top`` candidates and every reviewed one;
        region maps where the model open now made the search); the export itself is
        recorded with the file's sha256. The report states the full verification of the log
        (never "verified" when verify rejects it) and the head it verified, which a later ``audit
        verify --against`` checks the log against."""
        from core.casework.report import write_case_report  # fpdf2 loads only when a report is made

        if top < 1:
            raise CaseworkError(f"a report shows at least the top 1 candidate of each search, not {top}")
        path = refuse_inside_data_folder(path, self.data_dir, "report")
        report = gather_report(
            self.store,
            number,
            top=top,
            regions=self.regions,
            generated_by=self.operator_label,
            app_version=app_version(),
        )
        written = write_case_report(path, report)
        digest = audit.sha256_hex(written.read_bytes())
        case = report.case
        payload = {
            "number": case.number, **path_fields("file", written), "sha256": digest, "searches": len(report.searches),
            "top": top,
        }  # fmt: skip
        self.record("report exported", payload, case.id)
        return written

    def export_audit_log(self, path: Path) -> tuple[Path, AuditCheck]:
        """Write the log as one JSON document (core.casework.audit.export_document), atomically and
        0600; returns the file and the full verification of the log at the time."""
        path = refuse_inside_data_folder(path, self.data_dir, "export")
        check = self.store.verify_audit()
        document = self.store.export_document()
        # a broken chain stops the check at its first problem, which ``problems`` (the record checks
        # run after an intact chain) does not hold: the file names it either way
        problems = list(check.problems) or ([check.problem] if check.problem else [])
        document["verified"] = {"ok": check.ok, "problems": problems}
        write_private_file(path, (json.dumps(document, indent=1) + "\n").encode(), "export")
        return path, check
