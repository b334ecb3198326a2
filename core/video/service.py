"""What a gallery does with videos: import them (all checked first, then one at a time under the
data folder's one-writer lock), remove one with its crops, and say where a crop was seen."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.casework.logged_paths import path_b64, path_fields, path_text
from core.catalogue.videos import (
    crop_photo_ids,
    delete_video,
    video_sources,
    videos_at,
)
from core.common.errors import SketchSearchError, UnknownPhotoError
from core.common.types import ImportSummary, VideoSource, VideoSummary
from core.gallery.service import Gallery
from core.video.detector import PersonDetector
from core.video.importer import CHUNK_SAMPLES, CROPS_FOLDER, VideoProgressCallback, VideoTarget, import_video
from core.video.source import DEFAULT_SAMPLES_PER_SECOND, check_sample_rate, is_video_name, probe


class VideoImports:
    def __init__(self, gallery: Gallery, data_dir: Path):
        self.gallery = gallery
        self.catalogue = gallery.catalogue
        self.crops_dir = Path(data_dir) / CROPS_FOLDER
        self._detector: PersonDetector | None = None
        self._lock = threading.Lock()

    @staticmethod
    def is_video(path: str | Path) -> bool:
        return is_video_name(path) and not Path(path).is_dir()

    @property
    def detector(self) -> PersonDetector:
        """Loaded (its sha256 checked) the first time a video is imported."""
        with self._lock:
            if self._detector is None:
                self._detector = PersonDetector()
            return self._detector

    def import_videos(
        self,
        paths: Iterable[str | Path],
        samples_per_second: float = DEFAULT_SAMPLES_PER_SECOND,
        progress: VideoProgressCallback | None = None,
        cancel: threading.Event | None = None,
        chunk_samples: int = CHUNK_SAMPLES,
    ) -> list[VideoSummary]:
        """Import each video in turn. Every file is checked before any is imported: one that is
        not a whole, decodable video with at least one frame is refused (a one-line error naming it)
        and nothing is imported. A video found to end early while decoding (cut off or damaged
        after its header) keeps what was read; its summary says where it stopped. Each
        ``chunk_samples`` sampled frames (or 30 s of work) are committed together."""
        samples_per_second = check_sample_rate(samples_per_second)
        infos = [probe(path) for path in paths]
        gallery = self.gallery
        target = VideoTarget(
            gallery.target(), gallery.models.model, self.detector, self.crops_dir, chunk_samples=chunk_samples
        )
        summaries: list[VideoSummary] = []
        with gallery.writer.exclusive():
            for info in infos:
                if cancel is not None and cancel.is_set():
                    break
                import_id = self.catalogue.start_import([Path(info.path)])
                summary, failed = VideoSummary(info.path), True
                try:
                    summary = import_video(target, info, samples_per_second, import_id, progress, cancel)
                    failed = False
                finally:
                    run = ImportSummary(added=summary.added, cancelled=summary.status == "cancelled")
                    run.unchanged = int(summary.status == "unchanged")
                    self.catalogue.finish_import(import_id, run, failed=failed)
                    gallery.indexes.save()
                summaries.append(summary)
                # the entry binds the run's record (the video's path, counts, status); the rest is the video's
                gallery.desk.record_import_run(
                    "import video",
                    import_id,
                    {
                        "sha256": summary.sha256,
                        "video_status": summary.status,
                        "frames_sampled": summary.frames_sampled,
                        "problem": summary.problem,
                    },
                )
        return summaries

    def remove_source(self, folder: str) -> int:
        """Remove a folder's photos, or when ``folder`` is a video's path, the video: its crops (the
        derived files SketchSearch wrote, deleted with them) and where its import stood, so that
        importing it again starts afresh. Returns the photos removed."""
        videos = videos_at(self.catalogue, folder)
        if not videos:
            return self.gallery.remove_folder(folder)
        removed = 0
        for video in videos:
            ids = crop_photo_ids(self.catalogue, video.id)
            photos = [[p.id, p.sha256, path_text(p.path), path_b64(p.path)] for p in self.catalogue.photos(ids)]
            payload = {**path_fields("video", folder), "sha256": video.sha256, "photos": photos}

            def record(connection, _ids, video_id=video.id, payload=payload) -> None:  # noqa: ANN001
                delete_video(connection, video_id)
                self.gallery.desk.log_in(connection, "remove video", payload)

            with self.gallery.writer.exclusive():
                if ids:
                    self.gallery.forget_photos(ids, record)
                else:
                    self._forget_video_alone(record)
                shutil.rmtree(self.crops_dir / video.sha256[:16], ignore_errors=True)
            removed += len(ids)
        self.gallery.indexes.save()
        return removed

    def _forget_video_alone(self, record) -> None:  # noqa: ANN001
        with self.catalogue.write_transaction() as connection:
            record(connection, [])

    def sources(self, photo_ids: Sequence[int]) -> dict[int, VideoSource]:
        return video_sources(self.catalogue, photo_ids)

    def frame(self, photo_id: int) -> tuple[VideoSource, bytes]:
        """Where a crop was seen and the frame it was cut from (JPEG, as stored at import)."""
        source = video_sources(self.catalogue, [photo_id]).get(int(photo_id))
        if source is None:
            raise UnknownPhotoError(f"photo {photo_id} was not cut from a video")
        try:
            return source, Path(source.frame_file).read_bytes()
        except OSError as exc:
            raise SketchSearchError(
                f"{source.frame_file}: the stored frame cannot be read ({exc.strerror or exc})"
            ) from None
