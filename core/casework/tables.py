"""The casework tables: cases, recorded searches with their rankings and results, reviews, and the
hash-chained audit log with its head and seals. Casework reads and writes them through these
declarations alone.

They live in the catalogue's file, whose schema versions ``core.catalogue.migrations`` keeps: the
steps that added these tables (version 3, and the seals in 7) create them in a new file too, with
the SQL they were first created with, since the catalogue is a room below casework and never
imports it. tests/core/test_casework_tables.py holds the two equal, column by column.

Searches, their rankings, results, reviews and the log are append-only: triggers refuse UPDATE and
DELETE, so a bug (or a careless script) cannot rewrite history; the hash chain catches anyone who
drops them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    TypeDecorator,
)


class RecordedTime(TypeDecorator):
    """A time as casework has always stored it: the text ``datetime.isoformat(" ")`` gives (the
    sqlite3 module's own form, microseconds only when there are some), read back with
    ``datetime.fromisoformat``. Rows are bound into the audit log as stored (core.casework.binding),
    so the form never changes."""

    impl = DateTime
    cache_ok = True

    def bind_processor(self, dialect):  # noqa: ANN001, ARG002
        return lambda value: None if value is None else value.isoformat(" ")

    def result_processor(self, dialect, coltype):  # noqa: ANN001, ARG002
        return lambda value: datetime.fromisoformat(value) if isinstance(value, str) else value


metadata = MetaData()

cases = Table(
    "cases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("number", String, nullable=False, unique=True),
    Column("title", String, nullable=False),
    Column("operator", String, nullable=False),
    Column("notes", String, nullable=False),
    Column("opened_at", RecordedTime, nullable=False),
    Column("closed_at", RecordedTime),
    sqlite_autoincrement=True,
)

searches = Table(
    "searches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id"), index=True),
    Column("query_kind", String, nullable=False),  # strokes | file
    Column("query_name", String, nullable=False),
    Column("query_sha256", String(64), nullable=False),  # of query_file for a file, of query_png for strokes
    Column("query_png", LargeBinary, nullable=False),  # the pixels the model was given
    Column("query_strokes", String),  # JSON, for a drawn sketch
    Column("query_file", LargeBinary),  # the imported file's bytes, as read
    Column("operator", String, nullable=False),
    Column("app_version", String, nullable=False),
    Column("created_at", RecordedTime, nullable=False),
    sqlite_autoincrement=True,
)

# one ranking of a search: the first, or a re-rank of the same query with other filters or K
search_revisions = Table(
    "search_revisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("search_id", Integer, ForeignKey("searches.id"), nullable=False, index=True),
    Column("revision", Integer, nullable=False),  # 1, 2, ... within the search
    Column("model_name", String, nullable=False),
    Column("embedding_key", String(64), nullable=False),
    Column("gallery_photos", Integer, nullable=False),
    Column("gallery_last_import", Integer),
    Column("filters_json", String, nullable=False),
    Column("top_k", Integer, nullable=False),
    Column("started_at", RecordedTime, nullable=False),
    Column("finished_at", RecordedTime, nullable=False),
    Column("operator", String, nullable=False),
    Column("audit_seq", Integer, nullable=False),
    sqlite_autoincrement=True,
)

# no foreign key to photos: a photo pruned later stays in old records by its sha256 and thumbnail
search_results = Table(
    "search_results",
    metadata,
    Column("revision_id", Integer, ForeignKey("search_revisions.id"), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("photo_id", Integer, nullable=False),
    Column("photo_sha256", String(64), nullable=False),
    Column("score", Double, nullable=False),
    Column("thumbnail", LargeBinary, nullable=False),
)

# a person's decision on one candidate of a search; the newest per (search, photo) holds
reviews = Table(
    "reviews",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("search_id", Integer, ForeignKey("searches.id"), nullable=False),
    Column("photo_id", Integer, nullable=False),
    Column("photo_sha256", String(64), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("mark", String, nullable=False),
    Column("note", String, nullable=False),
    Column("operator", String, nullable=False),
    Column("at", RecordedTime, nullable=False),
    Column("audit_seq", Integer, nullable=False),
    CheckConstraint("mark IN ('possible', 'excluded', 'clear')", name="review_mark"),
    Index("ix_reviews_search_photo", "search_id", "photo_id"),
    sqlite_autoincrement=True,
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),  # 1, 2, ... without gaps
    Column("at", String, nullable=False),  # ISO 8601 UTC, stored as hashed
    Column("kind", String, nullable=False),
    Column("operator", String, nullable=False),
    Column("case_id", Integer),
    Column("payload_json", String, nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("prev_sha256", String(64), nullable=False),
    Column("entry_sha256", String(64), nullable=False),
)

# the chain's newest entry, written in the same transaction: a removed last entry shows
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("entry_sha256", String(64), nullable=False),
    CheckConstraint("id = 1", name="audit_head_single_row"),
)

# an entry's seal: HMAC-SHA256 of its sequence number and hash under a key kept outside the data
# folder (schema 7); written only while a key is set
audit_seals = Table(
    "audit_seals",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("mac", String(64), nullable=False),
)

APPEND_ONLY_TABLES = ("searches", "search_revisions", "search_results", "reviews", "audit_log", "audit_seals")


def append_only_triggers() -> list[str]:
    """The triggers that keep the records append-only and cases kept, as the catalogue creates them
    (DDL, so SQL text: ``audit verify`` checks that the file still holds each one as created)."""
    statements = []
    for table in APPEND_ONLY_TABLES:
        for action in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
    statements.append(
        "CREATE TRIGGER cases_no_delete BEFORE DELETE ON cases BEGIN SELECT RAISE(ABORT, 'cases are kept'); END"
    )
    return statements
