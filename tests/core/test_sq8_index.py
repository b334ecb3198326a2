"""The exhaustive 8-bit index below the IVF threshold: its candidates, re-scored from the float32
copy it holds beside its codes, give exactly the top K of a float32 scan (ids and scores), near-ties, filters and
removals included; a float32 index file of such a gallery is converted when it is opened."""

from __future__ import annotations

import json
import sqlite3

import faiss
import numpy as np
import pytest

from benchmarks.query_latency import populate
from core.index.service import IndexService
from core.index.vectors import FLAT, MAGIC, SQ8, IndexPolicy, VectorIndex
from core.search import exact_from_codes
from core.workspace import Workspace

DIM = 64
POLICY = IndexPolicy(quantise_from=100, min_rescore=40)


def near_tie_gallery(count: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered unit vectors, with crowds of near-ties around each query: photos whose exact scores
    differ by 1e-4 to 1e-6 (far less than the 8-bit error), exact duplicates, and one crowd of 600
    nearly equal scores, deeper than the first re-scoring depth."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, DIM)).astype(np.float32)
    vectors = centres[rng.integers(30, size=count)] + 0.7 * rng.standard_normal((count, DIM)).astype(np.float32)
    queries = rng.standard_normal((6, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    planted = []
    for q, query in enumerate(queries):
        crowd = 600 if q == 0 else 60
        # each a mix of the query and a random direction orthogonal to it, at cosines 0.5 + j * gap
        gap = (1e-6, 1e-5, 1e-4)[q % 3]
        others = rng.standard_normal((crowd, DIM)).astype(np.float32)
        others -= np.outer(others @ query, query)
        others /= np.linalg.norm(others, axis=1, keepdims=True)
        cosine = 0.5 + gap * np.arange(crowd, dtype=np.float64)[:, None]
        planted.append((cosine * query + np.sqrt(1 - cosine**2) * others).astype(np.float32))
    vectors = np.concatenate([vectors, *planted])
    vectors[-5:] = vectors[-10:-5]  # exact duplicates: equal scores, ordered by photo id
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = rng.permutation(np.arange(10, 10 + 3 * len(vectors), 3, dtype=np.int64))
    return ids, vectors, queries


def exact_float32(ids, vectors, queries, k, allowed=None):
    """The float32 flat scan's answer, equal scores ordered by photo id."""
    keep = np.ones(len(ids), bool) if allowed is None else np.isin(ids, allowed)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors[keep])
    scores, rows = flat.search(queries, int(keep.sum()))
    held = ids[keep][rows]
    order = np.lexsort((held, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(held, order, axis=1)


def assert_exact(got, want):
    """Same scores (up to float32 summation order) and the same ids; where two exact scores are
    closer than that rounding, the same set of ids across the tie."""
    (got_scores, got_ids), (want_scores, want_ids) = got, want
    assert got_ids.shape == want_ids.shape
    np.testing.assert_allclose(got_scores, want_scores, atol=2e-6)
    for q in range(len(got_ids)):
        if not np.array_equal(got_ids[q], want_ids[q]):
            differ = np.flatnonzero(got_ids[q] != want_ids[q])
            lo, hi = differ.min(), differ.max() + 1
            assert want_scores[q, lo] - want_scores[q, hi - 1] < 2e-6, (q, lo, hi)
            assert set(got_ids[q, lo:hi]) == set(want_ids[q, lo:hi])


@pytest.fixture(scope="module")
def gallery():
    return near_tie_gallery()


def service_for(ids, vectors, tmp_path, policy=POLICY) -> tuple[IndexService, list[int]]:
    """An index service holding an SQ8 index of the gallery; the list records each search's depth."""
    service = IndexService(None, "key", DIM, tmp_path / "index.faiss", policy)  # the search reads no catalogue
    service._swap(VectorIndex.build(DIM, "key", ids, vectors, policy))
    assert service.kind == SQ8
    depths = []
    search_codes = service.search_codes

    def counted(queries, k, allowed):
        depths.append(k)
        return search_codes(queries, k, allowed)

    service.search_codes = counted
    return service, depths


@pytest.mark.parametrize("k", [1, 10, 50])
def test_sq8_search_gives_the_exact_top_k_with_near_ties(gallery, tmp_path, k):
    ids, vectors, queries = gallery
    service, depths = service_for(ids, vectors, tmp_path)
    got = exact_from_codes(service, queries, k, None)
    assert_exact(got, exact_float32(ids, vectors, queries, k))
    # the crowd of 600 near-equal scores is deeper than the first depth: that query was widened
    assert depths[0] == POLICY.rescore_depth(k) and len(depths) >= 2


def test_the_error_bound_holds_for_every_code(gallery):
    ids, vectors, queries = gallery
    index = VectorIndex.build(DIM, "key", ids, vectors, POLICY)
    decoded = index.reconstruct_many(ids)
    assert 0 < np.abs((vectors - decoded) @ queries.T).max() <= index.error_bound
    assert index.error_bound == index.trained_error


@pytest.mark.parametrize("allowed_count,k", [(1, 5), (12, 20), (30, 10), (2000, 50)])
def test_filtered_sq8_search_returns_the_exact_top_k_of_the_allowed_photos(gallery, tmp_path, allowed_count, k):
    ids, vectors, queries = gallery
    service, _ = service_for(ids, vectors, tmp_path)
    allowed = np.random.default_rng(allowed_count).choice(ids, allowed_count, replace=False)
    scores, found = exact_from_codes(service, queries, k, allowed)
    for q in range(len(queries)):
        got = found[q][found[q] >= 0]
        assert len(got) == min(k, allowed_count) and set(got) <= set(allowed)
    want_scores, want_ids = exact_float32(ids, vectors, queries, k, allowed)
    width = want_ids.shape[1]
    assert_exact((scores[:, :width], found[:, :width]), (want_scores, want_ids))


def test_removed_photos_never_come_back_and_the_rest_stay_exact(gallery, tmp_path):
    ids, vectors, queries = gallery
    service, _ = service_for(ids, vectors, tmp_path)
    _, top = exact_float32(ids, vectors, queries, 20)
    gone = np.unique(np.concatenate([top[:, :5].ravel(), ids[:300]]))
    service.remove(gone)
    keep = ~np.isin(ids, gone)
    got = exact_from_codes(service, queries, 20, None)
    assert not np.isin(got[1], gone).any()
    assert_exact(got, exact_float32(ids[keep], vectors[keep], queries, 20))


def test_a_photo_outside_the_trained_ranges_raises_the_bound_and_asks_for_retraining(gallery, tmp_path):
    ids, vectors, queries = gallery
    service, _ = service_for(ids, vectors, tmp_path)
    outlier = np.zeros((1, DIM), np.float32)
    outlier[0, 3] = 1.0  # far outside every trained range of value 3: clamped when encoded
    bound = service.index.error_bound
    service.add(np.asarray([1]), outlier)
    assert service.index.error_bound > POLICY.error_growth * bound and POLICY.outgrown(service.index)
    # still exact meanwhile: the larger bound makes the search re-score deeper
    query = np.concatenate([outlier, queries[1:2]])
    all_ids, all_vectors = np.concatenate([ids, [1]]), np.concatenate([vectors, outlier])
    got = exact_from_codes(service, query, 10, None)
    assert got[1][0, 0] == 1
    assert_exact(got, exact_float32(all_ids, all_vectors, query, 10))


def test_sq8_index_survives_save_and_load_with_its_bound(gallery, tmp_path):
    ids, vectors, _ = gallery
    index = VectorIndex.build(DIM, "key", ids, vectors, POLICY)
    index.save(tmp_path / "index.faiss")
    loaded = VectorIndex.load(tmp_path / "index.faiss", DIM, "key")
    assert (loaded.kind, loaded.error_bound, len(loaded)) == (SQ8, index.error_bound, len(ids))
    assert np.array_equal(np.sort(loaded.ids()), np.sort(ids))
    # the float32 copy comes back bit for bit, removals included
    index.remove(ids[:7])
    index.save(tmp_path / "index.faiss")
    loaded = VectorIndex.load(tmp_path / "index.faiss", DIM, "key")
    assert np.array_equal(loaded.exact_vectors(ids[7:]), vectors[7:])
    with pytest.raises(KeyError):
        loaded.exact_vectors(ids[:1])


def test_an_8_bit_index_file_without_its_float32_copy_is_rebuilt_when_opened(tmp_path, inference_model):
    """Files of the earlier format held the codes alone (the search then read SQLite)."""
    data = tmp_path / "data"
    policy = IndexPolicy(quantise_from=100)
    workspace = Workspace(data, model=inference_model, index_policy=policy)
    _, vectors = populate(workspace, 300, np.random.default_rng(1))
    workspace.indexes.wait_for_rebuild()  # past quantise_from: turned 8-bit in the background
    assert workspace.index.kind == SQ8
    path = workspace.indexes.path
    before = workspace.search_embeddings(vectors[:3], top_k=10)
    workspace.close()
    earlier = VectorIndex.load(path, inference_model.embedding_dim, header(path)["model_sha256"])
    earlier._exact = None  # what an earlier version wrote: the codes alone
    earlier.save(path)
    assert header(path)["kind"] == SQ8 and header(path)["exact_copy"] is False

    reopened = Workspace(data, model=inference_model, index_policy=policy)
    try:
        assert reopened.index.kind == SQ8 and header(path)["exact_copy"] is True
        after = reopened.search_embeddings(vectors[:3], top_k=10)
        assert [[(c.photo_id, c.score) for c in r] for r in after] == [
            [(c.photo_id, c.score) for c in r] for r in before
        ]
    finally:
        reopened.close()


def test_verify_reports_a_float32_copy_that_differs_from_the_catalogue(tmp_path, inference_model):
    """The scores shown come from the copy: one stored embedding changed by far less than the 8-bit
    error (edited in the catalogue file with plain sqlite3) is still reported."""
    data = tmp_path / "data"
    workspace = Workspace(data, model=inference_model, index_policy=IndexPolicy(quantise_from=100))
    populate(workspace, 300, np.random.default_rng(2))
    workspace.indexes.wait_for_rebuild()
    assert workspace.index.kind == SQ8 and workspace.verify().ok
    catalogue_file = workspace.catalogue.path
    workspace.close()
    with sqlite3.connect(catalogue_file) as connection:
        photo_id, blob = connection.execute("SELECT photo_id, vector FROM embeddings LIMIT 1").fetchone()
        vector = np.frombuffer(blob, np.float32).copy()
        vector[:2] = vector[[1, 0]]  # two values swapped: still a unit vector
        connection.execute("UPDATE embeddings SET vector = ? WHERE photo_id = ?", (vector.tobytes(), photo_id))
    reopened = Workspace(data, model=inference_model, index_policy=IndexPolicy(quantise_from=100))
    try:
        report = reopened.verify()
        assert not report.ok and any("float32 copy" in p for p in report.problems), report.problems
    finally:
        reopened.close()


def header(path) -> dict:
    with open(path, "rb") as handle:
        assert handle.read(len(MAGIC)) == MAGIC
        return json.loads(handle.readline())


def test_a_float32_index_file_is_converted_to_8_bit_codes_when_opened(tmp_path, inference_model):
    data = tmp_path / "data"
    workspace = Workspace(data, model=inference_model, index_policy=IndexPolicy(quantise_from=10_000))
    _, vectors = populate(workspace, 300, np.random.default_rng(0))  # as the latency benchmark fills one
    path = workspace.indexes.path
    assert workspace.index.kind == FLAT and header(path)["kind"] == FLAT
    float32_size = path.stat().st_size
    queries = vectors[:4] + 0.05
    before = workspace.search_embeddings(queries, top_k=10)
    workspace.close()

    reopened = Workspace(data, model=inference_model, index_policy=IndexPolicy(quantise_from=100))
    try:
        assert reopened.index.kind == SQ8 and len(reopened.index) == 300
        written = header(path)
        assert written["kind"] == SQ8 and written["count"] == 300 and written["error_bound"] > 0
        assert written["exact_copy"] is True
        # the 8-bit codes and the float32 copy the candidates are re-scored from
        assert float32_size < path.stat().st_size < 1.4 * float32_size
        assert not list(path.parent.glob("*.tmp*"))  # written whole through a temporary file
        after = reopened.search_embeddings(queries, top_k=10)
        assert [[c.photo_id for c in r] for r in after] == [[c.photo_id for c in r] for r in before]
        for was, now in zip(before, after):
            assert [c.score for c in now] == pytest.approx([c.score for c in was], abs=1e-5)
        assert reopened.verify().ok, reopened.verify().problems
    finally:
        reopened.close()

    again = Workspace(data, model=inference_model, index_policy=IndexPolicy(quantise_from=100))
    try:  # loaded as it is now: no second conversion
        assert again.index.kind == SQ8 and header(path) == written
    finally:
        again.close()
