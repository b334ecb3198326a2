"""Gallery-aware re-ranking: a sketch that finds one photo of a person should lift the person's
other photos. Each gallery photo's score is raised by ``alpha`` times the mean score of its ``k``
nearest gallery photos (by photo-embedding similarity), optionally only those that are mutual
(k-reciprocal) neighbours, which keeps a crowd of look-alike strangers from lifting each other.

This is the evaluation form (whole similarity matrices); the settings are chosen on validation
people, never on test people (benchmarks/pku_rerank.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RerankSettings:
    k: int = 2
    alpha: float = 0.5
    mutual: bool = False

    def label(self) -> str:
        return f"k={self.k} alpha={self.alpha:g}{' mutual' if self.mutual else ''}"


def neighbours(gallery: np.ndarray, k: int, mutual: bool) -> list[np.ndarray]:
    """For each gallery row, the indices of its ``k`` most similar other rows (cosine; rows are
    unit vectors); ``mutual``: only those that also count it among their ``k``."""
    similarity = np.asarray(gallery, np.float32) @ np.asarray(gallery, np.float32).T
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, len(gallery) - 1)
    if k <= 0:
        return [np.empty(0, np.int64) for _ in range(len(gallery))]
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    if not mutual:
        return list(nearest)
    members = [set(row.tolist()) for row in nearest]
    return [np.array([j for j in row if i in members[j]], np.int64) for i, row in enumerate(nearest)]


def rerank(scores: np.ndarray, gallery_neighbours: list[np.ndarray], alpha: float) -> np.ndarray:
    """``scores`` (queries x gallery) with each photo's score raised by ``alpha`` x the mean score
    of its neighbours (a photo without any keeps its score)."""
    scores = np.asarray(scores, np.float64)
    lifted = scores.copy()
    for j, near in enumerate(gallery_neighbours):
        if len(near):
            lifted[:, j] += alpha * scores[:, near].mean(axis=1)
    return lifted
