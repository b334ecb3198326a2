"""Rebuilding the index off the calling thread when the gallery has outgrown it (flat -> IVF, or an
IVF index whose clusters were trained on a much smaller gallery, flat -> SQ8, or an SQ8 index whose
ranges later photos fell far outside). Searches go on with the old index
meanwhile; the new one is then brought level with the photos added or forgotten during training,
saved atomically and swapped in by its owner (``core.index.service``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from core.catalogue.catalogue import Catalogue
from core.index.vectors import FLAT, SQ8, IndexPolicy, VectorIndex

log = logging.getLogger(__name__)


class RebuildCancelled(Exception):
    """The index was closed while a background rebuild ran; the old index file stays."""


class Built(NamedTuple):
    index: VectorIndex
    ids: np.ndarray  # the photos it holds, ascending
    rejected: np.ndarray  # stored embeddings ``accept`` turned away (never indexed), ascending


def build_from_catalogue(
    catalogue: Catalogue,
    model_sha256: str,
    dim: int,
    policy: IndexPolicy,
    seed: int = 0,
    cancel: threading.Event | None = None,
    accept: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Built:
    """The index ``policy`` asks for, from the embeddings stored in SQLite, and the ids it holds.
    An IVF or SQ8 index is trained on a random sample and filled chunk by chunk, so a gallery of millions
    never has all its float vectors in memory at once (10M x 896 floats would be 36 GB).

    ``accept(vectors)`` says which rows of each chunk may be indexed (the index service's check for
    damaged embeddings): the others are left out and returned as ``rejected``, so the embeddings
    are checked in the same pass that indexes them instead of being read twice."""
    rejected = []

    def accepted(chunk_ids: np.ndarray, vectors: np.ndarray, record: bool = True) -> tuple[np.ndarray, np.ndarray]:
        if accept is None:
            return chunk_ids, vectors
        ok = np.asarray(accept(vectors), dtype=bool)
        if ok.all():
            return chunk_ids, vectors
        if record:
            rejected.append(chunk_ids[~ok])
        return chunk_ids[ok], vectors[ok]

    def result(index: VectorIndex, held: list[np.ndarray]) -> Built:
        ids = np.concatenate(held) if held else np.zeros(0, np.int64)
        return Built(index, ids, np.concatenate(rejected) if rejected else np.zeros(0, np.int64))

    ids = catalogue.embedded_ids(model_sha256)
    kind = policy.kind_for(len(ids))
    if kind == FLAT:
        ids, vectors = accepted(*catalogue.embeddings(model_sha256, dim))
        return result(VectorIndex.build(dim, model_sha256, ids, vectors, policy), [ids])
    sample_ids = ids
    if len(ids) > policy.max_training_points:
        sample_ids = np.sort(np.random.default_rng(seed).choice(ids, policy.max_training_points, replace=False))
    # a rejected vector never trains the clusters either (the pass below records it)
    _, sample = accepted(*catalogue.embeddings_of(model_sha256, dim, sample_ids.tolist()), record=False)
    trained = VectorIndex.trained_sq8 if kind == SQ8 else VectorIndex.trained_ivf
    index = trained(dim, model_sha256, sample, len(ids), policy)
    del sample
    held = []
    for chunk_ids, chunk_vectors in catalogue.iter_embeddings(model_sha256, dim):
        if cancel is not None and cancel.is_set():
            raise RebuildCancelled()
        chunk_ids, chunk_vectors = accepted(chunk_ids, chunk_vectors)
        index.add(chunk_ids, chunk_vectors)
        held.append(chunk_ids)
    return result(index, held)


class BackgroundRebuild:
    """Runs ``build(cancel)`` on a thread, then hands what it built to ``install`` (which brings it
    level with the live index, saves it and swaps it in, under the owner's lock)."""

    def __init__(self, build: Callable[[threading.Event], Built], install: Callable[[Built], VectorIndex]):
        self._build = build
        self._install = install
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._cancel = threading.Event()

    def start(self) -> bool:
        """Start a rebuild unless one runs already; True if this call started one."""
        with self._guard:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._thread = threading.Thread(target=self._run, name="index-rebuild", daemon=True)
            self._thread.start()
            return True

    def stop(self) -> None:
        """Abandon a running rebuild (between chunks; a k-means training in progress finishes first)."""
        self._cancel.set()
        self.wait()

    def wait(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def _run(self) -> None:
        try:
            fresh = self._install(self._build(self._cancel))
            log.info("index rebuilt in the background: %s, %d photos", fresh.kind, len(fresh))
        except RebuildCancelled:
            log.info("background index rebuild abandoned: the workspace closed")
        except Exception:  # noqa: BLE001 - the old index stays in use and on disk; the next save retries
            log.exception("background index rebuild failed; the current index stays in use")
