"""What changes a gallery's photos: imports (image folders, cluster shards), photos forgotten (gone
from disk, or a folder removed), the photos the model in use has no embedding for embedded (and
damaged stored embeddings, when the index is rebuilt), and attribute values stated by hand or by a
sheet. Each writes its audit entries (through the :class:`CaseDesk`), and a run that writes batch by
batch holds the data folder's one-writer lock."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from core.casework import audit
from core.casework.desk import CaseDesk
from core.casework.logged_paths import path_b64, path_fields, path_text
from core.catalogue.catalogue import Catalogue, Record
from core.catalogue.writer_lock import WriterLock
from core.common.types import AttributeSource, CatalogueStats, ImportFailure, ImportSummary, PhotoRecord
from core.gallery.attribute_sheet import AttributeSheet, SheetKey, read_attribute_sheet
from core.gallery.importer import GalleryTarget, ImportTarget, ProgressCallback, import_paths
from core.gallery.reembed import embed_missing, repair_embeddings
from core.index.service import IndexService
from core.index.vectors import VectorIndex
from core.model.handle import ModelHandle


class Gallery:
    def __init__(
        self, catalogue: Catalogue, models: ModelHandle, indexes: IndexService, desk: CaseDesk, writer: WriterLock
    ):
        self.catalogue = catalogue
        self.models = models
        self.manifest = models.manifest  # read without loading the network
        self.indexes = indexes
        self.desk = desk
        self.writer = writer
        self.repair_failures: list[ImportFailure] = []  # damaged embeddings the last rebuild could not redo

    def open_index(self) -> None:
        """Load the index file, or rebuild it (see :meth:`IndexService.open`). While an import runs
        elsewhere its batches are committed before its index is saved: a rebuilt index is searched
        from memory and the file left to the import."""
        self.indexes.open(lambda: self.rebuild_index(save=not self.writer.running_elsewhere()))

    def rebuild_index(self, save: bool = True) -> VectorIndex:
        """A fresh index from the embeddings stored in SQLite (the source of truth), saved atomically.
        A stored embedding that is not a finite unit vector (a damaged row) is never indexed: it is
        embedded again from its file, or dropped (its photo then counts as not embedded) when the
        file cannot be read (:attr:`repair_failures`). The stored vectors are read in chunks."""
        self.repair_failures = []
        key, dim = self.manifest.embedding_key, self.manifest.embedding_dim

        def repair(damaged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            self.repair_failures, ids, vectors = repair_embeddings(
                self.catalogue, lambda: self.models.model, key, dim, damaged
            )
            return ids, vectors

        return self.indexes.rebuild(save, repair)

    def stats(self) -> CatalogueStats:
        return CatalogueStats(
            photos=self.catalogue.count_photos(),
            indexed=len(self.indexes),
            failed=len(self.catalogue.last_import_failures()),
            missing=self.catalogue.count_missing(),
            model=self.models.info(),
        )

    def forget_photos(self, photo_ids: Sequence[int], record: Record | None = None) -> None:
        """Remove photos from the catalogue and the index (the files themselves are never touched);
        ``record(connection, ids)`` writes their audit entry in the deletion's transaction."""
        self.catalogue.delete_photos(photo_ids, record=record)
        self.indexes.remove(np.asarray(photo_ids, np.int64))

    def import_paths(
        self,
        roots: Iterable[str | Path],
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        batch_size: int = 32,
    ) -> ImportSummary:
        """Import the image files under ``roots``; the run is recorded in the catalogue's import log,
        and its ``import`` entry names that record and binds its content."""
        roots = [Path(root) for root in roots]
        target = ImportTarget(**self._target_fields(), model=self.models.model)
        with self.writer.exclusive():
            summary = import_paths(target, roots, progress=progress, cancel=cancel, batch_size=batch_size)
            self.desk.record_import_run(
                "import", self.catalogue.last_import_id(), {"duplicates": len(summary.duplicates)}
            )
        return summary

    def target(self) -> GalleryTarget:
        """What an ingest writes to (core.gallery): the catalogue, the model's manifest, the index's
        callbacks and the audit log, never the workspace."""
        return GalleryTarget(**self._target_fields())

    def _target_fields(self) -> dict:
        return {
            "catalogue": self.catalogue,
            "manifest": self.manifest,
            "add_to_index": self.indexes.add,
            "forget_photos": self.forget_photos,
            "save_index": self.indexes.save,
            "log": self.desk.log_in,
        }

    def import_embeddings(
        self,
        shards: Path,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ImportSummary:
        """Ingest Parquet shards written by ``sketchsearch-cluster embed`` (no re-embedding)."""
        from core.gallery.shard_ingest import ingest_shards

        with self.writer.exclusive():
            summary = ingest_shards(self.target(), Path(shards), progress=progress, cancel=cancel)
            self.desk.record_import_run("import embeddings", self.catalogue.last_import_id())
        return summary

    def prune_missing(self) -> int:
        """Forget photos whose files were found gone by an earlier import; returns how many."""
        gone = [photo_id for photo_id, _ in self.catalogue.missing_photos()]
        if gone:
            self._forget_recorded("prune", gone, {})
        return len(gone)

    def remove_folder(self, folder: str) -> int:
        ids = self.catalogue.photo_ids_in_folder(folder)
        if ids:
            self._forget_recorded("remove folder", ids, path_fields("folder", folder))
        return len(ids)

    def _forget_recorded(self, kind: str, ids: Sequence[int], payload: dict) -> None:
        # [id, sha256, path as text, path's bytes in base64] (see core.casework.logged_paths)
        photos = [[p.id, p.sha256, path_text(p.path), path_b64(p.path)] for p in self.catalogue.photos(ids)]
        # the entry is written in the deletion's transaction: a kill between the two loses neither
        self.forget_photos(
            ids, lambda connection, _ids: self.desk.log_in(connection, kind, {**payload, "photos": photos})
        )
        self.indexes.save()

    def count_unembedded(self) -> int:
        """Catalogued photos (not flagged missing) with no embedding for this model: after a model change."""
        return self.catalogue.count_without_embedding(self.manifest.embedding_key)

    def embed_missing(
        self, progress: ProgressCallback | None = None, cancel: threading.Event | None = None, batch_size: int = 32
    ) -> ImportSummary:
        """Embed catalogued photos that have no embedding for this model (after a model change):
        ``updated`` counts the photos embedded, ``failed`` those whose file could not be read. Each
        batch is committed as it is done, so a cancelled or interrupted run resumes where it stopped."""
        with self.writer.exclusive():
            summary = embed_missing(self.target(), lambda: self.models.model, progress, cancel, batch_size)
            if summary.updated or summary.failed:
                payload = {"model": self.manifest.name, "embedding_key": self.manifest.embedding_key}
                self.desk.record("reindex", {**payload, "embedded": summary.updated, "failed": len(summary.failed)})
        return summary

    def set_attribute(
        self,
        photo_id: int,
        name: str,
        value: str,
        source: AttributeSource = AttributeSource.MANUAL,
        confidence: float = 1.0,
        operator: str | None = None,
    ) -> None:
        """A manual (or imported) value is recorded with ``operator`` (default: the OS user) and the time."""
        self.set_attributes_by_hand(photo_id, {name: value}, source, confidence, operator)

    def set_attributes_by_hand(
        self,
        photo_id: int,
        values: Mapping[str, str],
        source: AttributeSource = AttributeSource.MANUAL,
        confidence: float = 1.0,
        operator: str | None = None,
    ) -> PhotoRecord:
        """Store exactly ``values`` (the ones a person stated; nothing else of the photo changes), all
        checked before any is written, in one transaction. Returns the photo as it is now."""
        for name, value in values.items():
            self.manifest.attribute_schema.check(name, value)
        if source != AttributeSource.MODEL and operator is None:
            operator = self.desk.operator
        self.catalogue.set_values(photo_id, values, source, confidence, operator)
        sha256 = self.catalogue.photo(photo_id).sha256
        payload = {"photo_id": photo_id, "photo_sha256": sha256, "values": dict(values), "source": source.value}
        self.desk.record("attribute correction", payload)
        return self.catalogue.photo(photo_id)

    def import_attribute_sheet(
        self, csv_path: Path, key: SheetKey | None = None, id_pattern: str | None = None, operator: str | None = None
    ) -> AttributeSheet:
        """Read a CSV (rows keyed by ``path``, ``filename`` or person ``id``, then one column per
        attribute) into imported attributes, recorded with ``operator`` (default: the desk's).
        Returns what was read, with the rows matched to no photo or to several. Unknown columns or
        values are refused before anything is written."""
        sheet = read_attribute_sheet(Path(csv_path), self.manifest.attribute_schema, self.catalogue, key, id_pattern)
        count = self.catalogue.set_attributes(sheet.rows, AttributeSource.IMPORTED, operator or self.desk.operator)
        digest = audit.sha256_hex(Path(csv_path).read_bytes())
        self.desk.record("attribute sheet", {**path_fields("file", csv_path), "sha256": digest, "values": count})
        return sheet
