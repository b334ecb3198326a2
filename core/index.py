"""The vector index: FAISS inner product over unit vectors (= cosine similarity), keyed by photo id.

The file on disk is a cache of the embeddings stored in SQLite: it is written atomically, carries
the model's embedding key (a sha256 of its weights and settings) and a checksum, and is rebuilt
from the catalogue whenever it is missing, stale or corrupt."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import faiss
import numpy as np

from core.private_files import make_private_folder

MAGIC = b"SKETCHSEARCH-INDEX-1\n"
# Below this many queries FAISS scans the vectors once per query and parallelises over queries
# only, so extra OpenMP threads just spin; one thread is as fast, and much faster on a busy machine.
SMALL_BATCH = 20


class IndexFileError(Exception):
    """The index file cannot be used (missing, corrupt, or made for another model)."""


class VectorIndex:
    def __init__(self, dim: int, model_sha256: str):
        self.dim = dim
        self.model_sha256 = model_sha256
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    # -- contents ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._index.ntotal

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected {len(ids)} x {self.dim} vectors, got {vectors.shape}")
        if len(ids):
            self._index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids))) if len(ids) else 0

    def reconstruct(self, photo_id: int) -> np.ndarray:
        return self._index.reconstruct(int(photo_id))

    # -- search --------------------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) per query; with ``allowed_ids`` only those photos compete, so a
        filtered search still returns k results whenever k allowed photos exist. Missing slots
        have id -1."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, min(int(k), len(self) or 1))
        params = None
        if allowed_ids is not None:
            allowed_ids = np.ascontiguousarray(allowed_ids, dtype=np.int64)
            if len(allowed_ids) == 0:
                return (np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64))
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed_ids))
        threads = faiss.omp_get_max_threads()
        if len(queries) < SMALL_BATCH:
            faiss.omp_set_num_threads(1)
        try:
            return self._index.search(queries, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write atomically: a temporary file in the same folder, flushed to disk, then renamed over
        the old one, so a crash leaves either the old index or the new one, never half of one."""
        path = Path(path)
        make_private_folder(path.parent, warn=False)
        payload = faiss.serialize_index(self._index).tobytes()
        header = (
            json.dumps(
                {
                    "model_sha256": self.model_sha256,
                    "dim": self.dim,
                    "count": len(self),
                    "payload_sha256": hashlib.sha256(payload).hexdigest(),
                }
            ).encode()
            + b"\n"
        )
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(MAGIC + header)
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, dim: int, model_sha256: str) -> VectorIndex:
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise IndexFileError(f"{path}: no index file") from None
        except OSError as exc:
            raise IndexFileError(f"{path}: unreadable ({exc.strerror or exc})") from None
        if not data.startswith(MAGIC):
            raise IndexFileError(f"{path}: not a SketchSearch index")
        header_end = data.find(b"\n", len(MAGIC))
        try:
            header = json.loads(data[len(MAGIC) : header_end])
        except ValueError:
            raise IndexFileError(f"{path}: corrupt header") from None
        payload = data[header_end + 1 :]
        if header.get("model_sha256") != model_sha256 or header.get("dim") != dim:
            raise IndexFileError(f"{path}: made for another model")
        if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
            raise IndexFileError(f"{path}: checksum mismatch (corrupt or truncated)")
        index = cls(dim, model_sha256)
        index._index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        if not isinstance(index._index, faiss.IndexIDMap2) or index._index.ntotal != header["count"]:
            raise IndexFileError(f"{path}: unexpected index contents")
        return index
