"""A workspace: one data folder (catalogue + index) opened with one model. The GUI and the command
line both drive SketchSearch through this facade."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from core.attribute_sheet import read_attribute_sheet
from core.catalogue.catalogue import AttributeTable, Catalogue
from core.errors import ImageLoadError
from core.gallery_import import ProgressCallback, import_paths
from core.imaging import load_rgb
from core.index import DEFAULT_POLICY, FLAT, IndexFileError, IndexPolicy, VectorIndex
from core.index_rebuild import BackgroundRebuild, build_from_catalogue
from core.model.attributes import AttributeSchema
from core.model.inference import InferenceModel
from core.model.network import Modality
from core.paths import default_data_dir, default_model_dir
from core.search import Sketch, embed_sketches, search_embeddings, sketch_label, validate_filters
from core.types import (
    AttributeSource,
    Candidate,
    CatalogueStats,
    ImportFailure,
    ImportProgress,
    ImportSummary,
    ModelInfo,
    SearchResult,
    VerifyReport,
)

log = logging.getLogger(__name__)


def index_vector_problems(
    index: VectorIndex, catalogue: Catalogue, model_sha256: str, chunk: int = 50_000
) -> list[str]:
    """Does every vector in ``index`` match the embedding stored in SQLite? Read in chunks, so a
    gallery of millions is checked without holding all its embeddings at once. A flat index holds
    the vectors exactly; an IVF index holds quantised codes, which decode to within a small error."""
    exact = index.kind == FLAT
    for ids, vectors in catalogue.iter_embeddings(model_sha256, index.dim, chunk):
        stored = index.reconstruct_many(ids)
        if exact:
            if not np.allclose(stored, vectors, atol=1e-6):
                return ["index vectors differ from the embeddings stored in the catalogue"]
        else:
            # quantisation moves a unit vector by far less than this; another photo's vector, much more
            cosine = np.einsum("ij,ij->i", stored, vectors) / np.maximum(np.linalg.norm(stored, axis=1), 1e-12)
            wrong = int((cosine < 0.98).sum())
            if wrong:
                return [f"{wrong} index vector(s) differ from the embeddings stored in the catalogue"]
    return []


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
        model: InferenceModel | None = None,
        index_policy: IndexPolicy = DEFAULT_POLICY,
    ):
        """Open ``data_dir`` (created if needed) with the model in ``model_dir`` (default: the bundled
        one), or with an already loaded ``model`` (switching galleries need not reload it)."""
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.model = model or InferenceModel(Path(model_dir) if model_dir else default_model_dir(), device)
        self.catalogue = Catalogue(self.data_dir)
        manifest = self.model.manifest
        self.catalogue.register_model(
            self.model.embedding_key, manifest.name, manifest.embedding_dim, manifest.to_json()
        )
        self.index_path = self.data_dir / "index" / f"{self.model.embedding_key[:16]}.faiss"
        # FAISS indexes are not safe for concurrent writes and reads: the GUI searches while imports run
        self._lock = threading.RLock()
        self._attribute_table: AttributeTable | None = None
        self.index_policy = index_policy
        self._background = BackgroundRebuild(self)
        self.index = self._open_index()

    def close(self) -> None:
        self._background.stop()
        self.catalogue.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema(self) -> AttributeSchema:
        return self.model.manifest.attribute_schema

    def model_info(self) -> ModelInfo:
        m = self.model.manifest
        return ModelInfo(
            name=m.name,
            sha256=self.model.sha256,
            backbone=m.backbone,
            device=str(self.model.device),
            attributes_trained=m.attribute_head_trained,
            provenance=m.provenance,
            licence=m.licence,
            data_terms=m.data_terms,
        )

    def photo_ids(self) -> np.ndarray:
        """Ids of every catalogued photo, ascending."""
        return self.attribute_table().ids

    # -- index ---------------------------------------------------------------------------------
    def _open_index(self) -> VectorIndex:
        expected = self.catalogue.embedded_ids(self.model.embedding_key)
        try:
            index = VectorIndex.load(self.index_path, self.model.embedding_dim, self.model.embedding_key)
        except IndexFileError as exc:
            if self.index_path.exists() or len(expected):
                log.warning("rebuilding the index from the catalogue: %s", exc)
            return self.rebuild_index()
        if not np.array_equal(np.sort(index.ids()), expected):
            log.warning(
                "rebuilding the index from the catalogue: %s holds %d photos, the catalogue %d",
                self.index_path,
                len(index),
                len(expected),
            )
            return self.rebuild_index()
        return index

    def rebuild_index(self) -> VectorIndex:
        """A fresh index from the embeddings stored in SQLite (the source of truth), saved atomically."""
        index, _ = build_from_catalogue(
            self.catalogue, self.model.embedding_key, self.model.embedding_dim, self.index_policy
        )
        index.save(self.index_path)
        with self._lock:
            self.index = index
        return index

    def save_index(self) -> None:
        with self._lock:
            self.index.save(self.index_path)
            outgrown = self.index_policy.outgrown(self.index)
        if outgrown:
            self._background.start()

    def wait_for_index_rebuild(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild of the index, if one runs; False if still running."""
        return self._background.wait(timeout)

    def index_add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self._lock:
            self.index.add(ids, vectors)
            self._attribute_table = None

    def index_search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None):
        with self._lock:
            return self.index.search(queries, k, allowed)

    def forget_photos(self, photo_ids: Sequence[int]) -> None:
        """Remove photos from the catalogue and the index (the files themselves are never touched)."""
        self.catalogue.delete_photos(photo_ids)
        with self._lock:
            self.index.remove(np.asarray(photo_ids, np.int64))
            self._attribute_table = None

    # -- gallery -------------------------------------------------------------------------------
    def import_paths(
        self,
        roots: Iterable[str | Path],
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        batch_size: int = 32,
    ) -> ImportSummary:
        summary = import_paths(self, roots, progress=progress, cancel=cancel, batch_size=batch_size)
        self._attribute_table = None
        return summary

    def import_embeddings(
        self,
        shards: Path,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ImportSummary:
        """Ingest Parquet shards written by ``sketchsearch-cluster embed`` (no re-embedding)."""
        from core.embedding_ingest import ingest_shards

        summary = ingest_shards(self, Path(shards), progress=progress, cancel=cancel)
        self._attribute_table = None
        return summary

    def prune_missing(self) -> int:
        """Forget photos whose files were found gone by an earlier import; returns how many."""
        gone = [photo_id for photo_id, _ in self.catalogue.missing_photos()]
        if gone:
            self.forget_photos(gone)
            self.save_index()
        return len(gone)

    def remove_folder(self, folder: str) -> int:
        ids = self.catalogue.photo_ids_in_folder(folder)
        if ids:
            self.forget_photos(ids)
            self.save_index()
        return len(ids)

    def count_unembedded(self) -> int:
        """Catalogued photos (not flagged missing) with no embedding for this model: after a model change."""
        return self.catalogue.count_without_embedding(self.model.embedding_key)

    def embed_missing(
        self, progress: ProgressCallback | None = None, cancel: threading.Event | None = None, batch_size: int = 32
    ) -> ImportSummary:
        """Embed catalogued photos that have no embedding for this model (after a model change):
        ``updated`` counts the photos embedded, ``failed`` those whose file could not be read. Each
        batch is committed as it is done, so a cancelled or interrupted run resumes where it stopped."""
        started = time.monotonic()
        todo = self.catalogue.ids_without_embedding(self.model.embedding_key)
        summary = ImportSummary()
        for start in range(0, len(todo), batch_size):
            if cancel and cancel.is_set():
                summary.cancelled = True
                break
            ids, images = [], []
            for photo_id, path in todo[start : start + batch_size]:
                try:
                    images.append(load_rgb(path))
                    ids.append(photo_id)
                except ImageLoadError as exc:
                    summary.failed.append(ImportFailure(exc.path, exc.reason))
            if ids:
                embedded = self.model.embed_images(images, Modality.PHOTO)
                attributes = [{n: (a.value, a.confidence) for n, a in per.items()} for per in embedded.attributes]
                self.catalogue.store_embeddings(self.model.embedding_key, ids, embedded.embeddings, attributes)
                self.index_add(np.asarray(ids, np.int64), embedded.embeddings)
                summary.updated += len(ids)
            if progress:
                done = min(start + batch_size, len(todo))
                progress(
                    ImportProgress(
                        done=done,
                        total=len(todo),
                        added=summary.updated,
                        failed=len(summary.failed),
                        rate=done / max(time.monotonic() - started, 1e-9),
                        current=todo[done - 1][1],
                    )
                )
        self.save_index()
        self._attribute_table = None  # predicted attributes of the new model
        summary.seconds = time.monotonic() - started
        return summary

    # -- attributes ----------------------------------------------------------------------------
    def attribute_table(self) -> AttributeTable:
        with self._lock:
            if self._attribute_table is None:
                self._attribute_table = self.catalogue.attribute_table(
                    {a.name: a.values for a in self.schema.attributes}
                )
            return self._attribute_table

    def set_attribute(
        self,
        photo_id: int,
        name: str,
        value: str,
        source: AttributeSource = AttributeSource.MANUAL,
        confidence: float = 1.0,
    ) -> None:
        self.schema.check(name, value)
        self.catalogue.set_attribute(photo_id, name, value, source, confidence)
        self._refresh_attribute_row(photo_id)

    def _refresh_attribute_row(self, photo_id: int) -> None:
        """Update one photo's row of the cached table (a rebuild reads every attribute of the
        gallery: seconds for 100k photos, too slow after each correction in the GUI)."""
        effective = self.catalogue.attributes_of([photo_id])[photo_id]
        with self._lock:
            table = self._attribute_table
            if table is None:
                return
            row = np.searchsorted(table.ids, photo_id)
            if row >= len(table.ids) or table.ids[row] != photo_id:
                self._attribute_table = None
                return
            for j, name in enumerate(table.names):
                found = effective.get(name)
                values = self.schema.spec(name).values
                known = found is not None and found.value in values
                table.values[row, j] = values.index(found.value) if known else -1
                table.confidence[row, j] = found.confidence if known else 0.0

    def import_attribute_sheet(self, csv_path: Path) -> tuple[int, list[str]]:
        """Read a CSV (column ``path`` or ``filename``, then one column per attribute) into imported
        attributes. Returns (values set, rows not matched to a photo). Unknown columns or values
        are refused before anything is written."""
        rows, unmatched = read_attribute_sheet(Path(csv_path), self.schema, self.catalogue)
        count = self.catalogue.set_attributes(rows, AttributeSource.IMPORTED)
        self._attribute_table = None
        return count, unmatched

    # -- search --------------------------------------------------------------------------------
    def embed_sketches(self, sketches: Sequence[Sketch]) -> np.ndarray:
        return embed_sketches(self, sketches)

    def search_embeddings(
        self, queries: np.ndarray, top_k: int = 10, where: Mapping[str, str] | None = None, min_confidence: float = 0.0
    ) -> list[list[Candidate]]:
        return search_embeddings(self, queries, top_k, where, min_confidence)

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

    # -- health --------------------------------------------------------------------------------
    def stats(self) -> CatalogueStats:
        with self._lock:
            indexed = len(self.index)
        return CatalogueStats(
            photos=self.catalogue.count_photos(),
            indexed=indexed,
            failed=len(self.catalogue.last_import_failures()),
            missing=self.catalogue.count_missing(),
            model=self.model_info(),
        )

    def verify(self) -> VerifyReport:
        """Do catalogue, stored embeddings and the index file agree?"""
        problems = []
        photos = self.catalogue.count_photos()
        embedded = self.catalogue.embedded_ids(self.model.embedding_key)
        if len(embedded) != photos:
            problems.append(
                f"{photos - len(embedded)} photo(s) have no embedding for model {self.model.manifest.name} "
                f"(key {self.model.embedding_key[:12]})"
            )
        try:
            on_disk = VectorIndex.load(self.index_path, self.model.embedding_dim, self.model.embedding_key)
        except IndexFileError as exc:
            problems.append(str(exc))
        else:
            if not np.array_equal(np.sort(on_disk.ids()), embedded):
                problems.append(f"index file holds {len(on_disk)} photos, the catalogue {len(embedded)} embeddings")
            else:
                problems.extend(index_vector_problems(on_disk, self.catalogue, self.model.embedding_key))
        return VerifyReport(ok=not problems, problems=problems)
