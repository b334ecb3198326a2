"""A workspace: one data folder (catalogue + index) opened with one model. The GUI and the command
line both drive SketchSearch through this facade.

The network itself (torch) loads on first use: reading the catalogue, its statistics, attributes
and the index needs only the model's manifest, so those commands start in a fraction of a second."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.casework.audit_key import load_audit_key
from core.casework.desk import CaseDesk
from core.casework.query import file_query
from core.casework.records import AuditCheck, CaseInfo, ReplayReport, Review, ReviewMark, SearchQuery
from core.casework.regions import QueryRegions, RegionCompare
from core.casework.replay import replay
from core.casework.report_data import DEFAULT_TOP
from core.casework.store import CaseworkStore, utcnow
from core.catalogue.catalogue import AttributeTable, Catalogue, Record
from core.catalogue.writer_lock import WriterLock
from core.common.paths import default_data_dir, default_model_dir
from core.common.types import (
    AttributeSource,
    Candidate,
    CatalogueStats,
    FolderSummary,
    ImportFailure,
    ImportSummary,
    ModelInfo,
    PhotoRecord,
    SearchResult,
    VerifyReport,
)
from core.gallery.attribute_sheet import AttributeSheet, SheetKey
from core.gallery.importer import GalleryTarget, ProgressCallback
from core.gallery.integrity import RehashProgress
from core.gallery.reembed import repair_embeddings
from core.gallery.service import Gallery
from core.gallery.verify import verify_gallery
from core.index import attribute_cache
from core.index.attribute_table import AttributeTables
from core.index.service import IndexService
from core.index.vectors import DEFAULT_POLICY, IndexPolicy, VectorIndex
from core.model.attributes import AttributeSchema
from core.model.handle import ModelHandle
from core.model.manifest import Manifest
from core.search import (
    SearchedGallery,
    Sketch,
    embed_sketches,
    search_embeddings,
    sketch_label,
    sketch_pixels,
    validate_filters,
)

if TYPE_CHECKING:
    from core.model.embedded import EmbeddingModel

log = logging.getLogger(__name__)


class Workspace:
    """Thread safety: one import (or other writer) may run while other threads search, embed
    sketches and read the catalogue; the index is guarded by a lock, SQLite (WAL) gives each
    thread its own connection, and the network's forward pass in inference mode keeps no state."""

    def __init__(
        self,
        data_dir: Path | None = None,
        model_dir: Path | None = None,
        device: str | None = None,
        *,
        model: EmbeddingModel | None = None,
        create: bool = True,
        index_policy: IndexPolicy = DEFAULT_POLICY,
        audit_key_file: Path | None = None,
        check_change_log: bool = True,
    ):
        """Open ``data_dir`` (created if needed, unless ``create`` is false) with the model in
        ``model_dir`` (default: the bundled one), or with an already loaded ``model`` (switching
        galleries need not reload it). The network loads on first use (see :attr:`model`); its
        manifest and weights' hash are read now. ``check_change_log``: see :class:`Catalogue` (off
        to :meth:`verify` a damaged file)."""
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        if not create:  # checked before the model is read: a mistyped folder fails at once
            Catalogue.require_folder(self.data_dir)
        self.models = ModelHandle(Path(model_dir) if model_dir else default_model_dir(), device, model)
        self.manifest: Manifest = self.models.manifest
        self.catalogue = Catalogue(
            self.data_dir, create=create, mark_interrupted=False, check_change_log=check_change_log
        )
        # the attribute table filters read, cached beside the index (one file per model: the schema
        # comes with the model), so that the first filter after opening reads only what changed since
        cache_path = self.data_dir / "index" / f"{self.embedding_key[:16]}{attribute_cache.SUFFIX}"
        self.attribute_tables = AttributeTables(self.catalogue, self.schema, cache_path)
        manifest = self.manifest
        self.catalogue.register_model(self.embedding_key, manifest.name, manifest.embedding_dim, manifest.to_json())
        self.writer = WriterLock(self.data_dir)  # one import or re-index at a time (core.catalogue.writer_lock)
        self.writer.mark_interrupted_imports(self.catalogue)
        self.repair_failures: list[ImportFailure] = []  # damaged embeddings the last rebuild could not redo
        index_path = self.data_dir / "index" / f"{self.embedding_key[:16]}.faiss"
        self.indexes = IndexService(self.catalogue, self.embedding_key, self.embedding_dim, index_path, index_policy)
        # while an import runs elsewhere its batches are committed before its index is saved: a
        # rebuilt index is searched from memory and the file left to the import
        self.indexes.open(lambda: self.rebuild_index(save=not self.writer.running_elsewhere()))
        self.searched = SearchedGallery(self.indexes, self.catalogue, self.attribute_tables, self.schema)
        # entries are sealed under the audit key when one is given (or set): see core.casework.audit_key
        self.casework = CaseworkStore(self.catalogue, audit_key=load_audit_key(audit_key_file, self.data_dir))
        self.desk = CaseDesk(self.casework, self.manifest, self.data_dir)
        self.regions = RegionCompare(self.catalogue, self.manifest, self.models.weights_file, self.embed_sketches)
        self.desk.record_model_in_use()
        self.gallery = Gallery(self.catalogue, self.models, self.indexes, self.desk, self.writer)

    def close(self) -> None:
        self.indexes.stop()
        try:
            self.attribute_tables.save()
            self.attribute_tables.prune_change_log()
        except Exception as exc:  # noqa: BLE001 - a cache not written costs the next opening time, nothing else
            log.warning("%s: the attribute table was not saved (%s)", self.attribute_cache_path, exc)
        self.catalogue.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- model (core.model.handle) --------------------------------------------------------------
    @property
    def model(self) -> EmbeddingModel:
        """The network, loaded the first time it is needed."""
        return self.models.model

    def loaded_model(self) -> EmbeddingModel | None:
        """The network if it is loaded already (to reuse it for another gallery), else None."""
        return self.models.loaded()

    @property
    def embedding_key(self) -> str:
        return self.manifest.embedding_key

    @property
    def embedding_dim(self) -> int:
        return self.manifest.embedding_dim

    @property
    def schema(self) -> AttributeSchema:
        return self.manifest.attribute_schema

    def model_info(self) -> ModelInfo:
        return self.models.info()

    def photo_ids(self) -> np.ndarray:
        """Ids of every catalogued photo, ascending."""
        return self.attribute_table().ids

    # -- index (core.index.service) --------------------------------------------------------------
    @property
    def index(self) -> VectorIndex:
        return self.indexes.index

    @property
    def index_path(self) -> Path:
        return self.indexes.path

    @property
    def index_policy(self) -> IndexPolicy:
        return self.indexes.policy

    def rebuild_index(self, save: bool = True) -> VectorIndex:
        """A fresh index from the embeddings stored in SQLite (the source of truth), saved atomically.
        A stored embedding that is not a finite unit vector (a damaged row) is never indexed: it is
        embedded again from its file, or dropped (its photo then counts as not embedded) when the
        file cannot be read. The stored vectors are read in chunks, never all at once."""
        self.repair_failures = []

        def repair(damaged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            self.repair_failures, ids, vectors = self.repair_embeddings(damaged)
            return ids, vectors

        return self.indexes.rebuild(save, repair)

    def repair_embeddings(self, photo_ids: Sequence[int]) -> tuple[list[ImportFailure], np.ndarray, np.ndarray]:
        """See :func:`core.gallery.reembed.repair_embeddings`."""
        return repair_embeddings(self.catalogue, lambda: self.model, self.embedding_key, self.embedding_dim, photo_ids)

    def save_index(self) -> None:
        self.indexes.save()

    def wait_for_index_rebuild(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild of the index, if one runs; False if still running."""
        return self.indexes.wait_for_rebuild(timeout)

    def index_add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.indexes.add(ids, vectors)

    def forget_photos(self, photo_ids: Sequence[int], record: Record | None = None) -> None:
        self.gallery.forget_photos(photo_ids, record)

    # -- gallery (core.gallery.service) ------------------------------------------------------------
    def gallery_target(self) -> GalleryTarget:
        return self.gallery.target()

    def import_paths(
        self,
        roots: Iterable[str | Path],
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        batch_size: int = 32,
    ) -> ImportSummary:
        return self.gallery.import_paths(roots, progress, cancel, batch_size)

    def import_embeddings(
        self, shards: Path, progress: ProgressCallback | None = None, cancel: threading.Event | None = None
    ) -> ImportSummary:
        return self.gallery.import_embeddings(shards, progress, cancel)

    def prune_missing(self) -> int:
        return self.gallery.prune_missing()

    def remove_folder(self, folder: str) -> int:
        return self.gallery.remove_folder(folder)

    def count_unembedded(self) -> int:
        return self.gallery.count_unembedded()

    def embed_missing(
        self, progress: ProgressCallback | None = None, cancel: threading.Event | None = None, batch_size: int = 32
    ) -> ImportSummary:
        return self.gallery.embed_missing(progress, cancel, batch_size)

    # -- attributes (core.index.attribute_table) --------------------------------------------------
    def attribute_table(self) -> AttributeTable:
        """Effective attribute values of every photo, kept up to date (see :class:`AttributeTables`)."""
        return self.attribute_tables.table()

    @property
    def attribute_cache_path(self) -> Path:
        return self.attribute_tables.path

    def set_attribute(
        self,
        photo_id: int,
        name: str,
        value: str,
        source: AttributeSource = AttributeSource.MANUAL,
        confidence: float = 1.0,
        operator: str | None = None,
    ) -> None:
        self.gallery.set_attribute(photo_id, name, value, source, confidence, operator)

    def set_attributes_by_hand(
        self,
        photo_id: int,
        values: Mapping[str, str],
        source: AttributeSource = AttributeSource.MANUAL,
        confidence: float = 1.0,
        operator: str | None = None,
    ) -> PhotoRecord:
        return self.gallery.set_attributes_by_hand(photo_id, values, source, confidence, operator)

    def import_attribute_sheet(
        self, csv_path: Path, key: SheetKey | None = None, id_pattern: str | None = None, operator: str | None = None
    ) -> AttributeSheet:
        return self.gallery.import_attribute_sheet(csv_path, key, id_pattern, operator)

    # -- photos (records for the window: dataclasses, never ORM objects) ----------------------------
    def photo(self, photo_id: int) -> PhotoRecord:
        return self.catalogue.photo(photo_id)

    def thumbnail(self, photo_id: int) -> bytes:
        """The JPEG thumbnail stored at import."""
        return self.catalogue.thumbnail(photo_id)

    def folders(self) -> list[FolderSummary]:
        return self.catalogue.folders()

    # -- search --------------------------------------------------------------------------------
    def embed_sketches(self, sketches: Sequence[Sketch]) -> np.ndarray:
        pixels = [sketch_pixels(s) for s in sketches]  # a sketch that cannot be read fails before the network loads
        return embed_sketches(self.model, pixels)

    def region_comparison(self, pixels: np.ndarray, photo_ids: Sequence[int]) -> QueryRegions:
        """Which regions of the sketch and each photo agree (core.casework.regions)."""
        return self.regions.for_pixels(pixels, photo_ids)

    def search_embeddings(
        self, queries: np.ndarray, top_k: int = 10, where: Mapping[str, str] | None = None, min_confidence: float = 0.0
    ) -> list[list[Candidate]]:
        return search_embeddings(self.searched, queries, top_k, where, min_confidence)

    def search(
        self,
        sketches: Sequence[Sketch],
        top_k: int = 10,
        where: Mapping[str, str] | None = None,
        min_confidence: float = 0.0,
    ) -> list[SearchResult]:
        validate_filters(self.schema, where)  # a bad filter fails before any sketch is embedded
        queries = self.embed_sketches(sketches)
        ranked = self.search_embeddings(queries, top_k, where, min_confidence)
        return [SearchResult(sketch_label(s, i), c) for i, (s, c) in enumerate(zip(sketches, ranked))]

    # -- casework (core.casework.desk) ----------------------------------------------------------
    @property
    def operator(self) -> str:
        """Who is recorded for searches, reviews and changes (editable)."""
        return self.desk.operator

    @operator.setter
    def operator(self, operator: str) -> None:
        self.desk.operator = operator

    def set_operator(self, name: str, remember: bool = False) -> str:
        return self.desk.set_operator(name, remember)

    def record_search(self, query: SearchQuery, candidates: Sequence[Candidate], **how) -> tuple[int, int]:
        """Store a search that was shown: see :meth:`CaseDesk.record_search`, where every search is
        recorded."""
        return self.desk.record_search(query, candidates, **how)

    def record_drawn_search(self, pixels: np.ndarray, strokes_json: str, scan, candidates, **how) -> tuple[int, int]:
        """Record a ranking the window showed for a drawn sketch: see :meth:`CaseDesk.record_drawn_search`."""
        return self.desk.record_drawn_search(pixels, strokes_json, scan, candidates, **how)

    def search_file_recorded(
        self,
        path: Path,
        top_k: int = 10,
        where: Mapping[str, str] | None = None,
        min_confidence: float = 0.0,
        case_id: int | None = None,
    ) -> tuple[SearchResult, int]:
        """Search with a sketch file and record it (the bytes searched are the bytes recorded)."""
        validate_filters(self.schema, where)
        started = utcnow()
        query, pixels = file_query(path)
        ranked = self.search_embeddings(self.embed_sketches([pixels]), top_k, where, min_confidence)[0]
        search_id, _ = self.desk.record_search(
            query, ranked, where=where, min_confidence=min_confidence, top_k=top_k, started_at=started, case_id=case_id
        )
        return SearchResult(str(path), ranked), search_id

    def replay(self, search_id: int) -> ReplayReport:
        """Run a recorded search's newest ranking again and say what changed (core.casework.replay)."""

        def rank(pixels: np.ndarray, top_k: int, where: Mapping[str, str], min_confidence: float) -> list[Candidate]:
            return self.search_embeddings(self.embed_sketches([pixels]), top_k, where, min_confidence)[0]

        return replay(self.casework, self.catalogue, self.manifest, search_id, rank)

    def review(
        self, search_id: int, rank: int, mark: ReviewMark, note: str = "", photo_id: int | None = None
    ) -> Review:
        return self.desk.review(search_id, rank, mark, note, photo_id)

    def new_case(self, number: str, title: str, notes: str = "") -> CaseInfo:
        return self.desk.new_case(number, title, notes)

    def open_case(self, number: str) -> CaseInfo:
        """The case, opened again if it was closed."""
        return self.desk.open_case(number)

    def close_case(self, number: str) -> CaseInfo:
        return self.desk.close_case(number)

    def cases(self) -> list[CaseInfo]:
        return self.casework.cases()

    def export_case_report(self, number: str, path: Path, top: int = DEFAULT_TOP) -> Path:
        return self.desk.export_case_report(number, path, top, self.regions)

    def export_audit_log(self, path: Path) -> tuple[Path, AuditCheck]:
        return self.desk.export_audit_log(path)

    # -- health --------------------------------------------------------------------------------
    def stats(self) -> CatalogueStats:
        indexed = len(self.indexes)
        return CatalogueStats(
            photos=self.catalogue.count_photos(),
            indexed=indexed,
            failed=len(self.catalogue.last_import_failures()),
            missing=self.catalogue.count_missing(),
            model=self.model_info(),
        )

    def verify(
        self, files: bool = False, rehash: bool = False, progress: Callable[[RehashProgress], None] | None = None
    ) -> VerifyReport:
        """See :func:`core.gallery.verify.verify_gallery`."""
        return verify_gallery(
            self.catalogue, self.indexes, self.attribute_tables, self.manifest.name, files, rehash, progress
        )
