"""Ingest embedding shards into the catalogue and index without re-embedding: the same crash-safe
batches as an import (photos, embeddings and predicted attributes of a batch in one transaction,
then added to the index), logged as an import run, with failures recorded with their reasons.

Every row of every shard is checked before anything is stored
(``core.gallery.shards.check_rows``): one bad row refuses the ingest. Each committed batch writes
its audit entry (``import embeddings batch``: the shard, its rows, the photos added) in its own
transaction, so that after a ``kill -9`` the log holds exactly what was committed; a batch never
spans two shards.

A photo is identified by its content's sha256, so ingesting the same shards again adds nothing,
and a photo already catalogued by a normal import is not added twice."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from core.casework.logged_paths import path_fields
from core.catalogue.catalogue import NewPhoto
from core.common.types import ImportFailure, ImportProgress, ImportSummary
from core.gallery.importer import GalleryTarget, ProgressCallback
from core.gallery.shards import check_embedding_key, check_rows, iter_rows, shard_files

log = logging.getLogger(__name__)

BATCH_KIND = "import embeddings batch"


def ingest_shards(
    target: GalleryTarget,
    location: Path,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    batch_size: int = 256,
) -> ImportSummary:
    files = shard_files(location)
    key, dim = target.manifest.embedding_key, target.manifest.embedding_dim
    check_embedding_key(files, key)  # refused before anything is written
    check_rows(files, key, dim, target.manifest.attribute_schema)  # every row, before anything is written
    catalogue = target.catalogue
    summary = ImportSummary()
    started = time.monotonic()
    known = set(catalogue.paths_by_sha())
    import_id = catalogue.start_import([location])
    batch: list[NewPhoto] = []
    numbers: list[int] = []  # the batch's rows in its shard

    def flush(shard: Path | None) -> None:
        if not batch:
            return
        payload = {"import_id": import_id, **path_fields("shard", shard), "rows": [numbers[0], numbers[-1]]}
        payload["added"] = len(batch)

        def record(connection, ids: list[int]) -> None:
            target.log(connection, BATCH_KIND, payload)

        ids = catalogue.add_photos(batch, key, record=record)
        target.add_to_index(np.asarray(ids, np.int64), np.stack([p.embedding for p in batch]))
        summary.added += len(batch)  # counted once committed: the import log never claims more
        batch.clear()
        numbers.clear()

    error: BaseException | None = None
    try:
        done = 0
        shard = None
        for row in iter_rows(files, dim):
            if cancel is not None and cancel.is_set():
                summary.cancelled = True
                break
            if row.shard != shard:
                flush(shard)
                shard = row.shard
            done += 1
            if row.error is not None:
                summary.failed.append(ImportFailure(row.path, row.error or "no reason given by the embedding job"))
            elif row.sha256 in known:
                summary.unchanged += 1
            else:
                known.add(row.sha256)
                batch.append(
                    NewPhoto(
                        path=row.path,
                        sha256=row.sha256,
                        size_bytes=row.size_bytes,
                        mtime_ns=row.mtime_ns,
                        width=row.width,
                        height=row.height,
                        source_folder=row.source_folder,
                        thumbnail=row.thumbnail,
                        embedding=row.embedding,
                        attributes=row.attributes,
                    )
                )
                numbers.append(row.number)
                if len(batch) >= batch_size:
                    flush(shard)
            if progress is not None and done % batch_size == 0:
                elapsed = max(time.monotonic() - started, 1e-9)
                progress(ImportProgress(done, 0, summary.added, len(summary.failed), done / elapsed, row.path))
        flush(shard)
    except BaseException as exc:
        error = exc
        raise
    finally:
        summary.seconds = time.monotonic() - started
        # as a folder import does: the run's end records what was committed, and failed when it stopped
        # early; when that cannot be written either (a full disk) the ingest's own error is reported
        try:
            target.save_index()
            catalogue.record_failures(import_id, summary.failed)
            catalogue.finish_import(import_id, summary, failed=error is not None)
        except Exception as exc:
            if error is None:
                raise
            reason = getattr(exc, "orig", None) or exc
            log.warning("import %d stopped; its end could not be recorded (%s)", import_id, reason)
    return summary
