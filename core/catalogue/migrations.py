"""Schema versions of the catalogue file and the forward migrations between them.

The version lives in SQLite's ``PRAGMA user_version``. A new file gets the newest schema straight
from the ORM; an older file is migrated step by step inside one transaction (all or nothing); a
file from a newer SketchSearch is refused rather than guessed at.

History:
  1  photos, attributes, models, embeddings, import log
  2  photos.mtime_ns (re-imports skip unchanged files without hashing them) and
     photos.missing_since (files gone from disk are kept, flagged, and can be pruned)
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

from core.catalogue.orm import Base
from core.errors import CatalogueError

LATEST_VERSION = 2

# Version 1 as it was created, kept so that the migration chain (and its tests) start from the real thing.
SCHEMA_V1 = """
CREATE TABLE import_runs (
    id INTEGER NOT NULL, started_at DATETIME NOT NULL, finished_at DATETIME, roots VARCHAR NOT NULL,
    status VARCHAR NOT NULL, added INTEGER NOT NULL, updated INTEGER NOT NULL,
    unchanged INTEGER NOT NULL, failed INTEGER NOT NULL, PRIMARY KEY (id));
CREATE TABLE models (
    sha256 VARCHAR(64) NOT NULL, name VARCHAR NOT NULL, embedding_dim INTEGER NOT NULL,
    manifest_json VARCHAR NOT NULL, registered_at DATETIME NOT NULL, PRIMARY KEY (sha256));
CREATE TABLE photos (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, path VARCHAR NOT NULL, sha256 VARCHAR(64) NOT NULL,
    size_bytes INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    imported_at DATETIME NOT NULL, source_folder VARCHAR NOT NULL, thumbnail BLOB NOT NULL,
    UNIQUE (path), UNIQUE (sha256));
CREATE INDEX ix_photos_source_folder ON photos (source_folder);
CREATE TABLE embeddings (
    photo_id INTEGER NOT NULL, model_sha256 VARCHAR(64) NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (photo_id, model_sha256),
    FOREIGN KEY(photo_id) REFERENCES photos (id) ON DELETE CASCADE,
    FOREIGN KEY(model_sha256) REFERENCES models (sha256) ON DELETE CASCADE);
CREATE TABLE import_failures (
    id INTEGER NOT NULL, import_id INTEGER NOT NULL, path VARCHAR NOT NULL, reason VARCHAR NOT NULL,
    PRIMARY KEY (id), FOREIGN KEY(import_id) REFERENCES import_runs (id) ON DELETE CASCADE);
CREATE INDEX ix_import_failures_import_id ON import_failures (import_id);
CREATE TABLE photo_attributes (
    photo_id INTEGER NOT NULL, name VARCHAR NOT NULL, source VARCHAR NOT NULL, value VARCHAR NOT NULL,
    confidence DOUBLE NOT NULL, PRIMARY KEY (photo_id, name, source),
    CONSTRAINT attribute_source CHECK (source IN ('model', 'imported', 'manual')),
    FOREIGN KEY(photo_id) REFERENCES photos (id) ON DELETE CASCADE);
CREATE INDEX ix_photo_attributes_name_value ON photo_attributes (name, value);
"""


def _v1_to_v2(connection: Connection) -> None:
    # mtime 0 never matches a real file, so the first re-import hashes each file once more
    connection.exec_driver_sql("ALTER TABLE photos ADD COLUMN mtime_ns INTEGER NOT NULL DEFAULT 0")
    connection.exec_driver_sql("ALTER TABLE photos ADD COLUMN missing_since DATETIME")


MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2}


def schema_version(connection: Connection) -> int:
    return int(connection.exec_driver_sql("PRAGMA user_version").scalar_one())


def _set_version(connection: Connection, version: int) -> None:
    connection.exec_driver_sql(f"PRAGMA user_version = {int(version)}")


def create_v1(connection: Connection) -> None:
    for statement in SCHEMA_V1.split(";"):
        if statement.strip():
            connection.exec_driver_sql(statement)
    _set_version(connection, 1)


def upgrade(connection: Connection, location: str) -> int:
    """Bring the schema to ``LATEST_VERSION``; returns the version found. Runs inside the caller's
    transaction, so a failed step leaves the file as it was."""
    found = schema_version(connection)
    tables = connection.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'table'")).scalar_one()
    if found == 0 and tables == 0:
        Base.metadata.create_all(connection)
        _set_version(connection, LATEST_VERSION)
        return found
    if found == 0:
        raise CatalogueError(f"{location}: not a SketchSearch catalogue (tables without a schema version)")
    if found > LATEST_VERSION:
        raise CatalogueError(
            f"{location}: catalogue schema version {found} is newer than this SketchSearch understands "
            f"({LATEST_VERSION}); open it with a newer SketchSearch"
        )
    for version in range(found, LATEST_VERSION):
        MIGRATIONS[version](connection)
        _set_version(connection, version + 1)
    return found
