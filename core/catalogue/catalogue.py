"""The catalogue API. Every public method runs in its own short transaction and returns plain
dataclasses or arrays; ORM objects never leave this module."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, create_engine, delete, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.catalogue.migrations import upgrade
from core.catalogue.orm import Embedding, ImportFailureRow, ImportRun, Model, Photo, PhotoAttribute
from core.errors import CatalogueError, UnknownPhotoError
from core.types import AttributeSource, AttributeValue, FolderSummary, ImportFailure, ImportSummary, PhotoRecord

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class FileState:
    """What the catalogue knows of a path, enough to skip an unchanged file without reading it."""

    photo_id: int
    sha256: str
    size_bytes: int
    mtime_ns: int


@dataclass(frozen=True)
class NewPhoto:
    path: str
    sha256: str
    size_bytes: int
    mtime_ns: int
    width: int
    height: int
    source_folder: str
    thumbnail: bytes
    embedding: np.ndarray  # float32, unit length
    attributes: Mapping[str, tuple[str, float]]  # model predictions: name -> (value, confidence)


@dataclass(frozen=True)
class AttributeTable:
    """Effective attribute values of every photo, as arrays for fast filtering.

    ``values[i, j]`` is the index of photo ``ids[i]``'s value of attribute ``names[j]`` in that
    attribute's value list (-1 when unknown); ``confidence`` is 1 for manual/imported values."""

    ids: np.ndarray  # int64, N
    names: tuple[str, ...]
    values: np.ndarray  # int16, N x A
    confidence: np.ndarray  # float32, N x A


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001 - DB-API connection
        # Take transaction control away from the sqlite3 module (which would not wrap DDL in one),
        # so that migrations and batch commits are all-or-nothing.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable at each checkpoint; never corrupt
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # noqa: ANN001
        connection.exec_driver_sql("BEGIN")


class Catalogue:
    FILE_NAME = "catalogue.sqlite3"

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / self.FILE_NAME
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogueError(f"{self.data_dir}: cannot create the data folder ({exc.strerror or exc})") from None
        if not os.access(self.data_dir, os.R_OK | os.W_OK | os.X_OK):
            raise CatalogueError(f"{self.data_dir}: the data folder is not readable and writable")
        self.engine = create_engine(f"sqlite:///{self.path}", connect_args={"timeout": 30, "check_same_thread": False})
        _configure_sqlite(self.engine)
        try:
            with self.engine.begin() as connection:
                upgrade(connection, str(self.path))
        except CatalogueError:
            self.engine.dispose()
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. "file is not a database"
            self.engine.dispose()
            raise CatalogueError(f"{self.path}: cannot open the catalogue ({exc.__class__.__name__}: {exc})") from None
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._mark_interrupted_imports()

    def close(self) -> None:
        self.engine.dispose()

    def _begin(self) -> Session:
        return self._session.begin()

    # -- models ------------------------------------------------------------------------------
    def register_model(self, sha256: str, name: str, embedding_dim: int, manifest: dict) -> None:
        with self._begin() as session:
            if session.get(Model, sha256) is None:
                session.add(
                    Model(
                        sha256=sha256,
                        name=name,
                        embedding_dim=embedding_dim,
                        manifest_json=json.dumps(manifest),
                        registered_at=utcnow(),
                    )
                )

    # -- what is on file -----------------------------------------------------------------------
    def file_states(self) -> dict[str, FileState]:
        with self._begin() as session:
            rows = session.execute(select(Photo.path, Photo.id, Photo.sha256, Photo.size_bytes, Photo.mtime_ns))
            return {path: FileState(pid, sha, size, mtime) for path, pid, sha, size, mtime in rows}

    def paths_by_sha(self) -> dict[str, tuple[int, str]]:
        with self._begin() as session:
            return {sha: (pid, path) for sha, pid, path in session.execute(select(Photo.sha256, Photo.id, Photo.path))}

    def present_photos(self) -> list[tuple[int, str, str]]:
        """(id, path, sha256) of the photos found at the last import, by id."""
        with self._begin() as session:
            rows = session.execute(
                select(Photo.id, Photo.path, Photo.sha256).where(Photo.missing_since.is_(None)).order_by(Photo.id)
            )
            return [(pid, path, sha) for pid, path, sha in rows]

    def count_photos(self) -> int:
        with self._begin() as session:
            return session.scalar(select(func.count(Photo.id))) or 0

    def count_missing(self) -> int:
        with self._begin() as session:
            return session.scalar(select(func.count(Photo.id)).where(Photo.missing_since.is_not(None))) or 0

    # -- writing photos ------------------------------------------------------------------------
    def add_photos(self, photos: Sequence[NewPhoto], model_sha256: str) -> list[int]:
        """Insert photos with their embeddings and predicted attributes in one transaction."""
        now = utcnow()
        with self._begin() as session:
            rows = [
                Photo(
                    path=p.path,
                    sha256=p.sha256,
                    size_bytes=p.size_bytes,
                    mtime_ns=p.mtime_ns,
                    width=p.width,
                    height=p.height,
                    imported_at=now,
                    source_folder=p.source_folder,
                    thumbnail=p.thumbnail,
                    missing_since=None,
                )
                for p in photos
            ]
            session.add_all(rows)
            session.flush()
            for row, photo in zip(rows, photos):
                session.add(
                    Embedding(
                        photo_id=row.id,
                        model_sha256=model_sha256,
                        vector=np.asarray(photo.embedding, np.float32).tobytes(),
                    )
                )
                for name, (value, confidence) in photo.attributes.items():
                    session.add(
                        PhotoAttribute(
                            photo_id=row.id,
                            name=name,
                            source=AttributeSource.MODEL.value,
                            value=value,
                            confidence=float(confidence),
                        )
                    )
            return [row.id for row in rows]

    def relocate_photo(self, photo_id: int, path: str, size_bytes: int, mtime_ns: int, source_folder: str) -> None:
        """A known photo (same content) found at a new path, or with a new modification time."""
        with self._begin() as session:
            session.execute(
                update(Photo)
                .where(Photo.id == photo_id)
                .values(
                    path=path, size_bytes=size_bytes, mtime_ns=mtime_ns, source_folder=source_folder, missing_since=None
                )
            )

    def delete_photos(self, photo_ids: Iterable[int]) -> None:
        ids = list(photo_ids)
        if ids:
            with self._begin() as session:
                session.execute(delete(Photo).where(Photo.id.in_(ids)))

    def mark_missing(self, photo_ids: Iterable[int]) -> None:
        ids = list(photo_ids)
        if ids:
            with self._begin() as session:
                session.execute(
                    update(Photo).where(Photo.id.in_(ids), Photo.missing_since.is_(None)).values(missing_since=utcnow())
                )

    def mark_present(self, photo_ids: Iterable[int]) -> None:
        ids = list(photo_ids)
        if ids:
            with self._begin() as session:
                session.execute(update(Photo).where(Photo.id.in_(ids)).values(missing_since=None))

    def missing_photos(self) -> list[tuple[int, str]]:
        """(id, path) of the photos flagged missing."""
        with self._begin() as session:
            return [
                (pid, path)
                for pid, path in session.execute(
                    select(Photo.id, Photo.path).where(Photo.missing_since.is_not(None)).order_by(Photo.id)
                )
            ]

    # -- embeddings ----------------------------------------------------------------------------
    def store_embeddings(
        self,
        model_sha256: str,
        photo_ids: Sequence[int],
        vectors: np.ndarray,
        attributes: Sequence[Mapping[str, tuple[str, float]]] | None = None,
    ) -> None:
        with self._begin() as session:
            for i, (pid, vector) in enumerate(zip(photo_ids, vectors)):
                session.merge(
                    Embedding(
                        photo_id=int(pid), model_sha256=model_sha256, vector=np.asarray(vector, np.float32).tobytes()
                    )
                )
                for name, (value, confidence) in (attributes[i] if attributes else {}).items():
                    session.merge(
                        PhotoAttribute(
                            photo_id=int(pid),
                            name=name,
                            source=AttributeSource.MODEL.value,
                            value=value,
                            confidence=float(confidence),
                        )
                    )

    def embeddings(self, model_sha256: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """All stored vectors of one model: (ids int64 N, vectors float32 N x dim)."""
        with self._begin() as session:
            rows = session.execute(
                select(Embedding.photo_id, Embedding.vector)
                .where(Embedding.model_sha256 == model_sha256)
                .order_by(Embedding.photo_id)
            ).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vectors

    def embedded_ids(self, model_sha256: str) -> np.ndarray:
        with self._begin() as session:
            ids = session.scalars(
                select(Embedding.photo_id).where(Embedding.model_sha256 == model_sha256).order_by(Embedding.photo_id)
            ).all()
        return np.asarray(ids, dtype=np.int64)

    @staticmethod
    def _unembedded(model_sha256: str):
        """Photos found at the last import that have no embedding for the model."""
        embedded = select(Embedding.photo_id).where(Embedding.model_sha256 == model_sha256)
        return (Photo.id.not_in(embedded), Photo.missing_since.is_(None))

    def ids_without_embedding(self, model_sha256: str) -> list[tuple[int, str]]:
        """(id, path) of the photos found at the last import that have no embedding for the model."""
        with self._begin() as session:
            return [
                (pid, path)
                for pid, path in session.execute(
                    select(Photo.id, Photo.path).where(*self._unembedded(model_sha256)).order_by(Photo.id)
                )
            ]

    def count_without_embedding(self, model_sha256: str) -> int:
        with self._begin() as session:
            return session.scalar(select(func.count(Photo.id)).where(*self._unembedded(model_sha256))) or 0

    # -- attributes ----------------------------------------------------------------------------
    def set_attribute(
        self, photo_id: int, name: str, value: str, source: AttributeSource, confidence: float = 1.0
    ) -> None:
        with self._begin() as session:
            if session.get(Photo, photo_id) is None:
                raise UnknownPhotoError(f"no photo with id {photo_id}")
            session.merge(
                PhotoAttribute(photo_id=photo_id, name=name, source=source.value, value=value, confidence=confidence)
            )

    def set_attributes(self, rows: Iterable[tuple[int, str, str]], source: AttributeSource) -> int:
        """Set many (photo_id, name, value) at once, in one transaction; returns the count."""
        count = 0
        with self._begin() as session:
            for photo_id, name, value in rows:
                session.merge(
                    PhotoAttribute(photo_id=photo_id, name=name, source=source.value, value=value, confidence=1.0)
                )
                count += 1
        return count

    def attributes_of(self, photo_ids: Sequence[int]) -> dict[int, dict[str, AttributeValue]]:
        """Effective attributes: per name the manual value, else the imported one, else the model's."""
        result: dict[int, dict[str, AttributeValue]] = {int(pid): {} for pid in photo_ids}
        if not result:
            return result
        with self._begin() as session:
            rows = session.execute(
                select(
                    PhotoAttribute.photo_id,
                    PhotoAttribute.name,
                    PhotoAttribute.value,
                    PhotoAttribute.confidence,
                    PhotoAttribute.source,
                ).where(PhotoAttribute.photo_id.in_(list(result)))
            ).all()
        for pid, name, value, confidence, source in rows:
            candidate = AttributeValue(value, confidence, AttributeSource(source))
            current = result[pid].get(name)
            if current is None or candidate.source.priority > current.source.priority:
                result[pid][name] = candidate
        return result

    def attribute_table(self, schema_values: Mapping[str, Sequence[str]]) -> AttributeTable:
        """Effective values of every photo for the attributes in ``schema_values`` (name -> values).

        Names, values and precedence are resolved inside SQLite, so a gallery of 100k photos with a dozen
        attributes each loads in about a second."""
        names = tuple(schema_values)
        codes = [
            (name, value, j, code) for j, name in enumerate(names) for code, value in enumerate(schema_values[name])
        ]
        priority = " ".join(f"WHEN '{s.value}' THEN {s.priority}" for s in AttributeSource)
        with self.engine.connect() as connection:
            # the DB-API cursor gives plain tuples, which numpy converts in C (rows wrapped by
            # SQLAlchemy cost seconds per million)
            cursor = connection.connection.driver_connection.cursor()
            ids = np.asarray([r[0] for r in cursor.execute("SELECT id FROM photos ORDER BY id")], dtype=np.int64)
            rows = []
            if codes:
                mapping = " UNION ALL ".join("SELECT ?, ?, ?, ?" for _ in codes)
                rows = cursor.execute(
                    f"WITH codes(name, value, col, code) AS ({mapping}) "
                    # with a lone MAX(), SQLite takes the other columns from the row holding the
                    # maximum: one row per photo and attribute, from its highest-ranked source
                    f"SELECT a.photo_id, c.col, c.code, a.confidence, MAX(CASE a.source {priority} END) "
                    "FROM photo_attributes AS a JOIN codes AS c ON a.name = c.name AND a.value = c.value "
                    "GROUP BY a.photo_id, a.name",  # the primary key's order: no sort needed
                    tuple(v for row in codes for v in row),
                ).fetchall()
            cursor.close()
        values = np.full((len(ids), len(names)), -1, dtype=np.int16)
        confidence = np.zeros((len(ids), len(names)), dtype=np.float32)
        if rows:
            data = np.asarray(rows, dtype=np.float64)
            row_index = np.searchsorted(ids, data[:, 0].astype(np.int64))
            columns = data[:, 1].astype(np.intp)
            values[row_index, columns] = data[:, 2].astype(np.int16)
            confidence[row_index, columns] = data[:, 3]
        return AttributeTable(ids=ids, names=names, values=values, confidence=confidence)

    # -- reading photos ------------------------------------------------------------------------
    def photos(self, photo_ids: Sequence[int]) -> list[PhotoRecord]:
        """Records in the order asked; unknown ids are left out."""
        ids = [int(i) for i in photo_ids]
        with self._begin() as session:
            rows = {p.id: p for p in session.scalars(select(Photo).where(Photo.id.in_(ids)))}
            records = {
                pid: PhotoRecord(
                    id=p.id,
                    path=p.path,
                    sha256=p.sha256,
                    size_bytes=p.size_bytes,
                    width=p.width,
                    height=p.height,
                    imported_at=p.imported_at,
                    source_folder=p.source_folder,
                    missing=p.missing_since is not None,
                )
                for pid, p in rows.items()
            }
        attributes = self.attributes_of(list(records))
        return [PhotoRecord(**{**records[i].__dict__, "attributes": attributes[i]}) for i in ids if i in records]

    def photo(self, photo_id: int) -> PhotoRecord:
        found = self.photos([photo_id])
        if not found:
            raise UnknownPhotoError(f"no photo with id {photo_id}")
        return found[0]

    def thumbnail(self, photo_id: int) -> bytes:
        with self._begin() as session:
            data = session.scalar(select(Photo.thumbnail).where(Photo.id == photo_id))
        if data is None:
            raise UnknownPhotoError(f"no photo with id {photo_id}")
        return data

    def ids_by_name(self) -> dict[str, list[int]]:
        """File name (no folder) -> photo ids, for attribute sheets that name files, not paths."""
        names: dict[str, list[int]] = {}
        with self._begin() as session:
            for pid, path in session.execute(select(Photo.id, Photo.path)):
                names.setdefault(os.path.basename(path), []).append(pid)
        return names

    def folders(self) -> list[FolderSummary]:
        with self._begin() as session:
            rows = session.execute(
                select(Photo.source_folder, func.count(Photo.id), func.count(Photo.missing_since))
                .group_by(Photo.source_folder)
                .order_by(Photo.source_folder)
            ).all()
        return [FolderSummary(folder, photos, missing) for folder, photos, missing in rows]

    def photo_ids_in_folder(self, folder: str) -> list[int]:
        with self._begin() as session:
            return list(session.scalars(select(Photo.id).where(Photo.source_folder == folder)))

    # -- import log ----------------------------------------------------------------------------
    def start_import(self, roots: Sequence[str]) -> int:
        with self._begin() as session:
            run = ImportRun(
                started_at=utcnow(),
                roots=json.dumps(list(roots)),
                status="running",
                added=0,
                updated=0,
                unchanged=0,
                failed=0,
            )
            session.add(run)
            session.flush()
            return run.id

    def record_failures(self, import_id: int, failures: Sequence[ImportFailure]) -> None:
        if failures:
            with self._begin() as session:
                session.add_all(ImportFailureRow(import_id=import_id, path=f.path, reason=f.reason) for f in failures)

    def finish_import(self, import_id: int, summary: ImportSummary) -> None:
        with self._begin() as session:
            session.execute(
                update(ImportRun)
                .where(ImportRun.id == import_id)
                .values(
                    finished_at=utcnow(),
                    status="cancelled" if summary.cancelled else "done",
                    added=summary.added,
                    updated=summary.updated,
                    unchanged=summary.unchanged,
                    failed=len(summary.failed),
                )
            )

    def last_import_failures(self) -> list[ImportFailure]:
        with self._begin() as session:
            last = session.scalar(select(func.max(ImportRun.id)))
            if last is None:
                return []
            rows = session.execute(
                select(ImportFailureRow.path, ImportFailureRow.reason)
                .where(ImportFailureRow.import_id == last)
                .order_by(ImportFailureRow.id)
            )
            return [ImportFailure(path, reason) for path, reason in rows]

    def _mark_interrupted_imports(self) -> None:
        with self._begin() as session:
            interrupted = session.execute(
                update(ImportRun).where(ImportRun.status == "running").values(status="interrupted")
            ).rowcount
        if interrupted:
            log.warning(
                "%s: %d import(s) did not finish (interrupted); their committed batches are kept",
                self.path,
                interrupted,
            )
