"""The gallery's vector index as a service: it holds the index of one data folder and model, the
lock that guards it (FAISS is not safe for concurrent writes and reads: the window searches while
an import runs), its file, and its rebuild, in the foreground or in the background when the
gallery has outgrown it. The catalogue stays the source of truth: the index is built from it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.catalogue.catalogue import Catalogue
from core.index.rebuild import BackgroundRebuild, Built, build_from_catalogue
from core.index.vectors import FLAT, SQ8, IndexFileError, IndexPolicy, VectorIndex

log = logging.getLogger(__name__)

# (ids of damaged stored embeddings) -> (ids, vectors) of those embedded again
Repair = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def unit_rows(vectors: np.ndarray, tolerance: float = 1e-3) -> np.ndarray:
    """Which rows are finite unit vectors, as every embedding the model stores is; a damaged row
    (overwritten bytes) almost never is. Float32 sums of squares, without a float64 copy: a chunk of
    50,000 stored vectors is checked in about 10 ms instead of 150 (a square that overflows is an
    infinite norm, which the check refuses, as it refuses the far-from-unit vector it comes from)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
    return np.isfinite(norms) & (np.abs(norms - 1.0) <= tolerance)


def index_vector_problems(
    index: VectorIndex,
    catalogue: Catalogue,
    model_sha256: str,
    chunk: int = 50_000,
    damaged: list[np.ndarray] | None = None,
) -> list[str]:
    """Does every vector in ``index`` match the embedding stored in SQLite? Read in chunks, so a
    gallery of millions is checked without holding all its embeddings at once. A flat index holds
    the vectors exactly; an 8-bit index holds codes, which decode to within a small error, and a
    float32 copy, which must be exact; an IVF index holds codes alone.
    ``damaged``: the ids of stored embeddings that are not finite unit vectors are added to it in
    the same pass (the stored vectors are read once)."""
    exact = index.kind == FLAT
    problems: list[str] = []
    for ids, vectors in catalogue.iter_embeddings(model_sha256, index.dim, chunk):
        if damaged is not None:
            damaged.append(ids[~unit_rows(vectors)])
        if problems:
            continue  # the index is known to differ: only the damage check goes on
        stored = index.reconstruct_many(ids)
        if index.kind == SQ8 and not np.array_equal(index.exact_vectors(ids), vectors):
            # the search's scores come from this copy: it must be the stored embeddings, bit for bit
            problems = ["the index's float32 copy differs from the embeddings stored in the catalogue"]
        elif exact:
            if not np.allclose(stored, vectors, atol=1e-6):
                problems = ["index vectors differ from the embeddings stored in the catalogue"]
        else:
            # quantisation moves a unit vector by far less than this; another photo's vector, much more
            cosine = np.einsum("ij,ij->i", stored, vectors) / np.maximum(np.linalg.norm(stored, axis=1), 1e-12)
            wrong = int((cosine < 0.98).sum())
            if wrong:
                problems = [f"{wrong} index vector(s) differ from the embeddings stored in the catalogue"]
        if problems and damaged is None:
            break
    return problems


class IndexService:
    def __init__(self, catalogue: Catalogue, embedding_key: str, dim: int, path: Path, policy: IndexPolicy):
        self.catalogue = catalogue
        self.embedding_key = embedding_key
        self.dim = dim
        self.path = path
        self.policy = policy
        self.lock = threading.RLock()
        self._index: VectorIndex | None = None
        self._background = BackgroundRebuild(self._build_in_background, self._bring_level_and_swap)

    @property
    def index(self) -> VectorIndex:
        """The index in use now (a rebuild may swap another in: hold :attr:`lock` to keep it)."""
        assert self._index is not None, "the index is opened first"
        return self._index

    @property
    def kind(self) -> str:
        with self.lock:
            return self.index.kind

    def __len__(self) -> int:
        with self.lock:
            return len(self.index)

    def open(self, rebuild: Callable[[], VectorIndex]) -> None:
        """Load the index file; ``rebuild()`` (which swaps its index in, saved atomically) when it is
        unreadable, holds other photos than the catalogue's embedded ones, or is a float32 flat file
        of a gallery the policy now scans as 8-bit codes (files written before SQ8 existed migrate)."""
        expected = self.catalogue.embedded_ids(self.embedding_key)
        try:
            index = VectorIndex.load(self.path, self.dim, self.embedding_key)
        except IndexFileError as exc:
            if self.path.exists() or len(expected):
                log.warning("rebuilding the index from the catalogue: %s", exc)
            rebuild()
            return
        if not np.array_equal(np.sort(index.ids()), expected):
            log.warning(
                "rebuilding the index from the catalogue: %s holds %d photos, the catalogue %d",
                self.path,
                len(index),
                len(expected),
            )
            rebuild()
            return
        if index.kind == FLAT and self.policy.kind_for(len(index)) == SQ8:
            log.info("converting the float32 index of %d photos in %s to 8-bit codes", len(index), self.path)
            rebuild()
            return
        self._swap(index)

    def rebuild(self, save: bool = True, repair: Repair | None = None) -> VectorIndex:
        """A fresh index from the embeddings stored in SQLite, swapped in (and saved atomically unless
        ``save`` is false). A stored embedding that is not a finite unit vector is never indexed: its
        ids go to ``repair``, whose vectors are indexed instead. The stored vectors are read in chunks,
        once (the damage check runs on each chunk as it is indexed)."""
        index, _, damaged = build_from_catalogue(
            self.catalogue, self.embedding_key, self.dim, self.policy, accept=unit_rows
        )
        if len(damaged) and repair is not None:
            ids, vectors = repair(damaged)
            if len(ids):
                index.add(ids, vectors)
        if save:
            index.save(self.path)
        self._swap(index)
        return index

    def _swap(self, index: VectorIndex) -> None:
        with self.lock:
            self._index = index

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self.lock:
            self.index.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> None:
        with self.lock:
            self.index.remove(np.asarray(ids, np.int64))

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            return self.index.search(queries, k, allowed)

    def search_codes(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
        """An 8-bit index's (code scores, ids) as :meth:`search`, with the candidates' exact scores
        from its float32 copy, its error bound and its size, all under the same lock (an add or a
        removal meanwhile may change the candidates or raise the bound)."""
        with self.lock:
            codes, ids = self.index.search(queries, k, allowed)
            exact = self.index.exact_scores(queries, ids)
            return codes, ids, exact, self.index.error_bound, len(self.index)

    def save(self) -> None:
        """Write the index file; a gallery that has outgrown its index starts a background rebuild."""
        with self.lock:
            self.index.save(self.path)
            outgrown = self.policy.outgrown(self.index)
        if outgrown:
            self._background.start()

    def wait_for_rebuild(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild, if one runs; False if still running."""
        return self._background.wait(timeout)

    def stop(self) -> None:
        """Abandon a background rebuild (the index file stays as it was)."""
        self._background.stop()

    def _build_in_background(self, cancel: threading.Event) -> Built:
        return build_from_catalogue(self.catalogue, self.embedding_key, self.dim, self.policy, cancel=cancel)

    def _bring_level_and_swap(self, built: Built) -> VectorIndex:
        fresh, ids, _ = built
        key, dim = self.embedding_key, self.dim
        with self.lock:
            # Mirror the live index, not the catalogue: writers commit to SQLite first and add to the
            # index after, so the live index is what they have finished with.
            live = np.sort(self.index.ids())
            fresh.remove(np.setdiff1d(ids, live, assume_unique=True))
            added = np.setdiff1d(live, ids, assume_unique=True)
            if len(added):
                fresh.add(*self.catalogue.embeddings_of(key, dim, added))
            fresh.save(self.path)
            self._index = fresh
        return fresh
