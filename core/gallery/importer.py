"""Gallery import: find photos under folders, identify them by content, embed the new ones and
commit them batch by batch.

A file is identified by the sha256 of its bytes, so importing again adds nothing, a moved file
gets its path updated, and a copy is not catalogued twice. Each batch (photos, embeddings,
predicted attributes) is one transaction: a crash loses at most the batch in flight, and the next
import picks up where this one stopped. A bad file is recorded with its reason and skipped.

Every transaction that changes photos writes its audit entry (``import batch``) in itself, so that
after a ``kill -9`` the log holds exactly what was committed: a batch of new photos (how many were
added and how many replace a photo whose file now holds other content, with the first and last of
their consecutive ids), a photo forgotten because its file was replaced (``removed``), and a photo
followed to a new path (``relocated``, with its ``previous_path``) or given a new modification time
(``relocated`` at the same path). Each entry has the four counts, so the catalogue changes by the
sum of added + updated - removed. The run's ``import`` entry (written by the gallery service, naming
the run's row in the catalogue's import log and binding its content) follows."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.casework.logged_paths import path_fields
from core.catalogue.catalogue import Catalogue, FileState, NewPhoto, Record
from core.common import errors
from core.common.errors import ImageLoadError
from core.common.imaging import decode_for_gallery, make_thumbnail, read_photo_file
from core.common.types import Duplicate, ImportFailure, ImportProgress, ImportSummary
from core.gallery.pipeline import prepared_in_order
from core.gallery.scanning import iter_image_files
from core.model.embedded import require_finite
from core.model.manifest import Manifest
from core.model.modality import Modality

if TYPE_CHECKING:  # the network loads only when an import embeds
    from sqlalchemy import Connection

    from core.model.embedded import EmbeddingModel

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ImportProgress], None]

BATCH_KIND = "import batch"


@dataclass(frozen=True)
class GalleryTarget:
    """What an ingest writes to: the catalogue (the source of truth) under one model's embedding key,
    and the index kept beside it (reached through callbacks, so no ingest needs the workspace).
    ``log`` writes an audit entry inside the caller's transaction, so that a committed batch and its
    entry are never one without the other."""

    catalogue: Catalogue
    manifest: Manifest  # the model's key, dimension and attribute schema (read without loading the network)
    add_to_index: Callable[[np.ndarray, np.ndarray], None]  # (photo ids, unit vectors)
    forget_photos: Callable[[Sequence[int], Record | None], None]  # from the catalogue and the index
    save_index: Callable[[], None]
    log: Callable[[Connection, str, dict], None]  # (transaction, kind, payload): an audit entry in that transaction


@dataclass(frozen=True)
class ImportTarget(GalleryTarget):
    """A folder import's target: a gallery target and the network that embeds the photos."""

    model: EmbeddingModel


@dataclass(frozen=True)
class _Found:
    path: str
    source_folder: str
    size_bytes: int
    mtime_ns: int


@dataclass(frozen=True)
class _Decoded:
    sha256: str
    width: int
    height: int
    thumbnail: bytes
    network_input: np.ndarray


@dataclass(frozen=True)
class _KnownContent:
    sha256: str


def find_files(roots: Sequence[Path], summary: ImportSummary) -> list[_Found]:
    """Every image under ``roots`` once (overlapping roots are fine), with its size and mtime."""
    found: dict[str, _Found] = {}

    def fail(path: Path, reason: str) -> None:
        summary.failed.append(ImportFailure(str(path), reason))

    for root in roots:
        root_path = root.absolute()
        folder = str(root_path if root_path.is_dir() else root_path.parent)
        for path in iter_image_files(root_path, on_error=fail):
            key = str(path)
            if key in found:
                continue
            try:
                info = path.stat()
            except OSError as exc:
                fail(path, f"unreadable ({exc.strerror or exc})")
                continue
            found[key] = _Found(key, folder, info.st_size, info.st_mtime_ns)
    return list(found.values())


def preparing_threads(device_type: str) -> int:
    """Threads that prepare photos (read, hash, decode, thumbnail, resize) while the calling thread
    embeds and commits. On the CPU a photo's preparation costs about a quarter of its forward pass,
    which fills the cores the forward leaves idle (between its operators, whose waiting workers
    sleep, and while a batch is committed): one thread per core, at most two, since more only
    take cores from the forward (benchmarks/results/performance.md). On a GPU preparation is the
    bottleneck: up to four."""
    cores = os.cpu_count() or 1
    return max(1, min(4 if device_type == "cuda" else 2, cores))


class _Importer:
    def __init__(
        self, target: ImportTarget, progress: ProgressCallback | None, cancel: threading.Event | None, batch_size: int
    ):
        self.target = target
        self.catalogue = target.catalogue
        self.model = target.model
        self.progress = progress
        self.cancel = cancel
        self.batch_size = batch_size
        self.summary = ImportSummary()
        self.import_id: int | None = None  # the run in the catalogue's log, named in each audit entry
        self.by_sha = self.catalogue.paths_by_sha()  # sha -> (photo id, path); kept current as we go
        # queued for the next commit, with the summary field each counts under once committed
        self.batch: list[tuple[_Found, _Decoded, str]] = []
        self.done = 0
        self.total = 0
        self.started = time.monotonic()
        self._last_report = 0.0

    # -- worker threads ---------------------------------------------------------------------------
    def prepare(self, found: _Found) -> _Decoded | _KnownContent | ImportFailure:
        try:
            data, sha = read_photo_file(found.path)
            if sha in self.by_sha:
                return _KnownContent(sha)  # no need to decode: the photo is catalogued already
            width, height, image = decode_for_gallery(data, found.path)
            return _Decoded(
                sha, width, height, make_thumbnail(image), self.model.preprocess(np.asarray(image), Modality.PHOTO)
            )
        except ImageLoadError as exc:
            return ImportFailure(exc.path, exc.reason)
        except MemoryError:
            return ImportFailure(found.path, "out of memory while decoding")
        except Exception as exc:  # noqa: BLE001 - one strange file must never stop an import
            log.exception("unexpected error preparing %s", found.path)
            return ImportFailure(found.path, f"unexpected error ({exc.__class__.__name__}: {exc})")

    # -- calling thread -------------------------------------------------------------------------
    def run(self, files: list[_Found], known: dict[str, FileState]) -> None:
        self.total = len(files) + len(self.summary.failed)
        self.done = len(self.summary.failed)
        to_read = []
        for found in files:
            state = known.get(found.path)
            if state and state.size_bytes == found.size_bytes and state.mtime_ns == found.mtime_ns:
                self.summary.unchanged += 1
                self._advance(found.path)
            else:
                to_read.append(found)
        workers = preparing_threads(self.model.device.type)
        for found, result in prepared_in_order(to_read, self.prepare, workers, 4 * self.batch_size, self.cancel):
            self.consume(found, result, known.get(found.path))
            self._advance(found.path)
        self.flush()
        if self.cancel and self.cancel.is_set():
            self.summary.cancelled = True
            self._report("")  # where it stopped, with the batch committed last

    def consume(self, found: _Found, result, previous: FileState | None) -> None:
        if isinstance(result, ImportFailure):
            self.summary.failed.append(result)
            return
        replaced = previous is not None and previous.sha256 != result.sha256
        if replaced:
            # the file at this path now holds other content: the old photo is gone from disk
            gone = {"photo": previous.photo_id, "sha256": previous.sha256, **path_fields("path", found.path)}
            self.target.forget_photos([previous.photo_id], self._recorder(removed=1, **gone))
            self.by_sha.pop(previous.sha256, None)
        outcome = self._place(found, result, "updated" if replaced else "added")
        if replaced and outcome is not None:
            if outcome == "duplicates":  # its old photo is forgotten: the path counts as updated
                self.summary.duplicates.pop()
            self._count("updated")
        elif outcome not in (None, "duplicates"):
            self._count(outcome)

    def _count(self, field: str, n: int = 1) -> None:
        setattr(self.summary, field, getattr(self.summary, field) + n)

    def _payload(self, added: int = 0, updated: int = 0, relocated: int = 0, removed: int = 0, **fields) -> dict:
        counts = {"added": added, "updated": updated, "relocated": relocated, "removed": removed}
        return {"import_id": self.import_id, **counts, **fields}

    def _recorder(self, **payload) -> Record:
        """The audit entry of one transaction, written in it."""
        return lambda connection, _ids: self.target.log(connection, BATCH_KIND, self._payload(**payload))

    def _place(self, found: _Found, result: _Decoded | _KnownContent, new_as: str) -> str | None:
        """Catalogue one prepared file; returns the summary field it counts under, or None when it
        failed or was queued (a queued photo counts under ``new_as`` once its batch is committed)."""
        known = self.by_sha.get(result.sha256)
        if known is None:
            if isinstance(result, _KnownContent):  # its twin was forgotten meanwhile: decode after all
                result = self.prepare(found)
                if isinstance(result, ImportFailure):
                    self.summary.failed.append(result)
                    return None
            self.by_sha[result.sha256] = (-1, found.path)  # claimed; the id comes at commit
            self.batch.append((found, result, new_as))
            if len(self.batch) >= self.batch_size:
                self.flush()
            return None
        photo_id, old_path = known
        if photo_id == -1:
            return self._duplicate(found, old_path)  # a copy of a photo still in the batch
        if old_path == found.path or not os.path.exists(old_path):
            # the same file touched, or moved/renamed: follow it
            moved = {"photo": photo_id, "sha256": result.sha256, **path_fields("path", found.path)}
            if old_path != found.path:
                moved |= path_fields("previous_path", old_path)
            self.catalogue.relocate_photo(
                photo_id,
                found.path,
                found.size_bytes,
                found.mtime_ns,
                found.source_folder,
                record=self._recorder(relocated=1, **moved),
            )
            self.by_sha[result.sha256] = (photo_id, found.path)
            return "unchanged" if old_path == found.path else "updated"
        return self._duplicate(found, old_path)  # a second copy of a catalogued photo

    def _duplicate(self, found: _Found, of: str) -> str:
        self.summary.duplicates.append(Duplicate(found.path, of))
        return "duplicates"

    def flush(self) -> None:
        if not self.batch:
            return
        inputs = np.stack([decoded.network_input for _, decoded, _ in self.batch])
        embedded = require_finite(self.model.embed_preprocessed(inputs, Modality.PHOTO), self.model, Modality.PHOTO)
        photos = [
            NewPhoto(
                path=found.path,
                sha256=decoded.sha256,
                size_bytes=found.size_bytes,
                mtime_ns=found.mtime_ns,
                width=decoded.width,
                height=decoded.height,
                source_folder=found.source_folder,
                thumbnail=decoded.thumbnail,
                embedding=embedded.embeddings[i],
                attributes={n: (a.value, a.confidence) for n, a in embedded.attributes[i].items()},
            )
            for i, (found, decoded, _) in enumerate(self.batch)
        ]
        added = sum(1 for _, _, field in self.batch if field == "added")

        def record(connection: Connection, ids: list[int]) -> None:
            # a batch's ids are consecutive (one INSERT under the write lock): the first and last name them
            payload = self._payload(added=added, updated=len(ids) - added, ids=[ids[0], ids[-1]])
            self.target.log(connection, BATCH_KIND, payload)

        ids = self.catalogue.add_photos(photos, self.model.embedding_key, record=record)
        self.target.add_to_index(np.asarray(ids, np.int64), embedded.embeddings)
        for photo_id, photo, (_, _, field) in zip(ids, photos, self.batch):
            self.by_sha[photo.sha256] = (photo_id, photo.path)
            self._count(field)  # counted once committed: the import log never claims more
        self.batch = []

    def _advance(self, current: str) -> None:
        self.done += 1
        if time.monotonic() - self._last_report >= 0.1 or self.done == self.total:
            self._report(current)

    def _report(self, current: str) -> None:
        now = time.monotonic()
        if self.progress:
            self._last_report = now
            elapsed = max(now - self.started, 1e-6)
            self.progress(
                ImportProgress(
                    done=self.done,
                    total=self.total,
                    added=self.summary.added,
                    failed=len(self.summary.failed),
                    rate=self.done / elapsed,
                    current=current,
                )
            )


def import_paths(
    target: ImportTarget,
    roots: Sequence[Path],
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    batch_size: int = 32,
) -> ImportSummary:
    importer = _Importer(target, progress, cancel, batch_size)
    catalogue = target.catalogue
    # absolute, so that the folders the run covered are known whatever folder it was started from
    import_id = importer.import_id = catalogue.start_import([root.absolute() for root in roots])
    error: BaseException | None = None
    try:
        files = find_files(roots, importer.summary)
        importer.run(files, catalogue.file_states())
        if not importer.summary.cancelled:
            _update_missing_flags(catalogue, roots, {f.path for f in files})
    except BaseException as exc:
        error = exc
        raise
    finally:
        importer.summary.seconds = time.monotonic() - importer.started
        # the log records what was committed, and says failed when the import stopped early;
        # writing it may fail as the import did (a full disk): the import's own error is the one
        # to report, and the next open marks the run interrupted
        try:
            target.save_index()
            catalogue.record_failures(import_id, importer.summary.failed)
            catalogue.finish_import(import_id, importer.summary, failed=error is not None)
        except Exception as exc:
            if error is None:
                raise
            log.warning("import %d stopped; its end could not be recorded (%s)", import_id, errors.reason(exc))
    return importer.summary


def _update_missing_flags(catalogue: Catalogue, roots: Sequence[Path], seen: set[str]) -> None:
    """Flag catalogued photos under the imported folders whose files are gone (they can be pruned),
    and clear the flag of flagged photos that are back."""
    prefixes = [str(r.absolute()).rstrip(os.sep) + os.sep for r in roots if r.is_dir()]
    gone = [
        state.photo_id
        for path, state in catalogue.file_states().items()
        if path not in seen and any(path.startswith(p) for p in prefixes) and not os.path.exists(path)
    ]
    catalogue.mark_missing(gone)
    catalogue.mark_present([photo_id for photo_id, path in catalogue.missing_photos() if path in seen])
