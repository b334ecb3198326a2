"""Gallery-aware re-ranking against plain loops, and what it does to a gallery with two photos of
each person."""

from __future__ import annotations

import numpy as np

from training.evaluate import cmc_map, ranking_figures
from training.rerank import neighbours, rerank


def unit_rows(rng: np.random.Generator, count: int, dim: int = 8) -> np.ndarray:
    rows = rng.standard_normal((count, dim))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def reference(scores, gallery, k, alpha, mutual):
    """The definition, one photo at a time."""
    n = len(gallery)
    nearest = []
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: -(gallery[i] @ gallery[j]))
        nearest.append(others[:k])
    out = np.array(scores, np.float64)
    for j in range(n):
        near = [m for m in nearest[j] if not mutual or j in nearest[m]]
        if near:
            out[:, j] = scores[:, j] + alpha * np.mean([scores[:, m] for m in near], axis=0)
    return out


def test_rerank_matches_the_definition_computed_by_loops():
    rng = np.random.default_rng(3)
    gallery, queries = unit_rows(rng, 30), unit_rows(rng, 7)
    scores = queries @ gallery.T
    for k in (1, 2, 5):
        for mutual in (False, True):
            got = rerank(scores, neighbours(gallery, k, mutual), 0.5)
            np.testing.assert_allclose(got, reference(scores, gallery, k, 0.5, mutual), atol=1e-12)


def test_mutual_neighbours_are_a_subset_that_is_symmetric():
    gallery = unit_rows(np.random.default_rng(5), 40)
    plain, mutual = neighbours(gallery, 3, False), neighbours(gallery, 3, True)
    for i, near in enumerate(mutual):
        assert set(near) <= set(plain[i])
        assert all(i in set(mutual[j]) for j in near)


def test_off_leaves_the_ranking_as_it_was():
    rng = np.random.default_rng(7)
    gallery, queries = unit_rows(rng, 20), unit_rows(rng, 5)
    scores = queries @ gallery.T
    np.testing.assert_array_equal(rerank(scores, neighbours(gallery, 2, False), 0.0), scores)
    ids = [f"p{i // 2}" for i in range(20)]
    assert ranking_figures(scores, [f"p{i}" for i in range(5)], ids) == cmc_map(
        queries, [f"p{i}" for i in range(5)], gallery, ids
    )


def test_a_found_photo_lifts_the_same_persons_other_photo():
    """Two photos per person, alike; each sketch is drawn from the first photo only."""
    rng = np.random.default_rng(11)
    people = unit_rows(rng, 25, 32)
    photos = np.concatenate([people + 0.6 * unit_rows(rng, 25, 32), people + 0.6 * unit_rows(rng, 25, 32)])
    photos /= np.linalg.norm(photos, axis=1, keepdims=True)
    sketches = photos[:25] + 1.2 * unit_rows(rng, 25, 32)
    sketches /= np.linalg.norm(sketches, axis=1, keepdims=True)
    scores = sketches @ photos.T
    lifted = rerank(scores, neighbours(photos, 1, False), 0.5)

    def rank_of_second_photo(s: np.ndarray) -> float:
        order = np.argsort(-s, axis=1)
        return float(np.mean([np.flatnonzero(order[q] == 25 + q)[0] for q in range(25)]))

    assert rank_of_second_photo(lifted) < rank_of_second_photo(scores)
    ids = [f"p{i}" for i in range(25)] * 2
    assert ranking_figures(lifted, ids[:25], ids)["mAP"] > ranking_figures(scores, ids[:25], ids)["mAP"]
