"""Schema versions of the catalogue file and the forward migrations between them.

The version lives in SQLite's ``PRAGMA user_version``. A new file gets the newest schema straight
from the ORM, and the casework tables from the steps that added them; an older file is migrated
step by step inside one transaction (all or nothing); a file from a newer SketchSearch is refused
rather than guessed at. Each older version is kept as a file it wrote, under tests/data, and the
tests migrate those copies.

History:
  1  photos, attributes, models, embeddings, import log
  2  photos.mtime_ns (re-imports skip unchanged files without hashing them) and
     photos.missing_since (files gone from disk are kept, flagged, and can be pruned)
  3  casework: cases, searches with their revisions and results, reviews, the hash-chained audit
     log and its head; triggers keep searches, results, reviews and the log append-only
  4  photo_attributes.set_by and set_at: who stated a manual or imported value, and when
  5  indices for galleries of millions: photos(source_folder, missing_since),
     photos(missing_since), embeddings(model_sha256, photo_id); no data changes
  6  attribute_changes: a log of the photos whose attribute values changed, filled by triggers on
     photos and photo_attributes, so that a cached attribute table is brought up to date after
     writes by any program (starts empty: a cache is only ever written from a version-6 read)
  7  audit_seals: an HMAC per audit entry under a key kept outside the data folder; casework rows
     are bound into the entries written with them (core.casework.binding), and the rows already
     there are bound by one entry the first time the casework store opens the upgraded file
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

from core.catalogue.orm import Base, attribute_change_triggers
from core.common.errors import CatalogueError

LATEST_VERSION = 7


def _v1_to_v2(connection: Connection) -> None:
    # mtime 0 never matches a real file, so the first re-import hashes each file once more
    connection.exec_driver_sql("ALTER TABLE photos ADD COLUMN mtime_ns INTEGER NOT NULL DEFAULT 0")
    connection.exec_driver_sql("ALTER TABLE photos ADD COLUMN missing_since DATETIME")


# The casework tables as version 3 created them (frozen here, so that a later change of the ORM
# classes cannot change what this step does).
_CASEWORK_DDL = """
CREATE TABLE cases (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    number VARCHAR NOT NULL,
    title VARCHAR NOT NULL,
    operator VARCHAR NOT NULL,
    notes VARCHAR NOT NULL,
    opened_at DATETIME NOT NULL,
    closed_at DATETIME,
    UNIQUE (number)
);
CREATE TABLE searches (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    case_id INTEGER,
    query_kind VARCHAR NOT NULL,
    query_name VARCHAR NOT NULL,
    query_sha256 VARCHAR(64) NOT NULL,
    query_png BLOB NOT NULL,
    query_strokes VARCHAR,
    query_file BLOB,
    operator VARCHAR NOT NULL,
    app_version VARCHAR NOT NULL,
    created_at DATETIME NOT NULL,
    FOREIGN KEY(case_id) REFERENCES cases (id)
);
CREATE INDEX ix_searches_case_id ON searches (case_id);
CREATE TABLE search_revisions (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    search_id INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    model_name VARCHAR NOT NULL,
    embedding_key VARCHAR(64) NOT NULL,
    gallery_photos INTEGER NOT NULL,
    gallery_last_import INTEGER,
    filters_json VARCHAR NOT NULL,
    top_k INTEGER NOT NULL,
    started_at DATETIME NOT NULL,
    finished_at DATETIME NOT NULL,
    operator VARCHAR NOT NULL,
    audit_seq INTEGER NOT NULL,
    FOREIGN KEY(search_id) REFERENCES searches (id)
);
CREATE INDEX ix_search_revisions_search_id ON search_revisions (search_id);
CREATE TABLE search_results (
    revision_id INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    photo_id INTEGER NOT NULL,
    photo_sha256 VARCHAR(64) NOT NULL,
    score DOUBLE NOT NULL,
    thumbnail BLOB NOT NULL,
    PRIMARY KEY (revision_id, rank),
    FOREIGN KEY(revision_id) REFERENCES search_revisions (id)
);
CREATE TABLE reviews (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    search_id INTEGER NOT NULL,
    photo_id INTEGER NOT NULL,
    photo_sha256 VARCHAR(64) NOT NULL,
    rank INTEGER NOT NULL,
    mark VARCHAR NOT NULL,
    note VARCHAR NOT NULL,
    operator VARCHAR NOT NULL,
    at DATETIME NOT NULL,
    audit_seq INTEGER NOT NULL,
    CONSTRAINT review_mark CHECK (mark IN ('possible', 'excluded', 'clear')),
    FOREIGN KEY(search_id) REFERENCES searches (id)
);
CREATE INDEX ix_reviews_search_photo ON reviews (search_id, photo_id);
CREATE TABLE audit_log (
    seq INTEGER NOT NULL,
    at VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    operator VARCHAR NOT NULL,
    case_id INTEGER,
    payload_json VARCHAR NOT NULL,
    content_sha256 VARCHAR(64) NOT NULL,
    prev_sha256 VARCHAR(64) NOT NULL,
    entry_sha256 VARCHAR(64) NOT NULL,
    PRIMARY KEY (seq)
);
CREATE TABLE audit_head (
    id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    entry_sha256 VARCHAR(64) NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT audit_head_single_row CHECK (id = 1)
)
"""


def _append_only(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        for action in ("UPDATE", "DELETE")
    ]


# the triggers that keep casework's records append-only (and its cases kept), as versions 3 and 7
# created them (core.casework.tables declares the same, which audit verify looks for)
_CASEWORK_TRIGGERS = [
    *_append_only("searches"),
    *_append_only("search_revisions"),
    *_append_only("search_results"),
    *_append_only("reviews"),
    *_append_only("audit_log"),
    "CREATE TRIGGER cases_no_delete BEFORE DELETE ON cases BEGIN SELECT RAISE(ABORT, 'cases are kept'); END",
]
_SEAL_TRIGGERS = _append_only("audit_seals")
CASEWORK_TRIGGERS = _CASEWORK_TRIGGERS + _SEAL_TRIGGERS


def _add_casework(connection: Connection) -> None:
    for statement in _CASEWORK_DDL.split(";"):
        connection.exec_driver_sql(statement)
    for statement in _CASEWORK_TRIGGERS:
        connection.exec_driver_sql(statement)


def _add_attribute_provenance(connection: Connection) -> None:
    # values stated before this version keep NULL: who and when were never recorded, and are not guessed
    connection.exec_driver_sql("ALTER TABLE photo_attributes ADD COLUMN set_by VARCHAR")
    connection.exec_driver_sql("ALTER TABLE photo_attributes ADD COLUMN set_at DATETIME")


def _add_scale_indices(connection: Connection) -> None:
    # the same indices the ORM declares for a new file; IF NOT EXISTS keeps the step safe to renumber
    for statement in (
        "CREATE INDEX IF NOT EXISTS ix_photos_folder_missing ON photos (source_folder, missing_since)",
        "CREATE INDEX IF NOT EXISTS ix_photos_missing_since ON photos (missing_since)",
        "CREATE INDEX IF NOT EXISTS ix_embeddings_model_photo ON embeddings (model_sha256, photo_id)",
    ):
        connection.exec_driver_sql(statement)


# the change log as version 6 adds it to an older file (a new file gets the ORM's, the same table)
ATTRIBUTE_CHANGES_DDL = (
    "CREATE TABLE attribute_changes (seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, photo_id INTEGER NOT NULL)"
)


def _add_attribute_change_log(connection: Connection) -> None:
    connection.exec_driver_sql(ATTRIBUTE_CHANGES_DDL)
    for statement in attribute_change_triggers():
        connection.exec_driver_sql(statement)


def _add_audit_seals(connection: Connection) -> None:
    connection.exec_driver_sql(
        "CREATE TABLE audit_seals (seq INTEGER NOT NULL, mac VARCHAR(64) NOT NULL, PRIMARY KEY (seq))"
    )
    for statement in _SEAL_TRIGGERS:
        connection.exec_driver_sql(statement)


# The casework tables are declared in core.casework.tables, a room above this one: a new file gets
# them from the steps that added them to older files, so both hold the same tables.
CASEWORK_STEPS = (_add_casework, _add_audit_seals)

MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _v1_to_v2,
    2: _add_casework,
    3: _add_attribute_provenance,
    4: _add_scale_indices,
    5: _add_attribute_change_log,
    6: _add_audit_seals,
}


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
        for step in CASEWORK_STEPS:
            step(connection)
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
