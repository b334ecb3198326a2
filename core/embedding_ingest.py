"""Ingest embedding shards into the catalogue and index without re-embedding: the same crash-safe
batches as an import (photos, embeddings and predicted attributes of a batch in one transaction,
then added to the index), logged as an import run, with failures recorded with their reasons.

A photo is identified by its content's sha256, so ingesting the same shards again adds nothing,
and a photo already catalogued by a normal import is not added twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.catalogue.catalogue import NewPhoto
from core.gallery_import import ProgressCallback
from core.shards import ShardError, check_embedding_key, iter_rows, shard_files
from core.types import ImportFailure, ImportProgress, ImportSummary

if TYPE_CHECKING:
    from core.workspace import Workspace


def ingest_shards(
    workspace: Workspace,
    location: Path,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    batch_size: int = 256,
) -> ImportSummary:
    files = shard_files(location)
    key, dim = workspace.embedding_key, workspace.embedding_dim
    check_embedding_key(files, key)  # refused before anything is written
    catalogue = workspace.catalogue
    summary = ImportSummary()
    started = time.monotonic()
    known = set(catalogue.paths_by_sha())
    import_id = catalogue.start_import([str(location)])
    batch: list[NewPhoto] = []

    def flush() -> None:
        if batch:
            ids = catalogue.add_photos(batch, key)
            workspace.index_add(np.asarray(ids, np.int64), np.stack([p.embedding for p in batch]))
            batch.clear()

    try:
        done = 0
        for row in iter_rows(files):
            if cancel is not None and cancel.is_set():
                summary.cancelled = True
                break
            done += 1
            if row.error is not None or row.embedding is None:
                summary.failed.append(ImportFailure(row.path, row.error or "no embedding in the shard"))
            elif row.embedding.shape != (dim,):
                raise ShardError(f"{row.path}: a {row.embedding.shape[0]}-d embedding, the model's are {dim}-d")
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
                summary.added += 1
                if len(batch) >= batch_size:
                    flush()
            if progress is not None and done % batch_size == 0:
                elapsed = max(time.monotonic() - started, 1e-9)
                progress(ImportProgress(done, 0, summary.added, len(summary.failed), done / elapsed, row.path))
        flush()
    finally:
        summary.seconds = time.monotonic() - started
        workspace.save_index()
        catalogue.record_failures(import_id, summary.failed)
        catalogue.finish_import(import_id, summary)
    return summary
