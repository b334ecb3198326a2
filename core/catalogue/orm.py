"""ORM tables (internal to the catalogue: callers get dataclasses from ``core.types``).

These classes describe the newest schema; ``migrations`` brings older files up to it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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
    path: Mapped[str] = mapped_column(unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int]
    mtime_ns: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    imported_at: Mapped[datetime]
    source_folder: Mapped[str] = mapped_column(index=True)
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
    status: Mapped[str]  # running | done | cancelled | interrupted
    added: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)


class ImportFailureRow(Base):
    __tablename__ = "import_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("import_runs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str]
    reason: Mapped[str]
