"""ORM tables (internal to the catalogue: callers get dataclasses from ``core.common.types``).

These classes describe the newest schema of the catalogue's own tables; ``migrations`` brings older
files up to it, and adds the casework tables (declared in ``core.casework.tables``) to a new file."""

from __future__ import annotations

import os
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, TypeDecorator, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class FilePath(TypeDecorator):
    """A file system path, whatever bytes its name holds.

    On POSIX a name need not be UTF-8 (``caf\\xe9.jpg``, written by a Latin-1 system); Python
    carries such bytes as lone surrogates, which SQLite's UTF-8 text cannot store. Those paths are
    stored as their raw bytes (a BLOB) instead and read back to the same ``str``, so every path
    means itself and the usual ones stay readable text."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):  # noqa: ANN001, ARG002
        if value is None:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(value)
        return value

    def process_result_value(self, value, dialect):  # noqa: ANN001, ARG002
        return os.fsdecode(value) if isinstance(value, bytes) else value


class Base(DeclarativeBase):
    pass


class Photo(Base):
    __tablename__ = "photos"
    # AUTOINCREMENT: an id is never reused, even after a photo is pruned, so an id in an old
    # export or index can never point at a different person.
    __table_args__ = (
        # covering indices for the per-folder summary and the missing count: without them SQLite
        # reads every row, past each row's thumbnail, to answer (minutes at a million photos)
        Index("ix_photos_folder_missing", "source_folder", "missing_since"),
        Index("ix_photos_missing_since", "missing_since"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(FilePath, unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int]
    mtime_ns: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    imported_at: Mapped[datetime]
    source_folder: Mapped[str] = mapped_column(FilePath, index=True)
    thumbnail: Mapped[bytes] = mapped_column(LargeBinary)
    missing_since: Mapped[datetime | None]


class PhotoAttribute(Base):
    __tablename__ = "photo_attributes"
    __table_args__ = (
        CheckConstraint("source IN ('model', 'imported', 'manual')", name="attribute_source"),
        Index("ix_photo_attributes_name_value", "name", "value"),
    )

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]
    confidence: Mapped[float]
    # who stated a manual or imported value, and when (UTC); NULL for model predictions and for
    # values recorded before version 3 kept them
    set_by: Mapped[str | None]
    set_at: Mapped[datetime | None]


class Model(Base):
    __tablename__ = "models"

    # the model's embedding key: a sha256 of its weights and of every setting that changes a vector
    # (Manifest.embedding_key), so that vectors of different settings are never mixed
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str]
    embedding_dim: Mapped[int]
    manifest_json: Mapped[str]
    registered_at: Mapped[datetime]


class Embedding(Base):
    __tablename__ = "embeddings"
    # one model's embedded photo ids without reading the vectors (the primary key leads with photo_id)
    __table_args__ = (Index("ix_embeddings_model_photo", "model_sha256", "photo_id"),)

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    model_sha256: Mapped[str] = mapped_column(ForeignKey("models.sha256", ondelete="CASCADE"), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, unit length


class ImportRun(Base):
    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    roots: Mapped[str]  # JSON list of the paths given
    status: Mapped[str]  # running | done | cancelled | failed | interrupted
    added: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)


class ImportFailureRow(Base):
    __tablename__ = "import_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("import_runs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(FilePath)
    reason: Mapped[str] = mapped_column(FilePath)  # may quote a path


# -- the attribute change log (schema version 6) ---------------------------------------------------


class AttributeChange(Base):
    """A photo whose effective attribute values may have changed (photo added or removed, a value
    written): filled by triggers, so a write by any program is logged. A cached attribute table
    records the ``seq`` it is complete up to and re-reads only the photos logged after it.

    A write to the photo the newest row names replaces that row with a new one (an import writes a
    photo's attribute rows one after another: one row for them, not eleven), so every write after a
    given ``seq`` has a row after it. The lowest row is a marker (photo_id 0): every row below it
    was pruned; a table at a ``seq`` below the marker, or a log without one, cannot be brought up
    to date from the log."""

    __tablename__ = "attribute_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int]


CHANGE_LOG_MARKER = 0  # never a photo's id


def _log_change(photo: str) -> str:
    return (
        f"DELETE FROM attribute_changes WHERE photo_id = {photo} "
        "AND seq = (SELECT max(seq) FROM attribute_changes); "
        f"INSERT INTO attribute_changes (photo_id) VALUES ({photo});"
    )


def attribute_change_triggers() -> list[str]:
    """DDL shared by new files (below) and the migration to version 6: the log's first marker, and
    the triggers that fill it."""
    return [
        f"INSERT INTO attribute_changes (photo_id) VALUES ({CHANGE_LOG_MARKER})",
        f"CREATE TRIGGER attribute_changes_photo_insert AFTER INSERT ON photos BEGIN {_log_change('NEW.id')} END",
        f"CREATE TRIGGER attribute_changes_photo_delete AFTER DELETE ON photos BEGIN {_log_change('OLD.id')} END",
        "CREATE TRIGGER attribute_changes_insert AFTER INSERT ON photo_attributes "
        f"BEGIN {_log_change('NEW.photo_id')} END",
        "CREATE TRIGGER attribute_changes_update AFTER UPDATE ON photo_attributes "
        f"BEGIN {_log_change('OLD.photo_id')} {_log_change('NEW.photo_id')} END",
        "CREATE TRIGGER attribute_changes_delete AFTER DELETE ON photo_attributes "
        f"BEGIN {_log_change('OLD.photo_id')} END",
    ]


@event.listens_for(Base.metadata, "after_create")
def _create_triggers(_metadata, connection, **_kw) -> None:  # noqa: ANN001 - after every table exists
    for statement in attribute_change_triggers():
        connection.exec_driver_sql(statement)
