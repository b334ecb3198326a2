"""Schema versions of the catalogue file and the forward migrations between them.

The version lives in SQLite's ``PRAGMA user_version``. A new file gets the newest schema straight
from the ORM; an older file is migrated step by step inside one transaction (all or nothing); a
file from a newer SketchSearch is refused rather than guessed at. Each older version is kept as a
file it wrote, under tests/data, and the tests migrate those copies.

History:
  1  photos, attributes, models, embeddings, import log
  2  photos.mtime_ns (re-imports skip unchanged files without hashing them) and
     photos.missing_since (files gone from disk are kept, flagged, and can be pruned)
  3  indices for galleries of millions: photos(source_folder, missing_since),
     photos(missing_since), embeddings(model_sha256, photo_id); no data changes
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

from core.catalogue.orm import Base
from core.errors import CatalogueError

LATEST_VERSION = 3


def _v1_to_v2(connection: Connection) -> None:
    # mtime 0 never matches a real file, so the first re-import hashes each file once more
    connection.exec_driver_sql("ALTER TABLE photos ADD COLUMN mtime_ns INTEGER NOT NULL DEFAULT 0")
    connection.exec_driver_sql("ALTER TABLE photos ADD COLUMN missing_since DATETIME")


def _add_scale_indices(connection: Connection) -> None:
    # the same indices the ORM declares for a new file; IF NOT EXISTS keeps the step safe to renumber
    for statement in (
        "CREATE INDEX IF NOT EXISTS ix_photos_folder_missing ON photos (source_folder, missing_since)",
        "CREATE INDEX IF NOT EXISTS ix_photos_missing_since ON photos (missing_since)",
        "CREATE INDEX IF NOT EXISTS ix_embeddings_model_photo ON embeddings (model_sha256, photo_id)",
    ):
        connection.exec_driver_sql(statement)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2, 2: _add_scale_indices}


def schema_version(connection: Connection) -> int:
    return int(connection.exec_driver_sql("PRAGMA user_version").scalar_one())


def _set_version(connection: Connection, version: int) -> None:
    connection.exec_driver_sql(f"PRAGMA user_version = {int(version)}")


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
