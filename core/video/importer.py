"""One video into the gallery: frames sampled, people detected and embedded, followed into tracks,
and one crop per track catalogued as a photo, with where it was seen.

The video is known by its sha256. Its import is committed in chunks: each chunk's finished tracks
(their crops as photos, embeddings, predicted attributes and provenance), where sampling stands
and the tracks still open are one transaction, with the chunk's audit entry. A ``kill -9`` loses at
most the chunk in flight, and the next import of the same file resumes from the last commit with
the same open tracks, so that no track is ever catalogued twice (the catalogue also refuses a
second crop of one track). Crops and their frames are written (whole, 0600) before the transaction
that names them; a file written for a chunk that never committed is written again, the same, on
resume."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from core.casework.logged_paths import path_fields
from core.catalogue.catalogue import NewPhoto
from core.catalogue.videos import (
    DONE,
    RUNNING,
    STOPPED,
    CropProvenance,
    NewVideo,
    Progress,
    VideoState,
    add_crops,
    relocate_video,
    save_progress,
    start_video,
    tracks_catalogued,
    video_with_sha256,
)
from core.common.errors import SketchSearchError
from core.common.imaging import make_thumbnail
from core.common.private_files import atomic_private_file, make_private_folder
from core.common.types import VideoProgress, VideoSummary
from core.gallery.importer import GalleryTarget
from core.model.embedded import require_finite
from core.model.modality import Modality
from core.video.detector import PersonDetector
from core.video.source import FrameSampler, SampledFrame, SamplingPosition, VideoError, VideoInfo
from core.video.tracking import Observation, Track, Tracker, TrackerSettings, colour_signature, crop_box, sharpness

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from core.model.embedded import EmbeddingModel

log = logging.getLogger(__name__)

VideoProgressCallback = Callable[[VideoProgress], None]
BATCH_KIND = "video batch"
CHUNK_SAMPLES = 20  # sampled frames per commit: 10 s of video at 2 frames/s
CHUNK_SECONDS = 30.0  # or this long of work, whichever comes first
CROPS_FOLDER = "video-crops"  # in the data folder, one folder per video


@dataclass(frozen=True)
class VideoTarget:
    """What a video import writes to (a gallery target), and what it sees and embeds with."""

    gallery: GalleryTarget
    model: EmbeddingModel
    detector: PersonDetector
    crops_dir: Path
    tracker: TrackerSettings = TrackerSettings()
    chunk_samples: int = CHUNK_SAMPLES


def video_sha256(
    path: str, cancel: threading.Event | None = None, on_bytes: Callable[[int], None] | None = None
) -> str:
    """The file's sha256, streamed (a 10-hour recording is never read into memory); '' when
    cancelled."""
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            if cancel is not None and cancel.is_set():
                return ""
            digest.update(chunk)
            done += len(chunk)
            if on_bytes is not None:
                on_bytes(done)
    return digest.hexdigest()


class _VideoImport:
    def __init__(
        self,
        target: VideoTarget,
        info: VideoInfo,
        samples_per_second: float,
        import_id: int | None,
        progress: VideoProgressCallback | None,
        cancel: threading.Event | None,
    ):
        self.target = target
        self.catalogue = target.gallery.catalogue
        self.info = info
        self.samples_per_second = samples_per_second
        self.import_id = import_id
        self.progress = progress
        self.cancel = cancel
        self.summary = VideoSummary(path=info.path)
        self.started = time.monotonic()
        self._last_report = 0.0

    def run(self) -> VideoSummary:
        info = self.info
        self._report("checking", 0, 0, 0, 0.0, None)
        sha = video_sha256(info.path, self.cancel)
        if not sha:
            self.summary.status = "cancelled"
            return self._finished()
        self.summary.sha256 = sha
        state = video_with_sha256(self.catalogue, sha)
        if state is not None and state.status != RUNNING:
            if (state.path, state.size_bytes, state.mtime_ns) != (info.path, info.size_bytes, info.mtime_ns):
                relocate_video(self.catalogue, state.id, info.path, info.size_bytes, info.mtime_ns)
            self.summary.status = "unchanged"
            self.summary.problem = state.problem or ""
            return self._finished()
        resumed = state is not None
        if state is None:
            detector = self.target.detector
            state = start_video(
                self.catalogue,
                NewVideo(
                    sha256=sha,
                    path=info.path,
                    size_bytes=info.size_bytes,
                    mtime_ns=info.mtime_ns,
                    width=info.width,
                    height=info.height,
                    declared_fps=info.declared_fps,
                    declared_frames=info.declared_frames,
                    codec=info.codec,
                    samples_per_second=self.samples_per_second,
                    detector=detector.name,
                    detector_sha256=detector.sha256,
                ),
            )
        elif (state.path, state.size_bytes, state.mtime_ns) != (info.path, info.size_bytes, info.mtime_ns):
            relocate_video(self.catalogue, state.id, info.path, info.size_bytes, info.mtime_ns)
        self.summary.status = "resumed" if resumed else "imported"
        self._sample(state)
        return self._finished()

    def _finished(self) -> VideoSummary:
        self.summary.seconds = time.monotonic() - self.started
        return self.summary

    # -- sampling, detecting, tracking ------------------------------------------------------------
    def _sample(self, state: VideoState) -> None:
        # a resumed import keeps the rate it was started with: its tracks were made at that rate
        sampler = FrameSampler(
            self.info, state.samples_per_second, SamplingPosition(state.next_frame, state.next_due_ms)
        )
        tracker = Tracker.from_json(state.open_tracks, self.target.tracker)
        self.state = state
        self.catalogued = tracks_catalogued(self.catalogue, state.id)
        self.counts = {"frames_sampled": state.frames_sampled, "detections": state.detections, "tracks": state.tracks}
        expected = self.info.expected_samples(state.samples_per_second)
        sampling_started = time.monotonic()
        since_commit, last_commit = 0, time.monotonic()
        finished: list[Track] = []
        try:
            for frame in sampler.frames(self.cancel):
                observations = self._observe(frame)
                finished += tracker.update(frame.timestamp_ms, observations)
                self.counts["frames_sampled"] += 1
                self.counts["detections"] += len(observations)
                self.summary.frames_sampled += 1
                self.summary.detections += len(observations)
                since_commit += 1
                if since_commit >= self.target.chunk_samples or time.monotonic() - last_commit >= CHUNK_SECONDS:
                    self._commit(finished, sampler.position, tracker, RUNNING)
                    finished, since_commit, last_commit = [], 0, time.monotonic()
                rate = self.summary.frames_sampled / max(time.monotonic() - sampling_started, 1e-6)
                done = self.counts["frames_sampled"]
                left = max(expected - done, 0) / rate if expected and rate > 0 else None
                self._report(
                    "sampling", done, max(expected, done), self.counts["tracks"] + len(tracker.tracks), rate, left
                )
        except VideoError as exc:
            # the file ends early (cut off, or damaged from there on): what was read is kept
            finished += tracker.finish()
            self._commit(finished, sampler.position, tracker, STOPPED, exc.reason)
            self.summary.status = "stopped"
            self.summary.problem = exc.reason
            return
        if self.cancel is not None and self.cancel.is_set():
            self._commit(finished, sampler.position, tracker, RUNNING)
            self.summary.status = "cancelled"
            return
        finished += tracker.finish()
        self._commit(finished, sampler.position, tracker, DONE)

    def _observe(self, frame: SampledFrame) -> list[Observation]:
        """The people in one sampled frame, each cropped and embedded (in one batch)."""
        target = self.target
        detections = target.detector.detect(frame.pixels)
        if not detections:
            return []
        height, width = frame.pixels.shape[:2]
        crops, boxes = [], []
        for detection in detections:
            x0, y0, x1, y1 = box = crop_box(detection, width, height)
            crops.append(np.ascontiguousarray(frame.pixels[y0:y1, x0:x1]))
            boxes.append(box)
        model = target.model
        inputs = np.stack([model.preprocess(crop, Modality.PHOTO) for crop in crops])
        embedded = require_finite(model.embed_preprocessed(inputs, Modality.PHOTO), model, Modality.PHOTO)
        observations = []
        for i, detection in enumerate(detections):
            x0, y0, x1, y1 = boxes[i]
            cut = x0 == 0 or y0 == 0 or x1 == width or y1 == height  # the frame cuts the person
            quality = sharpness(crops[i]) * detection.area * (0.5 if cut else 1.0)
            observations.append(
                Observation(
                    frame_index=frame.index,
                    timestamp_ms=frame.timestamp_ms,
                    detection=detection,
                    crop_box=boxes[i],
                    embedding=embedded.embeddings[i],
                    colour=colour_signature(crops[i]),
                    attributes={n: (a.value, a.confidence) for n, a in embedded.attributes[i].items()},
                    quality=quality,
                    crop=crops[i],
                    frame=frame.pixels,
                )
            )
        return observations

    # -- committing -------------------------------------------------------------------------------
    def _commit(
        self, finished: list[Track], position: SamplingPosition, tracker: Tracker, status: str, problem: str = ""
    ) -> None:
        """One chunk: the finished tracks' crops (as photos with provenance), where sampling stands
        and the open tracks, and the audit entry, in one transaction."""
        gallery = self.target.gallery
        state = self.state
        new = [t for t in finished if t.id not in self.catalogued]
        photos, provenance = [], []
        folder = self.target.crops_dir / state.sha256[:16]
        for track in new:
            best = track.best
            crop_data = best.crop_png()
            crop_sha = hashlib.sha256(crop_data).hexdigest()
            if self.catalogue.photo_with_sha256(crop_sha) is not None:
                continue  # the same pixels are catalogued already (identity by content)
            make_private_folder(self.target.crops_dir, warn=False)
            make_private_folder(folder, warn=False)
            crop_path = folder / f"track-{track.id:05d}.png"
            frame_path = folder / f"track-{track.id:05d}-frame.jpg"
            for path, data in ((crop_path, crop_data), (frame_path, best.frame_jpeg())):
                with atomic_private_file(path) as handle:
                    handle.write(data)
            written = crop_path.stat()
            height, width = best.crop.shape[:2]
            photos.append(
                NewPhoto(
                    path=str(crop_path),
                    sha256=crop_sha,
                    size_bytes=written.st_size,
                    mtime_ns=written.st_mtime_ns,
                    width=width,
                    height=height,
                    source_folder=self.info.path,
                    thumbnail=make_thumbnail(Image.fromarray(best.crop)),
                    embedding=best.embedding,
                    attributes=best.attributes,
                )
            )
            d = best.detection
            provenance.append(
                CropProvenance(
                    0,
                    track.id,
                    best.frame_index,
                    best.timestamp_ms,
                    d.box,
                    d.score,
                    self.target.detector.name,
                    str(frame_path),
                )
            )
        self.counts["tracks"] += len(photos)
        progress = Progress(
            next_frame=position.next_index,
            next_due_ms=position.next_due_ms,
            frames_sampled=self.counts["frames_sampled"],
            detections=self.counts["detections"],
            tracks=self.counts["tracks"],
            open_tracks=tracker.to_json() if status == RUNNING else None,
            status=status,
            problem=problem or None,
        )

        def record(connection: Connection, ids: list[int]) -> None:
            add_crops(connection, state.id, [replace(p, photo_id=i) for i, p in zip(ids, provenance)])
            save_progress(connection, state.id, progress)
            if ids:
                payload = {
                    "import_id": self.import_id,
                    "video_sha256": state.sha256,
                    **path_fields("video", self.info.path),
                    "added": len(ids),
                    "ids": [ids[0], ids[-1]],
                    "tracks": [p.track_id for p in provenance],
                    "next_frame": position.next_index,
                }
                gallery.log(connection, BATCH_KIND, payload)

        if photos:
            ids = self.catalogue.add_photos(photos, gallery.manifest.embedding_key, record=record)
            gallery.add_to_index(np.asarray(ids, np.int64), np.stack([p.embedding for p in photos]))
        else:
            with self.catalogue.write_transaction() as connection:
                record(connection, [])
        self.catalogued.update(p.track_id for p in provenance)
        self.summary.tracks += len(photos)
        self.summary.added += len(photos)

    def _report(self, stage: str, done: int, total: int, people: int, rate: float, left: float | None) -> None:
        now = time.monotonic()
        if self.progress is not None and (now - self._last_report >= 0.2 or stage == "checking"):
            self._last_report = now
            self.progress(VideoProgress(self.info.path, stage, done, total, people, rate, left))


def import_video(
    target: VideoTarget,
    info: VideoInfo,
    samples_per_second: float,
    import_id: int | None = None,
    progress: VideoProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> VideoSummary:
    try:
        return _VideoImport(target, info, samples_per_second, import_id, progress, cancel).run()
    except OSError as exc:
        raise SketchSearchError(f"{exc.filename or info.path}: {exc.strerror or exc}") from None
