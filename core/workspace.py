"""A workspace: one data folder (catalogue + index) opened with one model. The GUI and the command
line both drive SketchSearch through this facade, and through the services it composes, each
reached as an attribute: ``gallery`` (what changes the photos), ``desk`` (cases, recorded searches,
reviews, exports), ``searcher`` (searching and replaying), ``regions`` (where a sketch and a photo
agree), ``videos`` (video import, where a crop was seen, removal of a video), ``indexes``,
``models``, ``casework``.

The network itself (torch) loads on first use: reading the catalogue, its statistics, attributes
and the index needs only the model's manifest, so those commands start in a fraction of a second."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.casework.audit_key import load_audit_key
from core.casework.desk import CaseDesk
from core.casework.regions import RegionCompare
from core.casework.store import CaseworkStore
from core.catalogue.catalogue import AttributeTable, Catalogue
from core.catalogue.writer_lock import WriterLock
from core.common.paths import default_data_dir, default_model_dir
from core.common.types import (
    Candidate,
    CatalogueStats,
    FolderSummary,
    ImportSummary,
    PhotoRecord,
    SearchResult,
    VerifyReport,
)
from core.gallery.importer import ProgressCallback
from core.gallery.integrity import RehashProgress
from core.gallery.service import Gallery
from core.gallery.verify import verify_gallery
from core.index import attribute_cache
from core.index.attribute_table import AttributeTables
from core.index.service import IndexService
from core.index.vectors import DEFAULT_POLICY, IndexPolicy, VectorIndex
from core.model.attributes import AttributeSchema
from core.model.handle import ModelHandle
from core.model.manifest import Manifest
from core.search import SearchedGallery, Searcher, Sketch
from core.video.service import VideoImports

if TYPE_CHECKING:
    from core.model.embedded import EmbeddingModel


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
        index_path = self.data_dir / "index" / f"{self.embedding_key[:16]}.faiss"
        self.indexes = IndexService(self.catalogue, self.embedding_key, self.embedding_dim, index_path, index_policy)
        # entries are sealed under the audit key when one is given (or set): see core.casework.audit_key
        self.casework = CaseworkStore(self.catalogue, audit_key=load_audit_key(audit_key_file, self.data_dir))
        # which regions of a sketch and a photo agree, for the comparison view and the case report
        self.regions = RegionCompare(self.catalogue, self.models)
        self.desk = CaseDesk(self.casework, self.manifest, self.data_dir, self.regions)
        self.gallery = Gallery(self.catalogue, self.models, self.indexes, self.desk, self.writer)
        self.gallery.open_index()
        self.videos = VideoImports(self.gallery, self.data_dir)  # video import, provenance, removal (core.video)
        self.desk.record_model_in_use()
        searched = SearchedGallery(self.indexes, self.catalogue, self.attribute_tables, self.schema)
        self.searcher = Searcher(self.models, searched, self.desk)

    def close(self) -> None:
        self.indexes.stop()
        self.attribute_tables.close()
        self.catalogue.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the model (core.model.handle) and its index (core.index.service) ---------------------------
    @property
    def model(self) -> EmbeddingModel:
        """The network, loaded the first time it is needed."""
        return self.models.model

    @property
    def embedding_key(self) -> str:
        return self.manifest.embedding_key

    @property
    def embedding_dim(self) -> int:
        return self.manifest.embedding_dim

    @property
    def schema(self) -> AttributeSchema:
        return self.manifest.attribute_schema

    @property
    def index(self) -> VectorIndex:
        return self.indexes.index

    # -- photos in (core.gallery.service: its other changes through :attr:`gallery`) --------------
    def import_paths(
        self,
        roots: Iterable[str | Path],
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        batch_size: int = 32,
    ) -> ImportSummary:
        return self.gallery.import_paths(roots, progress, cancel, batch_size)

    # -- photos (records for the window: dataclasses, never ORM objects) ----------------------------
    def photo(self, photo_id: int) -> PhotoRecord:
        return self.catalogue.photo(photo_id)

    def thumbnail(self, photo_id: int) -> bytes:
        """The JPEG thumbnail stored at import."""
        return self.catalogue.thumbnail(photo_id)

    def folders(self) -> list[FolderSummary]:
        return self.catalogue.folders()

    def attribute_table(self) -> AttributeTable:
        """Effective attribute values of every photo, kept up to date (see :class:`AttributeTables`)."""
        return self.attribute_tables.table()

    def photo_ids(self) -> np.ndarray:
        """Ids of every catalogued photo, ascending."""
        return self.attribute_table().ids

    # -- search (core.search: a file searched and recorded, or replayed, through :attr:`searcher`) --
    def embed_sketches(self, sketches: Sequence[Sketch]) -> np.ndarray:
        return self.searcher.embed_sketches(sketches)

    def search_embeddings(
        self, queries: np.ndarray, top_k: int = 10, where: Mapping[str, str] | None = None, min_confidence: float = 0.0
    ) -> list[list[Candidate]]:
        return self.searcher.search_embeddings(queries, top_k, where, min_confidence)

    def search(
        self,
        sketches: Sequence[Sketch],
        top_k: int = 10,
        where: Mapping[str, str] | None = None,
        min_confidence: float = 0.0,
    ) -> list[SearchResult]:
        return self.searcher.search(sketches, top_k, where, min_confidence)

    # -- health --------------------------------------------------------------------------------
    def stats(self) -> CatalogueStats:
        return self.gallery.stats()

    def verify(
        self, files: bool = False, rehash: bool = False, progress: Callable[[RehashProgress], None] | None = None
    ) -> VerifyReport:
        """See :func:`core.gallery.verify.verify_gallery`."""
        return verify_gallery(
            self.catalogue, self.indexes, self.attribute_tables, self.manifest.name, files, rehash, progress
        )
