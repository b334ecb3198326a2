"""Embedding catalogued photos again from their files: those with no embedding for the model in
use (after a model change: ``rebuild-index``), and those whose stored embedding is damaged (not a
finite unit vector), found while the index is rebuilt."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from core.catalogue.catalogue import Catalogue
from core.common.errors import ImageLoadError
from core.common.imaging import decode_image, load_rgb, read_photo_file
from core.common.types import ImportFailure, ImportProgress, ImportSummary
from core.gallery.importer import GalleryTarget, ProgressCallback
from core.model.embedded import require_finite
from core.model.modality import Modality

if TYPE_CHECKING:  # the network loads only when a photo is embedded
    from core.model.embedded import EmbeddingModel

log = logging.getLogger(__name__)


def repair_embeddings(
    catalogue: Catalogue,
    model: Callable[[], EmbeddingModel],
    embedding_key: str,
    dim: int,
    photo_ids: Sequence[int],
) -> tuple[list[ImportFailure], np.ndarray, np.ndarray]:
    """Embed damaged embeddings again from their files. Returns the photos that could not be (their
    damaged embedding is deleted, so they count as not embedded until their file is back), and
    the ids and new vectors of those that were (stored in the catalogue, for the caller's index)."""
    log.warning("%d stored embedding(s) are damaged (not finite unit vectors): embedding again", len(photo_ids))
    failed, ids, images = [], [], []
    for record in catalogue.photos(photo_ids):
        try:
            data, sha256 = read_photo_file(record.path)
            if sha256 != record.sha256:  # never file another person's embedding under this photo
                raise ImageLoadError(record.path, "the file changed since import")
            images.append(np.asarray(decode_image(data, record.path)))
            ids.append(record.id)
        except ImageLoadError as exc:
            failed.append(ImportFailure(exc.path, f"stored embedding damaged, file unusable ({exc.reason})"))
    vectors = np.zeros((0, dim), np.float32)
    if ids:
        network = model()  # loaded only when a photo is embedded
        embedded = require_finite(network.embed_images(images, Modality.PHOTO), network, Modality.PHOTO)
        attributes = [{n: (a.value, a.confidence) for n, a in per.items()} for per in embedded.attributes]
        catalogue.store_embeddings(embedding_key, ids, embedded.embeddings, attributes)
        vectors = np.asarray(embedded.embeddings, np.float32)
    lost = sorted(set(map(int, photo_ids)) - set(ids))
    catalogue.delete_embeddings(embedding_key, lost)
    for failure in failed:
        log.warning("%s: %s", failure.path, failure.reason)
    return failed, np.asarray(ids, np.int64), vectors


def embed_missing(
    target: GalleryTarget,
    model: Callable[[], EmbeddingModel],
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    batch_size: int,
) -> ImportSummary:
    """Embed catalogued photos that have no embedding for ``target``'s model (after a model change):
    ``updated`` counts the photos embedded, ``failed`` those whose file could not be read. Each
    batch is committed as it is done (then added to the index), so a cancelled or interrupted run
    resumes where it stopped; the index is saved at the end. ``model()`` is called only when a
    photo is embedded."""
    catalogue, embedding_key = target.catalogue, target.manifest.embedding_key
    started = time.monotonic()
    todo = catalogue.ids_without_embedding(embedding_key)
    summary = ImportSummary()
    for start in range(0, len(todo), batch_size):
        if cancel and cancel.is_set():
            summary.cancelled = True
            break
        ids, images = [], []
        for photo_id, path in todo[start : start + batch_size]:
            try:
                images.append(load_rgb(path))
                ids.append(photo_id)
            except ImageLoadError as exc:
                summary.failed.append(ImportFailure(exc.path, exc.reason))
        if ids:
            network = model()
            embedded = require_finite(network.embed_images(images, Modality.PHOTO), network, Modality.PHOTO)
            attributes = [{n: (a.value, a.confidence) for n, a in per.items()} for per in embedded.attributes]
            catalogue.store_embeddings(embedding_key, ids, embedded.embeddings, attributes)
            target.add_to_index(np.asarray(ids, np.int64), embedded.embeddings)
            summary.updated += len(ids)
        if progress:
            done = min(start + batch_size, len(todo))
            progress(
                ImportProgress(
                    done=done,
                    total=len(todo),
                    added=summary.updated,
                    failed=len(summary.failed),
                    rate=done / max(time.monotonic() - started, 1e-9),
                    current=todo[done - 1][1],
                )
            )
    target.save_index()
    summary.seconds = time.monotonic() - started
    return summary
