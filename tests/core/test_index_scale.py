"""The adaptive index on real FAISS: the IVF path is forced with a low threshold on small galleries,
and compared with the exact answer computed here from the same vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.index.vectors import FLAT, IVF, IndexFileError, IndexPolicy, VectorIndex
from core.workspace import Workspace

DIM = 64


def clustered_vectors(count: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 40 centres, as embeddings of a gallery group around people and looks."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIM)).astype(np.float32)
    vectors = centres[rng.integers(40, size=count)] + 0.6 * rng.standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def exact_top(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int, allowed=None) -> np.ndarray:
    keep = np.ones(len(ids), bool) if allowed is None else np.isin(ids, allowed)
    scores = vectors[keep] @ query
    return ids[keep][np.argsort(-scores)[:k]]


@pytest.fixture(scope="module")
def gallery():
    vectors = clustered_vectors(3000)
    ids = np.arange(5, 3005, dtype=np.int64) * 3  # sparse ids, as after deletions
    return ids, vectors


def test_policy_is_flat_below_the_threshold_and_ivf_above(gallery):
    ids, vectors = gallery
    policy = IndexPolicy(approximate_from=1000)
    small = VectorIndex.build(DIM, "key", ids[:999], vectors[:999], policy)
    large = VectorIndex.build(DIM, "key", ids, vectors, policy)
    assert small.kind == FLAT and large.kind == IVF
    assert 1 < large.nlist < len(ids) and 1 <= large.nprobe <= large.nlist
    assert sorted(large.ids()) == sorted(ids) and len(large) == len(ids)
    assert not policy.outgrown(large) and policy.outgrown(small) is False
    assert IndexPolicy(approximate_from=500).outgrown(small)  # the flat one, once past the threshold


def test_ivf_search_finds_nearly_all_of_the_exact_top_k(gallery):
    ids, vectors = gallery
    index = VectorIndex.build(DIM, "key", ids, vectors, IndexPolicy(approximate_from=1, probe_share=1 / 4, min_probe=1))
    queries = clustered_vectors(20, seed=1)
    scores, found = index.search(queries, 20)
    overlap = [len(np.intersect1d(found[q], exact_top(vectors, ids, queries[q], 20))) / 20 for q in range(20)]
    assert np.mean(overlap) >= 0.9
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first


@pytest.mark.parametrize("allowed_count,k", [(30, 10), (12, 20), (1, 5)])
def test_filtered_ivf_search_returns_k_whenever_k_allowed_photos_exist(gallery, allowed_count, k):
    """A filter keeping 1% or less of the gallery: the few scanned clusters hold almost none of its
    photos, so the probe must widen; the answer is the exact top K among the allowed photos."""
    ids, vectors = gallery
    index = VectorIndex.build(
        DIM, "key", ids, vectors, IndexPolicy(approximate_from=1, probe_share=1 / 64, min_probe=1)
    )
    assert index.nprobe < index.nlist
    allowed = np.random.default_rng(allowed_count).choice(ids, allowed_count, replace=False)
    queries = clustered_vectors(5, seed=2)
    _, found = index.search(queries, k, allowed)
    for q in range(len(queries)):
        got = found[q][found[q] >= 0]
        assert len(got) == min(k, allowed_count)
        assert set(got) <= set(allowed)
        assert set(got) == set(exact_top(vectors, ids, queries[q], k, allowed))


def test_ivf_index_survives_save_and_load_and_refuses_damage(gallery, tmp_path):
    ids, vectors = gallery
    index = VectorIndex.build(DIM, "key", ids, vectors, IndexPolicy(approximate_from=1))
    index.remove(ids[:100])
    path = tmp_path / "index.faiss"
    index.save(path)
    loaded = VectorIndex.load(path, DIM, "key")
    assert (loaded.kind, loaded.nprobe, loaded.trained_on, len(loaded)) == (IVF, index.nprobe, len(ids), len(ids) - 100)
    assert sorted(loaded.ids()) == sorted(ids[100:])
    query = vectors[500]
    assert np.array_equal(loaded.search(query, 10)[1], index.search(query, 10)[1])
    # a decoded code is close to, not equal to, the vector it encodes
    assert float(loaded.reconstruct(ids[500]) @ vectors[500]) > 0.98
    with pytest.raises(IndexFileError, match="another model"):
        VectorIndex.load(path, DIM, "other key")
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(IndexFileError, match="checksum"):
        VectorIndex.load(path, DIM, "key")


@pytest.fixture
def small_threshold_workspace(tmp_path, inference_model):
    opened = []

    def _open(threshold: int = 16):
        workspace = Workspace(
            tmp_path / "data", model=inference_model, index_policy=IndexPolicy(approximate_from=threshold)
        )
        opened.append(workspace)
        return workspace

    yield _open
    for workspace in opened:
        workspace.close()


def test_workspace_turns_the_index_approximate_in_the_background_once_the_gallery_grows(
    small_threshold_workspace, make_photos
):
    workspace = small_threshold_workspace(threshold=16)
    first = make_photos(10)
    workspace.import_paths([first[0].parent])
    assert workspace.indexes.wait_for_rebuild(60) and workspace.index.kind == FLAT
    more = make_photos(14, folder=first[0].parent.parent / "more", start=10)
    workspace.import_paths([more[0].parent])
    assert workspace.indexes.wait_for_rebuild(120)
    assert workspace.index.kind == IVF and len(workspace.index) == 24
    assert workspace.verify().ok, workspace.verify().problems
    # the IVF index picks the candidates; each score shown is the exact cosine with the stored
    # embedding, best first, so the order agrees with the exact ranking over the catalogue
    query = workspace.embed_sketches([more[3]])[0]
    (result,) = workspace.search([more[3]], top_k=5)
    all_ids, vectors = workspace.catalogue.embeddings(workspace.model.embedding_key, workspace.model.embedding_dim)
    exact = vectors @ query
    assert result.candidates[0].photo_id == all_ids[np.argmax(exact)]
    for candidate in result.candidates:
        assert candidate.score == pytest.approx(float(exact[all_ids == candidate.photo_id][0]), abs=1e-5)
    assert [c.score for c in result.candidates] == sorted((c.score for c in result.candidates), reverse=True)

    # a selective filter still returns K: 3 photos marked female, top 3 asked
    ids = {p: s.photo_id for p, s in workspace.catalogue.file_states().items()}
    females = [ids[str(p)] for p in (first[2], more[5], more[9])]
    for photo_id in ids.values():
        workspace.gallery.set_attribute(photo_id, "gender", "female" if photo_id in females else "male")
    (filtered,) = workspace.search([first[0]], top_k=3, where={"gender": "female"})
    assert sorted(c.photo_id for c in filtered.candidates) == sorted(females)
    workspace.close()

    reopened = small_threshold_workspace(threshold=16)
    assert reopened.index.kind == IVF and len(reopened.index) == 24  # loaded from the file, not rebuilt
    reopened.gallery.remove_folder(str(more[0].parent))
    assert len(reopened.index) == 10 and reopened.verify().ok


def test_damaged_ivf_index_is_reported_and_rebuilt_from_the_catalogue(small_threshold_workspace, make_photos):
    workspace = small_threshold_workspace(threshold=8)
    photos = make_photos(12)
    workspace.import_paths([photos[0].parent])
    assert workspace.indexes.wait_for_rebuild(120) and workspace.index.kind == IVF
    data = workspace.indexes.path.read_bytes()
    workspace.indexes.path.write_bytes(data[: len(data) // 2])
    report = workspace.verify()
    assert not report.ok and any("checksum" in problem for problem in report.problems)
    workspace.close()
    reopened = small_threshold_workspace(threshold=8)
    assert reopened.index.kind == IVF and len(reopened.index) == 12
    assert reopened.verify().ok


def test_verify_finds_an_ivf_index_whose_vectors_are_not_the_stored_embeddings(small_threshold_workspace, make_photos):
    workspace = small_threshold_workspace(threshold=8)
    photos = make_photos(12)
    workspace.import_paths([photos[0].parent])
    assert workspace.indexes.wait_for_rebuild(120) and workspace.verify().ok
    ids, vectors = workspace.catalogue.embeddings(workspace.model.embedding_key, workspace.model.embedding_dim)
    swapped = VectorIndex.build(
        vectors.shape[1], workspace.model.embedding_key, ids, vectors[::-1], workspace.indexes.policy
    )
    assert swapped.kind == IVF
    swapped.save(workspace.indexes.path)  # the same photos, each with another photo's vector
    report = workspace.verify()
    assert not report.ok and any("differ from the embeddings" in problem for problem in report.problems)


@pytest.mark.parametrize("threshold", [8, 1000])
def test_rebuild_reads_each_stored_embedding_once_and_never_indexes_a_damaged_one(
    small_threshold_workspace, make_photos, monkeypatch, threshold
):
    """IVF (threshold 8) and flat (1000): the damage check runs on the chunks the build reads, a
    damaged embedding is embedded again from its file, or left out and reported when the file is gone."""
    from tests.core.test_cli_reliability import damage_embedding

    workspace = small_threshold_workspace(threshold=threshold)
    photos = make_photos(12)
    workspace.import_paths([photos[0].parent])
    assert workspace.indexes.wait_for_rebuild(120)
    key, dim = workspace.model.embedding_key, workspace.model.embedding_dim
    ids, original = workspace.catalogue.embeddings(key, dim)
    path_of = {p.id: p.path for p in workspace.catalogue.photos(ids)}
    damage_embedding(workspace.catalogue.path, int(ids[3]), seed=1)
    damage_embedding(workspace.catalogue.path, int(ids[7]), seed=2)
    Path(path_of[int(ids[7])]).unlink()  # nothing to embed it from

    passes = []
    read = workspace.catalogue.iter_embeddings

    def counted(*args, **kwargs):
        passes.append(args)
        return read(*args, **kwargs)

    monkeypatch.setattr(workspace.catalogue, "iter_embeddings", counted)
    report = workspace.verify()
    assert len(passes) == 1  # the index comparison and the damage check share one pass
    assert any(
        f"2 stored embedding(s) are damaged (not finite unit vectors), photo id(s) {ids[3]}, {ids[7]}" in p
        for p in report.problems
    )

    passes.clear()
    index = workspace.gallery.rebuild_index()
    assert len(passes) == 1
    assert index.kind == (IVF if threshold == 8 else FLAT) and len(index) == 11
    assert int(ids[7]) not in set(index.ids().tolist())
    assert [f.path for f in workspace.gallery.repair_failures] == [path_of[int(ids[7])]]
    assert "no such file" in workspace.gallery.repair_failures[0].reason
    _, (again,) = workspace.catalogue.embeddings_of(key, dim, [int(ids[3])])
    assert abs(float(again @ original[3]) - 1) < 1e-4  # the same photo's embedding again (verify: indexed)
    report = workspace.verify()
    assert report.problems == [f"1 photo(s) have no embedding for model {workspace.manifest.name} (key {key[:12]})"]


def test_the_damage_check_refuses_every_vector_that_is_not_a_finite_unit_vector():
    from core.index.service import unit_rows

    vectors = clustered_vectors(6)
    vectors[1, 3] = np.nan
    vectors[2, 0] = np.inf
    vectors[3, 5] = 3e30  # its square overflows float32: an infinite norm, refused
    vectors[4] *= 1.01  # finite, but not of unit length
    vectors[5] = 0.0
    assert unit_rows(vectors).tolist() == [True, False, False, False, False, False]
    assert unit_rows(clustered_vectors(1000, seed=3)).all()
