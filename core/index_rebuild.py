"""Rebuilding the index off the calling thread when the gallery has outgrown it (flat -> IVF, or an
IVF index whose clusters were trained on a much smaller gallery). Searches go on with the old index
meanwhile; the new one is brought level with the photos added or forgotten during training, saved
atomically and swapped in under the workspace's lock."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

from core.index import VectorIndex

if TYPE_CHECKING:
    from core.workspace import Workspace

log = logging.getLogger(__name__)


class BackgroundRebuild:
    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def start(self) -> bool:
        """Start a rebuild unless one runs already; True if this call started one."""
        with self._guard:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._thread = threading.Thread(target=self._run, name="index-rebuild", daemon=True)
            self._thread.start()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def _run(self) -> None:
        workspace = self.workspace
        key, dim = workspace.model.embedding_key, workspace.model.embedding_dim
        try:
            ids, vectors = workspace.catalogue.embeddings(key, dim)
            fresh = VectorIndex.build(dim, key, ids, vectors, workspace.index_policy)
            del vectors
            with workspace._lock:
                # Mirror the live index, not the catalogue: writers commit to SQLite first and add to
                # the index after, so the live index is what they have finished with.
                live = np.sort(workspace.index.ids())
                fresh.remove(np.setdiff1d(ids, live, assume_unique=True))
                added = np.setdiff1d(live, ids, assume_unique=True)
                if len(added):
                    fresh.add(*workspace.catalogue.embeddings_of(key, dim, added))
                fresh.save(workspace.index_path)
                workspace.index = fresh
            log.info("index rebuilt in the background: %s, %d photos", fresh.kind, len(fresh))
        except Exception:  # noqa: BLE001 - the old index stays in use and on disk; the next save retries
            log.exception("background index rebuild failed; the current index stays in use")
