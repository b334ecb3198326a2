"""The vector index: FAISS inner product over unit vectors (= cosine similarity), keyed by photo id.

Three kinds, chosen by gallery size (``IndexPolicy``): a float32 flat scan while the gallery is tiny
(under ``quantise_from`` photos); then an exhaustive scan of 8-bit scalar-quantised codes (SQ8: a
quarter of the bytes read per query), whose candidates the search re-scores exactly from a float32
copy of the vectors held beside the codes, deep enough that its top K is provably the exact top K (``error_bound``); and
above ``approximate_from`` photos an inverted-file index with scalar-quantised codes (IVF-SQ),
trained on the stored embeddings: a query scans only the ``nprobe`` nearest of ``nlist`` clusters.
The choice and its settings are measured in benchmarks/index_scale.py and
benchmarks/query_latency.py (results in benchmarks/results/scale.md and performance.md).

The file on disk is a cache of the embeddings stored in SQLite: it is written atomically, carries
the model's embedding key (a sha256 of its weights and settings) and a checksum, and is rebuilt
from the catalogue whenever it is missing, stale or corrupt."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from core.common.private_files import atomic_private_file, make_private_folder

MAGIC = b"SKETCHSEARCH-INDEX-1\n"
# a filtered IVF search scans clusters expected to hold this many times K allowed photos
FILTER_COVERAGE = 32
FLAT = "flat"
SQ8 = "sq8"
IVF = "ivf"
# FAISS computes a quantised score in float32: its rounding is far below this, added to the bound
SCORE_SLACK = 1e-5
# Below this many queries FAISS scans the vectors once per query and parallelises over queries
# only, so extra OpenMP threads just spin; one thread is as fast, and much faster on a busy machine.
SMALL_BATCH = 20


class IndexFileError(Exception):
    """The index file cannot be used (missing, corrupt, or made for another model)."""


@dataclass(frozen=True)
class IndexPolicy:
    """When the index turns approximate, and when an approximate one is trained afresh.

    ``approximate_from``: below this many photos the flat scan is exact and fast enough (measured:
    its single-query p95 stays under 100 ms on 2 cores up to about this size). ``regrow_factor``: an
    IVF index is retrained once the gallery holds this many times the photos it was trained on, so
    its clusters keep following the gallery. ``quantiser``: the FAISS code of each vector."""

    approximate_from: int = 200_000
    # below this many photos the float32 scan is fast anyway, and too few vectors to train the 8-bit
    # ranges on; from here to approximate_from the exhaustive scan reads 8-bit codes
    quantise_from: int = 2_000
    # the 8-bit ranges are the trained minimum and maximum of each value widened by this share of
    # their span on each side, so later photos rarely fall outside them
    range_margin: float = 0.05
    # an SQ8 index is retrained once a photo added later fell so far outside the trained ranges that
    # the index's error bound grew past this many times its trained value (every search must then
    # re-score more candidates to stay exact)
    error_growth: float = 1.5
    # candidates an SQ8 search re-scores exactly: max(rescore_factor x K, min_rescore) at first,
    # widened (x4) for any query whose top K the error bound does not prove exact
    rescore_factor: int = 4
    min_rescore: int = 200
    regrow_factor: float = 2.0
    quantiser: str = "SQ6"
    # clusters scanned per query: this share of all clusters, at least min_probe (measured: recall@100
    # about 0.95 at 100k photos and 0.965 at 1M with 64 of sqrt(N) clusters; the share keeps recall
    # as the clusters multiply). Raised per query when a filter leaves fewer than K matches.
    probe_share: float = 1 / 32
    min_probe: int = 64
    # k-means on more points than this buys no recall and costs minutes on 2 cores
    max_training_points: int = 100_000

    def kind_for(self, count: int) -> str:
        if count >= self.approximate_from:
            return IVF
        return SQ8 if count >= self.quantise_from else FLAT

    def rescore_depth(self, k: int) -> int:
        return max(self.rescore_factor * k, self.min_rescore)

    def nlist_for(self, count: int) -> int:
        # about sqrt(N) clusters, with at least 39 training points each (FAISS's own minimum)
        return max(1, min(int(np.sqrt(count)), count // 39))

    def outgrown(self, index: VectorIndex) -> bool:
        """Should ``index`` be rebuilt (in the background) for the gallery it now holds?"""
        if index.kind == FLAT:
            return self.kind_for(len(index)) != FLAT
        if index.kind == SQ8:
            return self.kind_for(len(index)) == IVF or index.error_bound > self.error_growth * index.trained_error
        return len(index) >= self.regrow_factor * max(index.trained_on, 1)


DEFAULT_POLICY = IndexPolicy()


class VectorIndex:
    def __init__(self, dim: int, model_sha256: str):
        """An empty exact (flat) index; ``build`` chooses the kind for a gallery."""
        self.dim = dim
        self.model_sha256 = model_sha256
        self.kind = FLAT
        self.trained_on = 0  # IVF and SQ8: how many photos the clusters or ranges were trained on
        self.nprobe = 1
        # SQ8: the largest distance between a held vector and its decoded code (in the sample trained
        # on, and since): |q . (x - decoded x)| <= |x - decoded x| for a unit query q, so a quantised
        # score is never further than this from the exact one (never lowered by a removal)
        self.error_bound = 0.0
        self.trained_error = 0.0
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        # SQ8: the float32 vectors themselves, by photo id, from which the search re-scores its
        # candidates exactly: a few hundred look-ups in memory instead of as many SQLite reads (the
        # scan still reads only the 8-bit codes; the copy costs the memory a float32 index would)
        self._exact: faiss.IndexIDMap2 | None = None
        self._exact_rows: tuple[np.ndarray, np.ndarray] | None = None  # (held ids ascending, their rows)

    @classmethod
    def build(
        cls,
        dim: int,
        model_sha256: str,
        ids: np.ndarray,
        vectors: np.ndarray,
        policy: IndexPolicy = DEFAULT_POLICY,
        seed: int = 0,
    ) -> VectorIndex:
        """The index ``policy`` asks for, holding ``vectors`` (trained on them when approximate)."""
        kind = policy.kind_for(len(ids))
        if kind == FLAT:
            index = cls(dim, model_sha256)
        else:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            sample = vectors
            if len(vectors) > policy.max_training_points:
                rows = np.random.default_rng(seed).choice(len(vectors), policy.max_training_points, replace=False)
                sample = vectors[np.sort(rows)]
            trained = cls.trained_sq8 if kind == SQ8 else cls.trained_ivf
            index = trained(dim, model_sha256, sample, len(ids), policy)
        index.add(ids, vectors)
        return index

    @classmethod
    def trained_sq8(
        cls, dim: int, model_sha256: str, sample: np.ndarray, count: int, policy: IndexPolicy = DEFAULT_POLICY
    ) -> VectorIndex:
        """An empty exhaustive 8-bit index, its per-value ranges trained on ``sample``."""
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        quantiser = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        quantiser.sq.rangestat = faiss.ScalarQuantizer.RS_minmax
        quantiser.sq.rangestat_arg = policy.range_margin
        quantiser.train(sample)
        index = cls(dim, model_sha256)
        index._index = faiss.IndexIDMap2(quantiser)
        index._exact = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        index.kind = SQ8
        index.trained_on = count
        index.trained_error = index.error_bound = index._code_error(sample)
        return index

    def _code_error(self, vectors: np.ndarray) -> float:
        """The largest distance between one of ``vectors`` and its decoded 8-bit code."""
        quantiser = faiss.downcast_index(self._index.index)
        worst = 0.0
        for start in range(0, len(vectors), 20_000):
            chunk = vectors[start : start + 20_000]
            decoded = quantiser.sa_decode(quantiser.sa_encode(chunk))
            worst = max(worst, float(np.sqrt(np.einsum("ij,ij->i", chunk - decoded, chunk - decoded).max())))
        return worst

    @classmethod
    def trained_ivf(
        cls, dim: int, model_sha256: str, sample: np.ndarray, count: int, policy: IndexPolicy = DEFAULT_POLICY
    ) -> VectorIndex:
        """An empty IVF index for a gallery of ``count`` photos, its clusters trained on ``sample``
        (vectors are then added in chunks: a gallery of millions is never all in memory at once)."""
        nlist = policy.nlist_for(count)
        ivf = faiss.index_factory(dim, f"IVF{nlist},{policy.quantiser}", faiss.METRIC_INNER_PRODUCT)
        ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
        index = cls(dim, model_sha256)
        index._index = ivf
        index.kind = IVF
        index.trained_on = count
        index.nprobe = min(nlist, max(policy.min_probe, round(nlist * policy.probe_share)))
        return index

    @property
    def faiss_index(self):  # noqa: ANN201 - a FAISS index
        """The FAISS object itself (benchmarks time it bare, beside the search around it)."""
        return self._index

    @property
    def nlist(self) -> int:
        return self._index.nlist if self.kind == IVF else 1

    # -- contents ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._index.ntotal

    def ids(self) -> np.ndarray:
        if self.kind != IVF:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        lists = self._index.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(lists.nlist)
            if lists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected {len(ids)} x {self.dim} vectors, got {vectors.shape}")
        if len(ids):
            if self.kind == SQ8:
                self.error_bound = max(self.error_bound, self._code_error(vectors))
            self._index.add_with_ids(vectors, ids)
            if self._exact is not None:
                self._exact.add_with_ids(vectors, ids)
                self._exact_rows = None

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        if self.kind == IVF and self._index.direct_map.type == faiss.DirectMap.Hashtable:
            # FAISS removes through a hashtable direct map only by an explicit id array
            return int(self._index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))))
        if self._exact is not None:
            self._exact.remove_ids(faiss.IDSelectorBatch(ids))
            self._exact_rows = None
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))

    def reconstruct(self, photo_id: int) -> np.ndarray:
        """The stored vector of a photo (for IVF, decoded from its code: close to, not equal to, the
        embedding)."""
        return self.reconstruct_many(np.asarray([photo_id]))[0]

    def reconstruct_many(self, photo_ids: np.ndarray) -> np.ndarray:
        """Stored vectors of many photos in one call (verify reads a million this way)."""
        # an IVF index gets its id -> slot table on first use only: searching never needs its memory
        if self.kind == IVF and self._index.direct_map.type == faiss.DirectMap.NoMap:
            self._index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return self._index.reconstruct_batch(np.ascontiguousarray(photo_ids, dtype=np.int64))

    def exact_vectors(self, photo_ids: np.ndarray) -> np.ndarray:
        """SQ8: the float32 vectors the index holds beside its codes (what its scores are made of),
        found by a binary search of the held ids (FAISS's own look-up, one id at a time, cost a
        search half a millisecond). ``KeyError`` if a photo is not held."""
        assert self._exact is not None, "only an 8-bit index holds a float32 copy"
        photo_ids = np.asarray(photo_ids, dtype=np.int64)
        if self._exact_rows is None:  # after an add or a removal
            held = faiss.vector_to_array(self._exact.id_map).astype(np.int64)
            order = np.argsort(held, kind="stable")
            self._exact_rows = held[order], order
        held, order = self._exact_rows
        at = np.searchsorted(held, photo_ids).clip(max=max(len(held) - 1, 0))
        if len(photo_ids) and (not len(held) or not np.array_equal(held[at], photo_ids)):
            raise KeyError(f"photo(s) not in the index: {photo_ids[held[at] != photo_ids][:5].tolist()}")
        flat = faiss.downcast_index(self._exact.index)
        matrix = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * self.dim).reshape(flat.ntotal, self.dim)
        return matrix[order[at]]  # a copy: the view dies with the next add

    def exact_scores(self, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """SQ8: the exact cosine similarity of each query (row) with each of its candidates ``ids``
        (-1: none, scored -inf), from the float32 copy."""
        queries = np.asarray(queries, np.float32).reshape(len(ids), self.dim)
        scores = np.full(ids.shape, -np.inf, np.float32)
        held = ids >= 0
        if held.any():
            rows, columns = np.nonzero(held)
            vectors = self.exact_vectors(ids[rows, columns])
            scores[rows, columns] = np.einsum("ij,ij->i", vectors, queries[rows])
        return scores

    # -- search --------------------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) per query; with ``allowed_ids`` only those photos compete, so a
        filtered search still returns k results whenever k allowed photos exist. Missing slots
        have id -1. The scores of SQ8 and IVF are those of the codes (see ``core.search``)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, min(int(k), len(self) or 1))
        selector = None
        if allowed_ids is not None:
            allowed_ids = np.ascontiguousarray(allowed_ids, dtype=np.int64)
            if len(allowed_ids) == 0:
                return (np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64))
            selector = _selector(allowed_ids)
        threads = faiss.omp_get_max_threads()
        if len(queries) < SMALL_BATCH:
            faiss.omp_set_num_threads(1)
        try:
            if self.kind != IVF:
                params = faiss.SearchParameters(sel=selector) if selector is not None else None
                return self._index.search(queries, k, params=params)
            return self._search_ivf(queries, k, selector, None if allowed_ids is None else len(allowed_ids))
        finally:
            faiss.omp_set_num_threads(threads)

    def _search_ivf(self, queries: np.ndarray, k: int, selector, allowed: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Scan ``nprobe`` clusters; where a query got fewer than k photos (a selective filter, or
        thin clusters), scan twice as many, up to all of them: then the search is exhaustive over
        the allowed photos, so k come back whenever k exist."""
        nprobe = self.nprobe
        if allowed is not None:
            # scan enough clusters to meet about FILTER_COVERAGE x k allowed photos: stopping at the
            # first k found would keep whichever k came first, not the nearest
            share = FILTER_COVERAGE * k / max(allowed, 1)
            nprobe = max(nprobe, int(np.ceil(self.nlist * share)))
        nprobe = min(nprobe, self.nlist)
        scores, ids = self._index.search(queries, k, params=_ivf_params(nprobe, selector))
        short = np.flatnonzero((ids < 0).any(axis=1))
        while len(short) and nprobe < self.nlist:
            nprobe = min(2 * nprobe, self.nlist)
            scores[short], ids[short] = self._index.search(queries[short], k, params=_ivf_params(nprobe, selector))
            short = short[(ids[short] < 0).any(axis=1)]
        return scores, ids

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write atomically: a temporary file in the same folder, flushed to disk, then renamed over
        the old one, so a crash leaves either the old index or the new one, never half of one.

        The payload streams from FAISS twice, first through its checksum alone (which the header
        holds), then into the file: never a serialised copy in memory, which would hold the index
        twice more (20 GB for the 6.8 GB index of 10 million photos)."""
        path = Path(path)
        make_private_folder(path.parent, warn=False)
        payload_sha256 = self._stream_payload(lambda block: None)
        header = (
            json.dumps(
                {
                    "model_sha256": self.model_sha256,
                    "dim": self.dim,
                    "count": len(self),
                    "kind": self.kind,
                    "trained_on": self.trained_on,
                    "nprobe": self.nprobe,
                    "error_bound": self.error_bound,
                    "trained_error": self.trained_error,
                    "payload_sha256": payload_sha256,
                    "exact_copy": self._exact is not None,
                }
            ).encode()
            + b"\n"
        )
        with atomic_private_file(path) as handle:
            handle.write(MAGIC + header)
            if self._stream_payload(handle.write) != payload_sha256:  # the index changed between the passes
                raise RuntimeError(f"{path}: the index changed while it was written")

    def _stream_payload(self, write) -> str:  # noqa: ANN001 - a binary file's write, or a sink
        """Serialise the FAISS index block by block into ``write``; returns the payload's sha256."""
        digest = hashlib.sha256()

        def take(block: bytes) -> int:
            digest.update(block)
            write(block)
            return len(block)

        writer = faiss.PyCallbackIOWriter(take, 1 << 22)
        faiss.write_index(self._index, writer)
        if self._exact is not None:  # the float32 copy follows the codes in the same payload
            faiss.write_index(self._exact, writer)
        return digest.hexdigest()

    @classmethod
    def load(cls, path: Path, dim: int, model_sha256: str) -> VectorIndex:
        path = Path(path)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below, after FAISS has read through it
        except FileNotFoundError:
            raise IndexFileError(f"{path}: no index file") from None
        except OSError as exc:
            raise IndexFileError(f"{path}: unreadable ({exc.strerror or exc})") from None
        with handle:
            if handle.read(len(MAGIC)) != MAGIC:
                raise IndexFileError(f"{path}: not a SketchSearch index")
            try:
                header = json.loads(handle.readline())
            except ValueError:
                raise IndexFileError(f"{path}: corrupt header") from None
            if header.get("model_sha256") != model_sha256 or header.get("dim") != dim:
                raise IndexFileError(f"{path}: made for another model")
            index = cls(dim, model_sha256)
            index.kind = header.get("kind", FLAT)  # files written before IVF existed are flat
            if index.kind not in (FLAT, SQ8, IVF):
                raise IndexFileError(f"{path}: unknown index kind {index.kind!r}")
            index.trained_on = int(header.get("trained_on", 0))
            index.nprobe = int(header.get("nprobe", 1))
            index.error_bound = float(header.get("error_bound", 0.0))
            index.trained_error = float(header.get("trained_error", 0.0))
            # FAISS reads the payload straight from the file into the index while it is hashed on
            # the way: half the time and memory of reading it into bytes and deserialising a copy
            digest = hashlib.sha256()

            def read(size: int) -> bytes:
                block = handle.read(size)
                digest.update(block)
                return block

            if index.kind == SQ8 and not header.get("exact_copy"):
                raise IndexFileError(f"{path}: an 8-bit index without its float32 copy (an earlier format)")
            try:
                reader = faiss.PyCallbackIOReader(read, 1 << 22)
                index._index = faiss.read_index(reader)
                if index.kind == SQ8:
                    index._exact = faiss.read_index(reader)
                readable = True
            except RuntimeError:  # damaged contents: the checksum (of the whole payload) says so first
                readable = False
            except OSError as exc:
                raise IndexFileError(f"{path}: unreadable ({exc.strerror or exc})") from None
            while read(1 << 22):  # the rest of the file, if FAISS stopped early, is part of the checksum
                pass
        if digest.hexdigest() != header.get("payload_sha256"):
            raise IndexFileError(f"{path}: checksum mismatch (corrupt or truncated)")
        if not readable:
            raise IndexFileError(f"{path}: unreadable index payload")
        expected_type = faiss.IndexIVF if index.kind == IVF else faiss.IndexIDMap2
        if not isinstance(index._index, expected_type) or index._index.ntotal != header.get("count"):
            raise IndexFileError(f"{path}: unexpected index contents")
        if index.kind != IVF:
            inner = faiss.downcast_index(index._index.index)
            wanted = faiss.IndexFlatIP if index.kind == FLAT else faiss.IndexScalarQuantizer
            if not isinstance(inner, wanted) or (index.kind == SQ8 and not index.error_bound > 0):
                raise IndexFileError(f"{path}: unexpected index contents")
        if index._exact is not None and not (
            isinstance(index._exact, faiss.IndexIDMap2)
            and isinstance(faiss.downcast_index(index._exact.index), faiss.IndexFlatIP)
            and index._exact.ntotal == index._index.ntotal
        ):
            raise IndexFileError(f"{path}: unexpected index contents")
        return index


def _selector(allowed_ids: np.ndarray):
    """A FAISS selector of the allowed ids: a bitmap (one bit per id up to the largest, checked in
    constant time) unless the ids are few and large, where a hashed batch is smaller."""
    top = int(allowed_ids.max()) + 1
    if allowed_ids.min() < 0 or top > 64 * len(allowed_ids) + 4096:
        return faiss.IDSelectorBatch(allowed_ids)
    mask = np.zeros(top, dtype=bool)
    mask[allowed_ids] = True
    bits = np.packbits(mask, bitorder="little")  # FAISS reads bit (id & 7) of byte (id >> 3)
    selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # size in bytes
    selector.bits_owner = bits  # the selector does not own its bitmap: keep it alive with it
    return selector


def _ivf_params(nprobe: int, selector):
    params = faiss.SearchParametersIVF(nprobe=nprobe)
    if selector is not None:
        params.sel = selector
    return params
