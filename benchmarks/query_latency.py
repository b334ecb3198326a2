"""Query latency on a synthetic gallery (default 100k photos), with and without attribute filters.

    python -m benchmarks.query_latency [--photos 100000] [--queries 200]

Measures ``Workspace.search_embeddings`` (filter selection, FAISS search, exact re-scoring,
candidate records from SQLite) with sketch embedding excluded; the sketch embedding time is reported
apart. Beside it, in the same run, the raw FAISS float32 flat scan of the same vectors (one thread,
as the product searches one sketch), the product's recall@K against it, and the index file's size
against a float32 flat file of the same photos.
Targets: median under 50 ms on a 2-core machine; unfiltered median at most 0.6 x the raw float32
scan below the IVF threshold (the 8-bit exhaustive index reads a quarter of the bytes)."""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from core.catalogue.catalogue import NewPhoto
from core.common.paths import default_model_dir
from core.index.vectors import IndexPolicy
from core.model.loading import load_model
from core.workspace import Workspace


def populate(workspace: Workspace, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` photos with unit vectors and, as a trained attribute head writes them, a predicted
    value for every attribute of the schema (gender alternates, hair is long for one in three).
    Returns their (photo ids, vectors)."""
    dim = workspace.model.embedding_dim
    specs = workspace.schema.attributes
    all_ids, all_vectors = [], []
    for start in range(0, count, 5000):
        n = min(5000, count - start)
        vectors = rng.standard_normal((n, dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        photos = []
        for i in range(start, start + n):
            predicted = {a.name: (a.values[int(rng.integers(len(a.values)))], 0.9) for a in specs}
            predicted["gender"] = (("male", "female")[i % 2], 0.9)
            predicted["hair"] = (("short", "long")[i % 3 == 0], 0.8)
            photos.append(
                NewPhoto(
                    path=f"/synthetic/{i}.jpg",
                    sha256=f"{i:064x}",
                    size_bytes=1,
                    mtime_ns=1,
                    width=128,
                    height=256,
                    source_folder="/synthetic",
                    thumbnail=b"",
                    embedding=vectors[i - start],
                    attributes=predicted,
                )
            )
        ids = workspace.catalogue.add_photos(photos, workspace.model.embedding_key)
        workspace.indexes.add(np.asarray(ids, np.int64), vectors)
        all_ids.append(np.asarray(ids, np.int64))
        all_vectors.append(vectors)
    workspace.indexes.save()
    return np.concatenate(all_ids), np.concatenate(all_vectors)


def raw_flat(vectors: np.ndarray, queries: np.ndarray, top: int) -> tuple[list[float], np.ndarray]:
    """The bare FAISS float32 flat scan of the same vectors, one query at a time on one thread:
    (timings in ms, the row numbers of its top ``top`` per query)."""
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        flat.search(queries[:1], top)
        timings, rows = [], []
        for q in queries:
            start = time.perf_counter()
            _, found = flat.search(q[None], top)
            timings.append((time.perf_counter() - start) * 1000)
            rows.append(found[0])
    finally:
        faiss.omp_set_num_threads(threads)
    return timings, np.stack(rows)


def float32_file_size(dim: int, count: int) -> int:
    """Bytes of a float32 flat index file (FAISS payload) of ``count`` vectors: what the flat kind wrote."""
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    flat.add_with_ids(np.zeros((count, dim), np.float32), np.arange(count, dtype=np.int64))
    return len(faiss.serialize_index(flat))


def time_queries(workspace: Workspace, queries: np.ndarray, **kwargs) -> list[float]:
    workspace.search_embeddings(queries[:1], **kwargs)  # warm caches (attribute table)
    timings = []
    for q in queries:
        start = time.perf_counter()
        workspace.search_embeddings(q[None], **kwargs)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--top", type=int, default=50)
    parser.add_argument(
        "--quantise-from",
        type=int,
        default=IndexPolicy().quantise_from,
        help="photos from which the exhaustive index reads 8-bit codes (a huge value: float32 throughout)",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    model = load_model(default_model_dir(), "cpu")  # the runtime the app and the command line use

    with tempfile.TemporaryDirectory() as tmp:
        policy = dataclasses.replace(IndexPolicy(), quantise_from=args.quantise_from)
        workspace = Workspace(Path(tmp) / "data", model=model, index_policy=policy)
        start = time.perf_counter()
        photo_ids, vectors = populate(workspace, args.photos, rng)
        workspace.indexes.wait_for_rebuild()  # a flat index past its size turns 8-bit (or IVF) in the background
        build = time.perf_counter() - start
        kind = workspace.index.kind
        file_mb = workspace.indexes.path.stat().st_size / 1e6
        float32_mb = float32_file_size(model.embedding_dim, args.photos) / 1e6
        queries = rng.standard_normal((args.queries, model.embedding_dim), dtype=np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)

        plain = time_queries(workspace, queries, top_k=args.top)
        raw, raw_rows = raw_flat(vectors, queries, args.top)
        del vectors
        found = workspace.search_embeddings(queries, top_k=args.top)
        exact = photo_ids[raw_rows]
        recall = np.mean([len(np.intersect1d([c.photo_id for c in r], e)) / len(e) for r, e in zip(found, exact)])
        one = time_queries(workspace, queries, top_k=args.top, where={"gender": "female"})
        two = time_queries(workspace, queries, top_k=args.top, where={"gender": "female", "hair": "long"})
        workspace.attribute_tables.forget()  # the first filter then reads every attribute
        start = time.perf_counter()
        workspace.attribute_table()
        table_ms = (time.perf_counter() - start) * 1000
        sketch = rng.integers(0, 255, (768, 384, 3), dtype=np.uint8)
        workspace.embed_sketches([sketch])
        embed = []
        for _ in range(10):
            start = time.perf_counter()
            workspace.embed_sketches([sketch])
            embed.append((time.perf_counter() - start) * 1000)
        workspace.close()

    def row(name: str, timings: list[float]) -> str:
        p95 = float(np.percentile(timings, 95))
        return f"{name:34s} median {statistics.median(timings):7.2f} ms   p95 {p95:7.2f} ms"

    print(f"gallery            {args.photos} photos x {model.embedding_dim}-d, top {args.top}, {args.queries} queries")
    print(f"catalogue+index build {build:.1f} s; attribute table load {table_ms:.0f} ms (first filter after opening)")
    print(f"index kind {kind}, file {file_mb:.1f} MB (a float32 flat file of the same photos: {float32_mb:.1f} MB)")
    print(row("search, no filter", plain))
    print(row("raw FAISS float32 flat, same run", raw))
    print(row("search, gender=female (50%)", one))
    print(row("search, gender=female, hair=long", two))
    print(row("sketch embedding (apart)", embed))
    print(
        f"ratio median no filter / raw float32 flat {statistics.median(plain) / statistics.median(raw):.2f} "
        f"(target <= 0.6 below the IVF threshold); recall@{args.top} against it {recall:.3f}"
    )
    print(
        f"ratio median/50 ms: no filter {statistics.median(plain) / 50:.2f}, "
        f"one filter {statistics.median(one) / 50:.2f}, two filters {statistics.median(two) / 50:.2f} (target < 1)"
    )


if __name__ == "__main__":
    main()
