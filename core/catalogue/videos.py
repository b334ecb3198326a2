"""Videos in the catalogue: each video imported (known by its sha256) with where its import stands,
and where each crop catalogued from one was seen. Crops are photos like any other (the photos
table); their provenance rows go with them (ON DELETE CASCADE)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from core.catalogue.catalogue import Catalogue
from core.catalogue.orm import FilePath, Photo, VideoCropRow, VideoRow
from core.common.clock import utcnow
from core.common.types import VideoSource

RUNNING, DONE, STOPPED = "running", "done", "stopped"


@dataclass(frozen=True)
class VideoState:
    """A video as the catalogue knows it, and where its import stands."""

    id: int
    sha256: str
    path: str
    size_bytes: int
    mtime_ns: int
    samples_per_second: float
    detector: str
    status: str
    next_frame: int
    next_due_ms: float
    frames_sampled: int
    detections: int
    tracks: int
    open_tracks: str | None  # the tracker's state as JSON, while the import is not done
    problem: str | None


@dataclass(frozen=True)
class NewVideo:
    sha256: str
    path: str
    size_bytes: int
    mtime_ns: int
    width: int
    height: int
    declared_fps: float
    declared_frames: int
    codec: str
    samples_per_second: float
    detector: str
    detector_sha256: str


@dataclass(frozen=True)
class CropProvenance:
    """Where one crop (catalogued as ``photo_id``) was seen."""

    photo_id: int
    track_id: int
    frame_index: int
    timestamp_ms: float
    box: tuple[int, int, int, int]
    score: float
    detector: str
    frame_file: str


@dataclass(frozen=True)
class Progress:
    """Where an import stands after a chunk: committed with the chunk's crops."""

    next_frame: int
    next_due_ms: float
    frames_sampled: int
    detections: int
    tracks: int
    open_tracks: str | None
    status: str = RUNNING
    problem: str | None = None


def _state(row) -> VideoState:
    return VideoState(
        id=row.id,
        sha256=row.sha256,
        path=row.path,
        size_bytes=row.size_bytes,
        mtime_ns=row.mtime_ns,
        samples_per_second=row.samples_per_second,
        detector=row.detector,
        status=row.status,
        next_frame=row.next_frame,
        next_due_ms=row.next_due_ms,
        frames_sampled=row.frames_sampled,
        detections=row.detections,
        tracks=row.tracks,
        open_tracks=row.open_tracks,
        problem=row.problem,
    )


_STATE_COLUMNS = [getattr(VideoRow, name) for name in VideoState.__dataclass_fields__]


def video_with_sha256(catalogue: Catalogue, sha256: str) -> VideoState | None:
    with catalogue.read_connection() as connection:
        row = connection.execute(select(*_STATE_COLUMNS).where(VideoRow.sha256 == sha256)).first()
    return _state(row) if row else None


def videos_at(catalogue: Catalogue, path: str) -> list[VideoState]:
    """The videos imported from ``path`` (one, or several when the file there was replaced)."""
    with catalogue.read_connection() as connection:
        rows = connection.execute(select(*_STATE_COLUMNS).where(VideoRow.path == path).order_by(VideoRow.id)).all()
    return [_state(row) for row in rows]


def start_video(catalogue: Catalogue, video: NewVideo) -> VideoState:
    with catalogue.write_transaction() as connection:
        connection.execute(
            insert(VideoRow.__table__),
            {
                **video.__dict__,
                "status": RUNNING,
                "next_frame": 0,
                "next_due_ms": 0.0,
                "frames_sampled": 0,
                "detections": 0,
                "tracks": 0,
                "open_tracks": None,
                "problem": None,
                "started_at": utcnow(),
                "finished_at": None,
            },
        )
    found = video_with_sha256(catalogue, video.sha256)
    assert found is not None
    return found


def relocate_video(catalogue: Catalogue, video_id: int, path: str, size_bytes: int, mtime_ns: int) -> None:
    """The same video (same sha256) found at another path, or touched: its crops follow it."""
    with catalogue.write_transaction() as connection:
        old = connection.execute(select(VideoRow.path).where(VideoRow.id == video_id)).scalar_one()
        connection.execute(
            update(VideoRow).where(VideoRow.id == video_id).values(path=path, size_bytes=size_bytes, mtime_ns=mtime_ns)
        )
        crops = select(VideoCropRow.photo_id).where(VideoCropRow.video_id == video_id)
        connection.execute(
            update(Photo).where(Photo.id.in_(crops), Photo.source_folder == old).values(source_folder=path)
        )


def save_progress(connection: Connection, video_id: int, progress: Progress) -> None:
    """Inside the caller's transaction (the one that commits the chunk's crops, if any)."""
    values = dict(progress.__dict__)
    if progress.status != RUNNING:
        values["finished_at"] = utcnow()
    connection.execute(update(VideoRow).where(VideoRow.id == video_id).values(**values))


def add_crops(connection: Connection, video_id: int, crops: Sequence[CropProvenance]) -> None:
    """Inside the transaction that adds the crops' photos."""
    if crops:
        connection.execute(
            insert(VideoCropRow.__table__),
            [
                {
                    "photo_id": c.photo_id,
                    "video_id": video_id,
                    "track_id": c.track_id,
                    "frame_index": c.frame_index,
                    "timestamp_ms": c.timestamp_ms,
                    "x0": c.box[0],
                    "y0": c.box[1],
                    "x1": c.box[2],
                    "y1": c.box[3],
                    "score": c.score,
                    "detector": c.detector,
                    "frame_file": c.frame_file,
                }
                for c in crops
            ],
        )


def tracks_catalogued(catalogue: Catalogue, video_id: int) -> set[int]:
    with catalogue.read_connection() as connection:
        return set(connection.execute(select(VideoCropRow.track_id).where(VideoCropRow.video_id == video_id)).scalars())


def crop_photo_ids(catalogue: Catalogue, video_id: int) -> list[int]:
    with catalogue.read_connection() as connection:
        found = connection.execute(
            select(VideoCropRow.photo_id).where(VideoCropRow.video_id == video_id).order_by(VideoCropRow.photo_id)
        )
        return list(found.scalars())


def delete_video(connection: Connection, video_id: int) -> None:
    """Inside the transaction that forgets the video's crops (their provenance goes with them)."""
    connection.execute(delete(VideoRow).where(VideoRow.id == video_id))


_PATH = FilePath()


def video_sources(catalogue: Catalogue, photo_ids: Iterable[int]) -> dict[int, VideoSource]:
    """Photo id -> where it was seen, for the photos among ``photo_ids`` that were cut from video."""
    with catalogue.snapshot() as cursor:
        return read_video_sources(cursor, photo_ids)


def read_video_sources(cursor: sqlite3.Cursor, photo_ids: Iterable[int]) -> dict[int, VideoSource]:
    """:func:`video_sources` through ``cursor`` (a catalogue snapshot's): every search asks it of its
    shown candidates."""
    return {
        photo_id: source for photo_id, _, source in _read_sources(cursor, "p.id", sorted({int(i) for i in photo_ids}))
    }


def video_sources_by_sha256(catalogue: Catalogue, photo_sha256s: Iterable[str]) -> dict[str, VideoSource]:
    """Photo sha256 -> where it was seen (a case report names its candidates by sha256)."""
    with catalogue.snapshot() as cursor:
        return {sha: source for _, sha, source in _read_sources(cursor, "p.sha256", sorted(set(photo_sha256s)))}


def _read_sources(cursor: sqlite3.Cursor, key: str, wanted: list) -> list[tuple[int, str, VideoSource]]:
    """(photo id, photo sha256, where it was seen) of the photos whose ``key`` column is among
    ``wanted`` and that were cut from video. One statement through the DB-API cursor, the keys joined
    as a JSON array, which has no parameter cap (built through SQLAlchemy's expressions it cost a
    search more than the rest of its candidates' reads together)."""
    # CROSS JOIN keeps the key list the outer loop: one indexed look-up per key
    rows = cursor.execute(
        "SELECT p.id, p.sha256, v.sha256, v.path, v.width, v.height, c.frame_index, c.timestamp_ms, "
        "c.x0, c.y0, c.x1, c.y1, c.detector, c.score, c.track_id, c.frame_file "
        f"FROM json_each(?) AS w CROSS JOIN photos AS p ON {key} = w.value "
        "JOIN video_crops AS c ON c.photo_id = p.id JOIN videos AS v ON v.id = c.video_id",
        (json.dumps(wanted),),
    ).fetchall()
    return [
        (
            r[0],
            r[1],
            VideoSource(
                video_sha256=r[2],
                video_path=_path(r[3]),
                frame_size=(r[4], r[5]),
                frame_index=r[6],
                timestamp_ms=r[7],
                box=(r[8], r[9], r[10], r[11]),
                detector=r[12],
                score=r[13],
                track_id=r[14],
                frame_file=_path(r[15]),
            ),
        )
        for r in rows
    ]


def _path(stored: str | bytes) -> str:
    """A path column as the ORM reads it back (a name that is not UTF-8 is stored as bytes)."""
    return _PATH.process_result_value(stored, None)
