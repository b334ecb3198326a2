"""The catalogue API. Every public method runs in its own short transaction and returns plain
dataclasses or arrays; ORM objects never leave this module."""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
from sqlalchemy import URL, Connection, DateTime, Engine, create_engine, delete, event, func, insert, select, update
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite as sqlite_dialect
from sqlalchemy.orm import Session, sessionmaker

from core.catalogue.migrations import upgrade
from core.catalogue.orm import (
    CHANGE_LOG_MARKER,
    Embedding,
    FilePath,
    ImportFailureRow,
    ImportRun,
    Model,
    Photo,
    PhotoAttribute,
)
from core.catalogue.structure import change_log_problems
from core.common import errors
from core.common.clock import utcnow
from core.common.errors import CatalogueError, UnknownPhotoError
from core.common.private_files import create_private_file, make_private_folder
from core.common.types import AttributeSource, AttributeValue, FolderSummary, ImportFailure, ImportSummary, PhotoRecord

log = logging.getLogger(__name__)


MAX_SQLITE_INTEGER = 2**63 - 1

# ``record(connection, photo ids)``: run inside a write's own transaction (its audit entry), so that
# the write and its record are committed together or not at all
Record = Callable[[Connection, list[int]], None]


def gallery_size(connection: Connection) -> tuple[int, int | None]:
    """(photos catalogued, id of the newest import run or None), read in the caller's transaction
    (a search is recorded with the gallery it ranked, in its own write)."""
    photos = connection.execute(select(func.count(Photo.id))).scalar_one()
    return photos, connection.execute(select(func.max(ImportRun.id))).scalar()


def photo_hashes_and_thumbnails(connection: Connection, photo_ids: Sequence[int]) -> dict[int, tuple[str, bytes]]:
    """id -> (sha256, JPEG thumbnail) of those of ``photo_ids`` still catalogued, read in the caller's
    transaction (a recorded ranking keeps them: a photo pruned later still shows in it)."""
    ids = [int(i) for i in photo_ids]
    rows = connection.execute(select(Photo.id, Photo.sha256, Photo.thumbnail).where(Photo.id.in_(ids)))
    return {photo_id: (sha256, thumbnail) for photo_id, sha256, thumbnail in rows}


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

    ids: np.ndarray  # int64, N, ascending
    names: tuple[str, ...]
    values: np.ndarray  # int16, N x A
    confidence: np.ndarray  # float32, N x A
    # a whole read's position in the attribute change log (read in the same snapshot as its rows):
    # the table is complete up to this ``seq``; None for a read by id and a merged table
    seq: int | None = None

    def merged(self, fresh: AttributeTable, touched: np.ndarray) -> AttributeTable:
        """This table brought up to date for the photos ``touched``, given ``fresh``: those of them
        that still exist, read again. When no photo came or went, their rows are updated in place
        and this table is returned; otherwise a new table (this one is left as it was)."""
        if fresh.names != self.names:
            raise ValueError("attribute tables of different attributes cannot be merged")
        touched = np.unique(np.asarray(touched, dtype=np.int64))
        rows = np.searchsorted(self.ids, touched)
        held = rows < len(self.ids)
        held[held] = self.ids[rows[held]] == touched[held]
        rows = rows[held]
        if np.array_equal(self.ids[rows], fresh.ids):  # the same photos: only their values changed
            self.values[rows] = fresh.values
            self.confidence[rows] = fresh.confidence
            return self
        keep = np.ones(len(self.ids), dtype=bool)
        keep[rows] = False
        ids = np.concatenate([self.ids[keep], fresh.ids])
        values = np.concatenate([self.values[keep], fresh.values])
        confidence = np.concatenate([self.confidence[keep], fresh.confidence])
        if len(ids) and not np.all(ids[1:] > ids[:-1]):  # new photos have the highest ids: rarely needed
            order = np.argsort(ids, kind="stable")
            ids, values, confidence = ids[order], values[order], confidence[order]
        return AttributeTable(ids=ids, names=self.names, values=values, confidence=confidence)


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
        # IMMEDIATE takes the write lock at once: a writer that reads before it writes (the audit
        # chain's head) never sees a head another writer is about to replace
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# the conversions SQLAlchemy applies to these columns, for rows read through the DB-API cursor; a
# page of candidates holds hundreds of attribute rows, most stamped by the same few writes, so each
# distinct stamp is parsed once (a datetime is immutable: sharing one is safe)
_stored_datetime = functools.lru_cache(maxsize=4096)(
    DateTime().dialect_impl(sqlite_dialect()).result_processor(sqlite_dialect(), None)
)
_path_type = FilePath()
_SOURCES = {source.value: source for source in AttributeSource}


def _stored_path(value: str | bytes) -> str:
    return _path_type.process_result_value(value, None)


def database_error(path: Path, exc: Exception) -> CatalogueError:
    """One line for a user from an SQLite error met while the catalogue was in use: what happened
    to which file, and what to do. Committed batches are never lost by any of these."""
    reason = errors.reason(exc)
    lowered = reason.lower()
    if "full" in lowered or "disk i/o error" in lowered:  # a write refused: most often no space left
        return CatalogueError(
            f"{path}: the disk refused a write ({reason}); free some space and run the command again "
            "(what was committed is kept, an import resumes)"
        )
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        return CatalogueError(
            f"{path}: the catalogue file is damaged ({reason}); run 'sketchsearch verify', then restore the "
            "file from a backup or import the photos again into a new data folder"
        )
    if "locked" in lowered or "busy" in lowered:
        return CatalogueError(f"{path}: the catalogue is busy ({reason}); try again when the other program is done")
    return CatalogueError(f"{path}: the catalogue cannot be used ({reason})")


class Catalogue:
    FILE_NAME = "catalogue.sqlite3"

    def __init__(
        self, data_dir: Path, *, create: bool = True, mark_interrupted: bool = True, check_change_log: bool = True
    ):
        """Open the catalogue in ``data_dir``; ``create``: make the folder if it does not exist
        (otherwise a mistyped folder is an error, not a new empty gallery); ``mark_interrupted``: mark
        imports still 'running' as interrupted (false where the caller can tell whether one still
        runs, and marks them itself: see :meth:`mark_interrupted_imports`). ``check_change_log``:
        refuse a file whose attribute change log was dropped or rewritten (see
        ``core.catalogue.structure``) in one line, rather than fail every import or filter on a stale
        cache; off for ``verify``, which reports each damaged part."""
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / self.FILE_NAME
        if not create:
            self.require_folder(self.data_dir)
        self._refuse_emptied_catalogue()
        try:
            make_private_folder(self.data_dir)
            create_private_file(self.path)
        except OSError as exc:
            raise CatalogueError(f"{self.data_dir}: cannot create the data folder ({exc.strerror or exc})") from None
        if not os.access(self.data_dir, os.R_OK | os.W_OK | os.X_OK):
            raise CatalogueError(f"{self.data_dir}: the data folder is not readable and writable")
        # a URL object, not a formatted string: a folder named 'case%41' or 'case?x=1' means itself
        url = URL.create("sqlite", database=str(self.path))
        self.engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        self._listeners: list[Callable[[list[int]], None]] = []
        _configure_sqlite(self.engine)
        try:
            with self.engine.begin() as connection:
                # the version the file had: casework binds the rows of a file older than 7 once
                self.schema_found = upgrade(connection, str(self.path))
                damage = change_log_problems(connection)
            if damage and check_change_log:
                raise CatalogueError(
                    f"{self.path}: the attribute change log is damaged ({'; '.join(damage)}); the file was changed "
                    "outside SketchSearch: run 'sketchsearch verify', then restore the catalogue from a backup"
                )
        except CatalogueError:
            self.engine.dispose()
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. "file is not a database"
            self.engine.dispose()
            cause = getattr(exc, "orig", None) or exc
            raise CatalogueError(
                f"{self.path}: cannot open the catalogue ({cause.__class__.__name__}: {errors.reason(exc)})"
            ) from None
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        if mark_interrupted:
            self.mark_interrupted_imports()

    def _refuse_emptied_catalogue(self) -> None:
        """A zero-length catalogue beside an index is a catalogue that was destroyed (overwritten
        or truncated), not a new gallery: starting afresh there would hide the loss."""
        if not self.path.is_file() or self.path.stat().st_size > 0:
            return
        index = self.data_dir / "index"
        leftovers = [
            p.name for p in (self.path.with_name(self.path.name + "-wal"),) if p.is_file() and p.stat().st_size
        ]
        if index.is_dir() and any(index.iterdir()):
            leftovers.append("index/")
        if leftovers:
            raise CatalogueError(
                f"{self.path}: the catalogue is empty (0 bytes) but the folder still holds {', '.join(leftovers)}: "
                "it was overwritten or truncated; restore it from a backup (nothing was changed)"
            )

    @staticmethod
    def require_folder(data_dir: Path) -> None:
        if not Path(data_dir).is_dir():
            raise CatalogueError(f"{data_dir}: no such data folder (import photos to create one)")

    def close(self) -> None:
        self.engine.dispose()

    def quick_check(self) -> list[str]:
        """SQLite's own structural check of the file (PRAGMA quick_check): [] when sound."""
        try:
            with self.engine.connect() as connection:
                rows = [r[0] for r in connection.exec_driver_sql("PRAGMA quick_check")]
        except Exception as exc:  # noqa: BLE001 - a damaged file can fail the check itself
            return [errors.reason(exc)]
        return [] if rows == ["ok"] else rows

    def _begin(self) -> Session:
        return self._session.begin()

    def on_photos_changed(self, listener: Callable[[list[int]], None]) -> None:
        """Call ``listener(photo_ids)`` after each committed write (through this object) that adds or
        removes photos or changes any of their attribute values, so that a cache of the attribute
        table is brought up to date for those photos alone instead of being read again whole."""
        self._listeners.append(listener)

    def _changed(self, photo_ids: Iterable[int]) -> None:
        ids = [int(i) for i in photo_ids]
        if ids:
            for listener in list(self._listeners):
                listener(ids)

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """One all-or-nothing transaction that holds the write lock from its first statement."""
        with self.engine.connect() as connection:
            connection.execution_options(sqlite_immediate=True)
            with connection.begin():
                yield connection

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Cursor]:
        """A DB-API cursor inside one read transaction: plain tuples, which cost far less than ORM rows
        (a search's reads are a few milliseconds of its time), and one consistent view for several
        reads (a search reads its candidates' records and their video provenance in one)."""
        with self.engine.connect() as connection:
            cursor = connection.connection.driver_connection.cursor()
            cursor.execute("BEGIN")
            try:
                yield cursor
            finally:
                cursor.execute("COMMIT")
                cursor.close()

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """One consistent snapshot for several reads."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

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

    def photo_with_sha256(self, sha256: str) -> tuple[int, str] | None:
        """(id, path) of the catalogued photo whose file has this sha256, or None."""
        with self._begin() as session:
            row = session.execute(select(Photo.id, Photo.path).where(Photo.sha256 == sha256)).first()
            return (row[0], row[1]) if row else None

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
    def add_photos(
        self,
        photos: Sequence[NewPhoto],
        model_sha256: str,
        *,
        record: Record | None = None,
    ) -> list[int]:
        """Insert photos with their embeddings and predicted attributes in one transaction. Bulk
        INSERTs (one executemany per table, the new ids read back by their unique sha256): ORM objects
        per row cost about 3 ms a photo, which made ingesting a million embeddings take half an hour.
        ``record(connection, ids)`` runs in the same transaction (the batch's audit entry: committed
        with the photos or not at all), which then holds the write lock from its start."""
        if not photos:
            return []
        now = utcnow()
        with self._begin() as session:
            if record is not None:
                session.connection(execution_options={"sqlite_immediate": True})
            session.execute(
                insert(Photo.__table__),
                [
                    {
                        "path": p.path,
                        "sha256": p.sha256,
                        "size_bytes": p.size_bytes,
                        "mtime_ns": p.mtime_ns,
                        "width": p.width,
                        "height": p.height,
                        "imported_at": now,
                        "source_folder": p.source_folder,
                        "thumbnail": p.thumbnail,
                        "missing_since": None,
                    }
                    for p in photos
                ],
            )
            by_sha = dict(
                session.execute(
                    select(Photo.sha256, Photo.id).where(Photo.sha256.in_([p.sha256 for p in photos]))
                ).all()
            )
            ids = [by_sha[p.sha256] for p in photos]
            session.execute(
                insert(Embedding.__table__),
                [
                    {
                        "photo_id": photo_id,
                        "model_sha256": model_sha256,
                        "vector": np.asarray(p.embedding, np.float32).tobytes(),
                    }
                    for photo_id, p in zip(ids, photos)
                ],
            )
            attributes = [
                {
                    "photo_id": photo_id,
                    "name": name,
                    "source": AttributeSource.MODEL.value,
                    "value": value,
                    "confidence": float(confidence),
                }
                for photo_id, p in zip(ids, photos)
                for name, (value, confidence) in p.attributes.items()
            ]
            if attributes:
                session.execute(insert(PhotoAttribute.__table__), attributes)
            if record is not None:
                record(session.connection(), list(ids))
        self._changed(ids)
        return list(ids)

    def relocate_photo(
        self,
        photo_id: int,
        path: str,
        size_bytes: int,
        mtime_ns: int,
        source_folder: str,
        *,
        record: Record | None = None,
    ) -> None:
        """A known photo (same content) found at a new path, or with a new modification time.
        ``record(connection, [photo_id])`` runs in the same transaction (see :meth:`add_photos`)."""
        with self._begin() as session:
            if record is not None:
                session.connection(execution_options={"sqlite_immediate": True})
            session.execute(
                update(Photo)
                .where(Photo.id == photo_id)
                .values(
                    path=path, size_bytes=size_bytes, mtime_ns=mtime_ns, source_folder=source_folder, missing_since=None
                )
            )
            if record is not None:
                record(session.connection(), [photo_id])

    def delete_photos(self, photo_ids: Iterable[int], *, record: Record | None = None) -> None:
        """Forget photos (their embeddings and attributes with them). ``record(connection, ids)`` runs
        in the same transaction (the audit entry of a prune: the photos are forgotten with it or not
        at all)."""
        ids = list(photo_ids)
        if ids:
            with self._begin() as session:
                if record is not None:
                    session.connection(execution_options={"sqlite_immediate": True})
                session.execute(delete(Photo).where(Photo.id.in_(ids)))
                if record is not None:
                    record(session.connection(), ids)
            self._changed(ids)

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
        if attributes:
            self._changed(photo_ids)

    def delete_embeddings(self, model_sha256: str, photo_ids: Sequence[int]) -> None:
        ids = [int(i) for i in photo_ids]
        if ids:
            with self._begin() as session:
                session.execute(
                    delete(Embedding).where(Embedding.model_sha256 == model_sha256, Embedding.photo_id.in_(ids))
                )

    def embeddings(self, model_sha256: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """All stored vectors of one model: (ids int64 N, vectors float32 N x dim), read in chunks into
        one array (a gallery of a million holds 3.6 GB of vectors: never twice at once)."""
        total = len(self.embedded_ids(model_sha256))
        ids = np.zeros(total, dtype=np.int64)
        vectors = np.zeros((total, dim), dtype=np.float32)
        filled = 0
        for chunk_ids, chunk_vectors in self.iter_embeddings(model_sha256, dim):
            end = min(filled + len(chunk_ids), total)  # rows committed meanwhile wait for the next read
            ids[filled:end], vectors[filled:end] = chunk_ids[: end - filled], chunk_vectors[: end - filled]
            filled = end
        return ids[:filled], vectors[:filled]

    def iter_embeddings(self, model_sha256: str, dim: int, chunk: int = 50_000):
        """Stored vectors of one model in ascending id order, ``chunk`` rows at a time, each chunk its
        own short read (keyset paging on the primary key, never OFFSET)."""
        after = -1
        while True:
            with self._begin() as session:
                rows = session.execute(
                    select(Embedding.photo_id, Embedding.vector)
                    .where(Embedding.model_sha256 == model_sha256, Embedding.photo_id > after)
                    .order_by(Embedding.photo_id)
                    .limit(chunk)
                ).all()
            if not rows:
                return
            yield self._as_arrays(rows, dim)
            after = rows[-1][0]

    def embeddings_of(self, model_sha256: str, dim: int, photo_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Stored vectors of the given photos (those that have one), ascending by id. One statement
        however many ids (a JSON array, which has no parameter cap), through the DB-API cursor: a
        search re-scores its candidates from these, and ORM rows cost a millisecond per page."""
        wanted = json.dumps(sorted({int(i) for i in photo_ids}))
        with self.engine.connect() as connection:
            cursor = connection.connection.driver_connection.cursor()
            # CROSS JOIN keeps the id list the outer loop: each id is one primary-key look-up, never
            # a scan of every stored vector
            rows = cursor.execute(
                "SELECT e.photo_id, e.vector FROM json_each(?) AS w CROSS JOIN embeddings AS e "
                "ON e.photo_id = w.value AND e.model_sha256 = ? ORDER BY w.key",
                (wanted, model_sha256),
            ).fetchall()
            cursor.close()
        return self._as_arrays(rows, dim)

    @staticmethod
    def _as_arrays(rows, dim: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vectors

    def embedded_ids(self, model_sha256: str) -> np.ndarray:
        """Ids of the photos with an embedding of this model, ascending (from the covering index
        on (model, photo); through the DB-API cursor: ORM rows cost seconds per million)."""
        with self.engine.connect() as connection:
            cursor = connection.connection.driver_connection.cursor()
            rows = cursor.execute(
                "SELECT photo_id FROM embeddings WHERE model_sha256 = ? ORDER BY photo_id", (model_sha256,)
            )
            ids = np.fromiter(chain.from_iterable(rows), dtype=np.int64)
            cursor.close()
        return ids

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
        self,
        photo_id: int,
        name: str,
        value: str,
        source: AttributeSource,
        confidence: float = 1.0,
        set_by: str | None = None,
    ) -> None:
        """``set_by`` (the operator) is recorded with the time for manual and imported values."""
        self.set_values(photo_id, {name: value}, source, confidence, set_by)

    def set_values(
        self,
        photo_id: int,
        values: Mapping[str, str],
        source: AttributeSource,
        confidence: float = 1.0,
        set_by: str | None = None,
    ) -> None:
        """Several values of one photo in one transaction (a correction saved together)."""
        stated = source != AttributeSource.MODEL
        now = utcnow() if stated else None
        if not 0 < photo_id <= MAX_SQLITE_INTEGER:  # SQLite could not even look it up
            raise UnknownPhotoError(f"no photo with id {photo_id}")
        with self._begin() as session:
            if session.get(Photo, photo_id) is None:
                raise UnknownPhotoError(f"no photo with id {photo_id}")
            for name, value in values.items():
                session.merge(
                    PhotoAttribute(
                        photo_id=photo_id,
                        name=name,
                        source=source.value,
                        value=value,
                        confidence=confidence,
                        set_by=set_by if stated else None,
                        set_at=now,
                    )
                )
        self._changed([photo_id])

    def set_attributes(
        self, rows: Iterable[tuple[int, str, str]], source: AttributeSource, set_by: str | None = None
    ) -> int:
        """Set many (photo_id, name, value) at once, in one transaction; returns the count."""
        count = 0
        now = utcnow()
        touched = set()
        with self._begin() as session:
            for photo_id, name, value in rows:
                touched.add(photo_id)
                session.merge(
                    PhotoAttribute(
                        photo_id=photo_id,
                        name=name,
                        source=source.value,
                        value=value,
                        confidence=1.0,
                        set_by=set_by,
                        set_at=now,
                    )
                )
                count += 1
        self._changed(sorted(touched))
        return count

    def attributes_of(self, photo_ids: Sequence[int]) -> dict[int, dict[str, AttributeValue]]:
        """Effective attributes: per name the manual value, else the imported one, else the model's."""
        with self.snapshot() as cursor:
            return self._attributes_read(cursor, photo_ids)

    @staticmethod
    def _attributes_read(cursor, photo_ids: Sequence[int]) -> dict[int, dict[str, AttributeValue]]:  # noqa: ANN001
        result: dict[int, dict[str, AttributeValue]] = {int(pid): {} for pid in photo_ids}
        if not result:
            return result
        # lowest-ranked source first: a higher one's row, read later, replaces it (sorting ~550 rows
        # costs less here than a GROUP BY that settles precedence in SQL, measured)
        ranks = " ".join(f"WHEN '{s.value}' THEN {s.priority}" for s in AttributeSource)
        rows = cursor.execute(
            "SELECT a.photo_id, a.name, a.value, a.confidence, a.source, a.set_by, a.set_at "
            "FROM json_each(?) AS w CROSS JOIN photo_attributes AS a ON a.photo_id = w.value "
            f"ORDER BY CASE a.source {ranks} END",
            (json.dumps(sorted(result)),),
        ).fetchall()
        effective = {(row[0], row[1]): row for row in rows}
        for (pid, name), (_, _, value, confidence, source, set_by, set_at) in effective.items():
            result[pid][name] = AttributeValue(value, confidence, _SOURCES[source], set_by, _stored_datetime(set_at))
        return result

    def attribute_table(
        self, schema_values: Mapping[str, Sequence[str]], photo_ids: Sequence[int] | np.ndarray | None = None
    ) -> AttributeTable:
        """Effective values of the attributes in ``schema_values`` (name -> values) of every photo, or
        of those of ``photo_ids`` that exist (to bring a cached table up to date for them alone).

        A photo's effective value is its highest-ranked source's (manual, then imported, then the
        model's prediction), -1 when that value is not one of the schema's; ``confidence`` is the
        prediction's for a model value and 1 for a stated one, so a minimum confidence filters
        predictions only.

        At a million photos (11 million attribute rows) the cost is handing rows to Python: SQLite
        packs each row's photo, attribute, source rank and value code into one integer (the name and
        the value looked up in small temporary tables), numpy unpacks them and resolves precedence,
        and the ids come from a covering index (a scan of the photos table would read every
        thumbnail's page)."""
        names = tuple(schema_values)
        code_bits = max(1, max((len(v) for v in schema_values.values()), default=0).bit_length())
        unknown = (1 << code_bits) - 1  # never a value's code: codes run from 0 to len(values) - 1
        rank_shift = code_bits
        column_shift = rank_shift + 2  # ranks 0, 1, 2
        id_shift = column_shift + max(1, (len(names) - 1).bit_length())
        ranks = " ".join(f"WHEN '{s.value}' THEN {s.priority}" for s in AttributeSource)
        packed = (
            f"SELECT (a.photo_id << {id_shift}) | (n.col << {column_shift}) "
            f"| ((CASE a.source {ranks} END) << {rank_shift}) | coalesce(c.code, {unknown}), a.confidence "
            # CROSS JOIN keeps photo_attributes the outer loop, read in its primary key's order
            "FROM photo_attributes AS a CROSS JOIN temp.attribute_names AS n ON n.name = a.name "
            "LEFT JOIN temp.attribute_value_codes AS c ON c.name = a.name AND c.value = a.value"
        )
        wanted = None if photo_ids is None else np.unique(np.asarray(photo_ids, dtype=np.int64))
        rows = np.zeros(0, dtype=[("key", np.int64), ("confidence", np.float64)])
        with self.engine.connect() as connection:
            # the DB-API cursor gives plain tuples, which numpy converts in C (rows wrapped by
            # SQLAlchemy cost seconds per million)
            cursor = connection.connection.driver_connection.cursor()
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS attribute_names (name TEXT PRIMARY KEY, col INTEGER) WITHOUT ROWID"
            )
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS attribute_value_codes "
                "(name TEXT, value TEXT, code INTEGER, PRIMARY KEY (name, value)) WITHOUT ROWID"
            )
            cursor.execute("DELETE FROM temp.attribute_names")
            cursor.execute("DELETE FROM temp.attribute_value_codes")
            cursor.executemany("INSERT INTO temp.attribute_names VALUES (?, ?)", [(n, j) for j, n in enumerate(names)])
            cursor.executemany(
                "INSERT INTO temp.attribute_value_codes VALUES (?, ?, ?)",
                [(n, value, code) for n in names for code, value in enumerate(schema_values[n])],
            )
            cursor.execute("BEGIN")  # one snapshot for the ids and their values
            try:
                top = cursor.execute("SELECT max(id) FROM photos").fetchone()[0] or 0
                seq = self._change_log_top(cursor)
                if top >= 1 << (62 - id_shift):
                    raise CatalogueError(f"{self.path}: photo ids too large to tabulate attributes ({top})")
                if wanted is None:
                    found = cursor.execute("SELECT id FROM photos INDEXED BY ix_photos_missing_since")
                    ids = np.sort(np.fromiter(chain.from_iterable(found), dtype=np.int64))
                    if names:
                        rows = np.fromiter(cursor.execute(packed), dtype=rows.dtype)
                else:
                    ids_parts, row_parts = [], []
                    for start in range(0, len(wanted), 10_000):  # SQLite caps the parameters of one statement
                        chunk = wanted[start : start + 10_000].tolist()
                        marks = ",".join("?" * len(chunk))
                        found = cursor.execute(f"SELECT id FROM photos WHERE id IN ({marks})", chunk)
                        ids_parts.append(np.fromiter(chain.from_iterable(found), dtype=np.int64))
                        if names:
                            selected = cursor.execute(f"{packed} WHERE a.photo_id IN ({marks})", chunk)
                            row_parts.append(np.fromiter(selected, dtype=rows.dtype))
                    ids = np.sort(np.concatenate(ids_parts)) if ids_parts else np.zeros(0, np.int64)
                    rows = np.concatenate(row_parts) if row_parts else rows
            finally:
                cursor.execute("COMMIT")
                cursor.close()
        values = np.full((len(ids), len(names)), -1, dtype=np.int16)
        confidence = np.zeros((len(ids), len(names)), dtype=np.float32)
        key = np.ascontiguousarray(rows["key"])
        photo = key >> id_shift
        row = np.searchsorted(ids, photo).clip(max=max(len(ids) - 1, 0))
        present = (ids[row] == photo) if len(ids) else np.zeros(len(key), dtype=bool)
        cell = row * len(names) + ((key >> column_shift) & ((1 << (id_shift - column_shift)) - 1))
        rank = (key >> rank_shift) & 3
        code = (key & unknown).astype(np.int16)
        known = code != unknown
        code[~known] = -1
        predicted = np.where(known, rows["confidence"], 0.0).astype(np.float32)
        stated = known.astype(np.float32)  # a stated value's confidence reads as 1
        # lowest rank first: within one rank a photo has one row per attribute (the primary key), and
        # a higher-ranked source's row then overwrites a lower one's
        for source in sorted(AttributeSource, key=lambda s: s.priority):
            at = present & (rank == source.priority)
            if at.all():
                at = slice(None)  # every row (only predictions, as after an import): no copies
            elif not at.any():
                continue
            values.reshape(-1)[cell[at]] = code[at]
            confidence.reshape(-1)[cell[at]] = (predicted if source == AttributeSource.MODEL else stated)[at]
        return AttributeTable(
            ids=ids, names=names, values=values, confidence=confidence, seq=seq if wanted is None else None
        )

    @staticmethod
    def _change_log_top(cursor) -> int | None:  # noqa: ANN001 - DB-API cursor
        """The highest ``seq`` the change log ever gave (pruned rows included), None without a log."""
        try:
            found = cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = 'attribute_changes'").fetchone()
            cursor.execute("SELECT 1 FROM attribute_changes LIMIT 0")  # the log itself is there
        except sqlite3.OperationalError:
            return None
        return int(found[0]) if found else 0

    def attribute_changes_since(self, seq: int) -> tuple[np.ndarray, int] | None:
        """Photos whose attribute values may have changed after change-log position ``seq``, and the
        position they bring a table to, read in one snapshot; None when the log cannot say (pruned
        past ``seq``, emptied, missing, or ``seq`` ahead of it: another catalogue's): read whole."""
        with self.engine.connect() as connection:
            cursor = connection.connection.driver_connection.cursor()
            cursor.execute("BEGIN")
            try:
                top = self._change_log_top(cursor)
                if top is None or not 0 <= seq <= top:
                    return None
                marker = cursor.execute("SELECT seq, photo_id FROM attribute_changes ORDER BY seq LIMIT 1").fetchone()
                if marker is None or marker[1] != CHANGE_LOG_MARKER or marker[0] > seq:
                    return None
                found = cursor.execute("SELECT photo_id FROM attribute_changes WHERE seq > ?", (seq,))
                ids = np.unique(np.fromiter(chain.from_iterable(found), dtype=np.int64))
            except sqlite3.OperationalError as exc:
                log.warning("%s: the attribute change log cannot be read (%s)", self.path, exc)
                return None
            finally:
                cursor.execute("COMMIT")
                cursor.close()
        return ids, top

    def prune_attribute_changes(self, upto: int, *, read_whole_at: int | None = None) -> int:
        """Remove the change-log rows up to ``upto`` (every cached table is at ``upto`` or later),
        leaving the marker there. ``read_whole_at``: a table was just read whole at that position;
        a log that lost its marker (rows deleted by hand) is started again from there, so that tables
        from before are refused rather than trusted. Skipped (returns 0) while another program holds
        the write lock: the log is pruned another time. Returns the rows removed."""
        with self.engine.connect() as connection:
            cursor = connection.connection.driver_connection.cursor()
            cursor.execute("PRAGMA busy_timeout = 200")  # never wait on an import for this
            try:
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    marker = cursor.execute(
                        "SELECT seq, photo_id FROM attribute_changes ORDER BY seq LIMIT 1"
                    ).fetchone()
                    upto = min(int(upto), self._change_log_top(cursor) or 0)  # never past the log's end
                    if marker is not None and marker[1] == CHANGE_LOG_MARKER:
                        at = upto if marker[0] < upto else None
                    else:
                        at = read_whole_at
                    removed = 0
                    if at is not None:
                        removed = cursor.execute("DELETE FROM attribute_changes WHERE seq <= ?", (at,)).rowcount
                        if marker is not None and marker[1] == CHANGE_LOG_MARKER:
                            removed -= 1  # the old marker (below ``at``): moved, not pruned
                        cursor.execute(
                            "INSERT INTO attribute_changes (seq, photo_id) VALUES (?, ?)", (at, CHANGE_LOG_MARKER)
                        )
                    cursor.execute("COMMIT")
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                log.info("%s: the attribute change log was not pruned (%s)", self.path, exc)
                return 0
            finally:
                cursor.execute("PRAGMA busy_timeout = 30000")
                cursor.close()
        return removed

    # -- reading photos ------------------------------------------------------------------------
    def photos(self, photo_ids: Sequence[int]) -> list[PhotoRecord]:
        """Records in the order asked; unknown ids are left out (see :meth:`read_photos`)."""
        with self.snapshot() as cursor:
            return self.read_photos(cursor, photo_ids)

    @classmethod
    def read_photos(cls, cursor: sqlite3.Cursor, photo_ids: Sequence[int]) -> list[PhotoRecord]:
        """Records in the order asked, through ``cursor`` (a :meth:`snapshot`'s); unknown ids are left
        out. The records and their attributes are read by one statement each (a page of search
        results in about a millisecond; through ORM objects it took five)."""
        ids = [int(i) for i in photo_ids]
        if not ids:
            return []
        rows = cursor.execute(
            "SELECT p.id, p.path, p.sha256, p.size_bytes, p.width, p.height, p.imported_at, p.source_folder, "
            "p.missing_since IS NOT NULL, p.mtime_ns FROM json_each(?) AS w CROSS JOIN photos AS p "
            "ON p.id = w.value",
            (json.dumps(sorted(set(ids))),),
        ).fetchall()
        attributes = cls._attributes_read(cursor, [row[0] for row in rows])
        records = {
            pid: PhotoRecord(
                id=pid,
                path=_stored_path(path),
                sha256=sha256,
                size_bytes=size_bytes,
                width=width,
                height=height,
                imported_at=_stored_datetime(imported_at),
                source_folder=_stored_path(folder),
                missing=bool(missing),
                attributes=attributes[pid],
                mtime_ns=mtime_ns,
            )
            for pid, path, sha256, size_bytes, width, height, imported_at, folder, missing, mtime_ns in rows
        }
        return [records[i] for i in ids if i in records]

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
            failed = self._failed_in_last_import(session, [folder for folder, _, _ in rows])
        return [FolderSummary(folder, photos, missing, failed[folder]) for folder, photos, missing in rows]

    @staticmethod
    def _failed_in_last_import(session: Session, folders: Sequence[str]) -> dict[str, int]:
        """Per folder, the files under it that the last finished import of it (of the folder or of
        one above it) recorded as failed."""
        runs = session.execute(
            select(ImportRun.id, ImportRun.roots).where(ImportRun.status != "running").order_by(ImportRun.id.desc())
        ).all()
        last_run: dict[str, int] = {}
        for run_id, roots in runs:
            # roots recorded as given before they were made absolute cover no folder here
            prefixes = [root.rstrip(os.sep) + os.sep for root in json.loads(roots) if os.path.isabs(root)]
            for folder in folders:
                if folder not in last_run and any((folder + os.sep).startswith(p) for p in prefixes):
                    last_run[folder] = run_id
            if len(last_run) == len(folders):
                break
        failed = dict.fromkeys(folders, 0)
        if not last_run:
            return failed
        paths_of_run: dict[int, set[str]] = {run_id: set() for run_id in last_run.values()}
        for run_id, path in session.execute(
            select(ImportFailureRow.import_id, ImportFailureRow.path).where(
                ImportFailureRow.import_id.in_(paths_of_run)
            )
        ):
            paths_of_run[run_id].add(path)
        for folder, run_id in last_run.items():
            under = folder.rstrip(os.sep) + os.sep
            failed[folder] = sum(1 for path in paths_of_run[run_id] if path.startswith(under))
        return failed

    def photo_ids_in_folder(self, folder: str) -> list[int]:
        with self._begin() as session:
            return list(session.scalars(select(Photo.id).where(Photo.source_folder == folder)))

    # -- import log ----------------------------------------------------------------------------
    def start_import(self, roots: Sequence[Path]) -> int:
        """A run in the import log: its folders (or shard location) as JSON text, each path as Python
        names it (a byte that is not UTF-8 as its \\udcXX escape: read back, the same path)."""
        with self._begin() as session:
            run = ImportRun(
                started_at=utcnow(),
                roots=json.dumps([os.fspath(root) for root in roots]),
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

    def finish_import(self, import_id: int, summary: ImportSummary, *, failed: bool = False) -> None:
        with self._begin() as session:
            session.execute(
                update(ImportRun)
                .where(ImportRun.id == import_id)
                .values(
                    finished_at=utcnow(),
                    status="failed" if failed else "cancelled" if summary.cancelled else "done",
                    added=summary.added,
                    updated=summary.updated,
                    unchanged=summary.unchanged,
                    failed=len(summary.failed),
                )
            )

    def last_import_id(self) -> int | None:
        with self._begin() as session:
            return session.scalar(select(func.max(ImportRun.id)))

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

    def mark_interrupted_imports(self) -> None:
        """Imports still 'running' did not finish: their process is gone (call this only when no
        import can be running, see Workspace)."""
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
