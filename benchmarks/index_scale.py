"""Index at scale: recall@100 against the exact search, single-query latency, build time, memory
and disk of the flat index and of IVF indexes with scalar-quantised codes, on vectors drawn to
resemble the bundled model's embeddings.

    python -m benchmarks.index_scale --size 100000 [--quantisers SQ8 SQ6 SQ4] [--queries 200]

The vectors: the bundled model embeds real photos (PKU-Sketch and CUHK03 under ../shared/data) and
real PKU sketches; each synthetic photo is one of those photo embeddings plus Gaussian noise shaped
by their covariance (so the cloud has their spread and principal directions, not isotropic noise),
scaled to unit length. The queries are the sketch embeddings perturbed the same way. Without the
data folder the base vectors are random unit vectors (said in the output).

Figures are for one process on this machine, with ``VectorIndex.search`` exactly as the app calls
it; a shared machine makes latencies upper bounds.

``--stream`` (for sizes whose float vectors do not fit in memory, e.g. ``--size 10000000``): the
vectors are drawn chunk by chunk (each chunk from its own seed), never held at once; the index the
default policy builds for the size is trained on the first ``max_training_points`` of them and
filled chunk by chunk, while the exact top 100 of each query (unfiltered and under the 1% filter)
is kept from the same chunks; then the index file is saved and opened again (``VectorIndex.save``
and ``load``, checksum included). No flat index is built."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from core.index.vectors import FLAT, IndexPolicy, VectorIndex

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
K = 100


def real_embeddings(cache: Path, photos: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(photo embeddings, sketch embeddings, where they come from), cached between runs."""
    if cache.exists():
        saved = np.load(cache)
        return saved["photos"], saved["sketches"], str(saved["source"])
    from core.common.imaging import load_rgb
    from core.common.paths import default_model_dir
    from core.model.loading import load_model
    from core.model.network import Modality

    model = load_model(default_model_dir(), "cpu")
    photo_paths = sorted((DATA / "pku-sketch" / "photo").glob("*.jpg"))
    photo_paths += sorted((DATA / "cuhk-reid" / "cuhk03").glob("*.jpg"))[: max(0, photos - len(photo_paths))]
    sketch_paths = sorted((DATA / "pku-sketch" / "sketch").glob("*.jpg"))
    if not photo_paths or not sketch_paths:
        rng = np.random.default_rng(1)
        base = rng.standard_normal((photos, model.embedding_dim), dtype=np.float32)
        queries = rng.standard_normal((200, model.embedding_dim), dtype=np.float32)
        unit = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in (base, queries)]
        return unit[0], unit[1], "random unit vectors (no research data found)"

    def embed(paths, modality):
        out = []
        for start in range(0, len(paths), 64):
            out.append(model.embed_images([load_rgb(p) for p in paths[start : start + 64]], modality).embeddings)
        return np.concatenate(out)

    result = (embed(photo_paths, Modality.PHOTO), embed(sketch_paths, Modality.SKETCH))
    source = f"bundled model on {len(photo_paths)} PKU/CUHK03 photos and {len(sketch_paths)} PKU sketches"
    np.savez(cache, photos=result[0], sketches=result[1], source=source)
    return result[0], result[1], source


class Perturber:
    """Base embedding + noise with the base embeddings' covariance (times ``scale``), unit length."""

    def __init__(self, base: np.ndarray, scale: float):
        centred = base - base.mean(axis=0)
        # noise = z @ L with L L^T = covariance: the spread of the real embeddings in every direction
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        self.shape = (singular[:, None] * vt / np.sqrt(len(base))).astype(np.float32) * scale
        self.base = base.astype(np.float32)

    def draw(self, rng: np.random.Generator, count: int, base: np.ndarray | None = None) -> np.ndarray:
        base = self.base if base is None else base
        rows = base[rng.integers(len(base), size=count)]
        noise = rng.standard_normal((count, self.shape.shape[0]), dtype=np.float32) @ self.shape
        out = rows + noise
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f[f >= 0], t)) / len(t) for f, t in zip(found, truth)]))


def latencies(index: VectorIndex, queries: np.ndarray, allowed: np.ndarray | None = None) -> list[float]:
    index.search(queries[:1], K, allowed)
    timings = []
    for q in queries:
        start = time.perf_counter()
        index.search(q[None], K, allowed)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def report(name: str, timings: list[float]) -> str:
    return f"median {statistics.median(timings):7.2f} ms  p95 {float(np.percentile(timings, 95)):7.2f} ms ({name})"


CHUNK = 100_000


class ExactTop:
    """The exact top ``K`` ids of each query over chunks seen one at a time (ids ascending within
    equal scores do not matter here: recall compares sets)."""

    def __init__(self, queries: np.ndarray):
        self.queries = queries
        self.scores = np.full((len(queries), K), -np.inf, np.float32)
        self.ids = np.full((len(queries), K), -1, np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not len(ids):
            return
        scores = np.concatenate([self.scores, self.queries @ vectors.T], axis=1)
        every = np.concatenate([self.ids, np.broadcast_to(ids, (len(self.queries), len(ids)))], axis=1)
        best = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        self.scores = np.take_along_axis(scores, best, axis=1)
        self.ids = np.take_along_axis(every, best, axis=1)


def streamed(args, perturb: Perturber, sketches: np.ndarray, source: str) -> None:
    """The default policy's index of ``args.size`` vectors drawn chunk by chunk (see the module's
    docstring): build time, memory, disk, time to open, recall@100 and latency, unfiltered and
    under a filter keeping one photo in 100."""
    policy = IndexPolicy()
    chunks = range((args.size + CHUNK - 1) // CHUNK)

    def chunk(number: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, vectors, allowed by the 1% filter) of chunk ``number``, the same at every call."""
        rng = np.random.default_rng([0, number])
        begin, end = number * CHUNK, min((number + 1) * CHUNK, args.size)
        ids = np.arange(begin + 1, end + 1, dtype=np.int64)
        return ids, perturb.draw(rng, end - begin), rng.random(end - begin) < 0.01

    queries = perturb.draw(np.random.default_rng(1), args.queries, base=sketches)
    print(f"vectors     {args.size} x {perturb.base.shape[1]} from {source}, noise {args.noise} x their spread,")
    print(f"            drawn {CHUNK} at a time (never all in memory); {args.queries} queries from perturbed sketches")
    print(f"threads     {args.threads} (FAISS); the machine was shared with other work: times are upper bounds")
    truth, allowed_truth = ExactTop(queries), ExactTop(queries)
    allowed_ids = []
    before = rss_mb()
    start = time.perf_counter()
    sample_ids, sample, sample_allowed = chunk(0)
    training = sample[: policy.max_training_points]
    kind = policy.kind_for(args.size)
    trained = VectorIndex.trained_ivf if kind == "ivf" else VectorIndex.trained_sq8
    index = trained(perturb.base.shape[1], "bench", training, args.size, policy)
    trained_s = time.perf_counter() - start
    drawing = 0.0
    for number in chunks:
        if number:
            begin = time.perf_counter()
            sample_ids, sample, sample_allowed = chunk(number)
            drawing += time.perf_counter() - begin
        index.add(sample_ids, sample)
        begin = time.perf_counter()
        truth.add(sample_ids, sample)
        allowed_truth.add(sample_ids[sample_allowed], sample[sample_allowed])
        allowed_ids.append(sample_ids[sample_allowed])
        drawing += time.perf_counter() - begin  # the exact search is the benchmark's, not the build's
        if number % 10 == 9:
            print(f"            {(number + 1) * CHUNK} added, {time.perf_counter() - start:.0f} s", flush=True)
    build = time.perf_counter() - start - drawing
    memory = rss_mb() - before
    del sample
    allowed = np.concatenate(allowed_ids)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.faiss"
        begin = time.perf_counter()
        index.save(path)
        saved = time.perf_counter() - begin
        disk = path.stat().st_size / 2**20
        nlist, nprobe = index.nlist, index.nprobe
        del index
        begin = time.perf_counter()
        index = VectorIndex.load(path, perturb.base.shape[1], "bench")
        opened = time.perf_counter() - begin
    print(
        f"\n{kind} (nlist {nlist}, nprobe {nprobe}, {policy.quantiser})  build {build:7.1f} s "
        f"(training {trained_s:.1f} s on {len(training)})  memory +{memory:7.0f} MB  disk {disk:7.0f} MB"
    )
    print(f"  save {saved:.1f} s; open again (read, checksum, FAISS) {opened:.1f} s, page cache warm")
    found = index.search(queries, K)[1]
    timings = latencies(index, queries)
    print(f"  recall@{K} {recall_at(found, truth.ids):.3f}  " + report(f"{len(timings)} single queries", timings))
    found = index.search(queries, K, allowed)[1]
    full = float(np.mean((found >= 0).sum(axis=1) == K))
    timings = latencies(index, queries, allowed)
    print(
        f"  filter 1% ({len(allowed)} photos): {full:.0%} of queries got {K}, "
        f"recall@{K} {recall_at(found, allowed_truth.ids):.3f}  " + report("single queries", timings)
    )
    print(f"\npeak memory of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--quantisers", nargs="*", default=["SQ8", "SQ6", "SQ4"])
    parser.add_argument("--probe-shares", nargs="*", type=float, default=[])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--flat-queries", type=int, default=50, help="latency samples of the flat scan")
    parser.add_argument("--noise", type=float, default=1.0, help="noise scale, times the real spread")
    parser.add_argument("--base-photos", type=int, default=2000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "sketchsearch-scale-base.npz")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--stream", action="store_true", help="draw the vectors chunk by chunk (10M and more)")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    torch_threads = args.threads
    try:
        import torch

        torch.set_num_threads(torch_threads)
    except ImportError:
        pass

    photos, sketches, source = real_embeddings(args.cache, args.base_photos)
    dim = photos.shape[1]
    perturb = Perturber(photos, args.noise)
    if args.stream:
        streamed(args, perturb, sketches, source)
        return
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    vectors = np.empty((args.size, dim), np.float32)
    for begin in range(0, args.size, 100_000):
        end = min(begin + 100_000, args.size)
        vectors[begin:end] = perturb.draw(rng, end - begin)
    ids = np.arange(1, args.size + 1, dtype=np.int64)
    queries = perturb.draw(rng, args.queries, base=sketches)
    print(f"vectors     {args.size} x {dim} from {source}, noise {args.noise} x their spread")
    print(f"            drawn in {time.perf_counter() - start:.1f} s; {args.queries} queries from perturbed sketches")
    print(f"threads     {args.threads} (FAISS); the machine was shared with other work: latencies are upper bounds")

    before = rss_mb()
    start = time.perf_counter()
    flat = VectorIndex.build(dim, "bench", ids, vectors, IndexPolicy(approximate_from=args.size + 1))
    flat_build = time.perf_counter() - start
    flat_mem = rss_mb() - before
    truth = flat.search(queries, K)[1]
    flat_times = latencies(flat, queries[: args.flat_queries])
    with tempfile.TemporaryDirectory() as tmp:
        flat.save(Path(tmp) / "flat.faiss")
        flat_disk = (Path(tmp) / "flat.faiss").stat().st_size / 2**20
    print(
        f"\nflat        build {flat_build:6.1f} s  memory +{flat_mem:7.0f} MB  disk {flat_disk:7.0f} MB  recall 1.000"
    )
    print(f"            {report(f'{len(flat_times)} single queries', flat_times)}")
    # a filter keeping one photo in 100: the probe must widen for the IVF index to find K
    allowed = ids[rng.random(args.size) < 0.01]
    allowed_truth = flat.search(queries, K, allowed)[1]
    del flat

    for quantiser in args.quantisers:
        policy = IndexPolicy(approximate_from=1, quantiser=quantiser)
        before = rss_mb()
        start = time.perf_counter()
        index = VectorIndex.build(dim, "bench", ids, vectors, policy)
        build = time.perf_counter() - start
        memory = rss_mb() - before
        with tempfile.TemporaryDirectory() as tmp:
            index.save(Path(tmp) / "ivf.faiss")
            disk = (Path(tmp) / "ivf.faiss").stat().st_size / 2**20
        print(
            f"\nIVF{index.nlist},{quantiser}  build {build:6.1f} s  memory +{memory:7.0f} MB  disk {disk:7.0f} MB"
            f"  (trained on {min(args.size, policy.max_training_points)})"
        )
        default_nprobe = index.nprobe
        for share in args.probe_shares:
            index.nprobe = max(1, round(index.nlist * share))
            found = index.search(queries, K)[1]
            timings = latencies(index, queries)
            print(
                f"  nprobe {index.nprobe:4d} (1/{round(1 / share)})  recall@{K} {recall_at(found, truth):.3f}  "
                + report(f"{len(timings)} single queries", timings)
            )
        index.nprobe = default_nprobe
        found = index.search(queries, K)[1]
        timings = latencies(index, queries)
        print(
            f"  nprobe {index.nprobe:4d} (the default policy)  recall@{K} {recall_at(found, truth):.3f}  "
            + report(f"{len(timings)} single queries", timings)
        )
        found = index.search(queries, K, allowed)[1]
        full = float(np.mean((found >= 0).sum(axis=1) == K))
        timings = latencies(index, queries, allowed)
        print(
            f"  filter 1% nprobe {index.nprobe} widened as needed: {full:.0%} of queries got {K}, "
            f"recall@{K} {recall_at(found, allowed_truth):.3f}  " + report("single queries", timings)
        )
        del index
    print(f"\npeak memory of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MB")
    print(f"kinds compared: {FLAT} and IVF with {', '.join(args.quantisers)}")


if __name__ == "__main__":
    main()
