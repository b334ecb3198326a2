"""Compare a recorded ranking with the ranking the same query gets now."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from core.casework.query import query_pixels
from core.casework.records import QueryKind, RecordedSearch, ReplayReport
from core.casework.store import CaseworkStore
from core.catalogue.catalogue import Catalogue
from core.common.types import Candidate
from core.model.manifest import Manifest

# (query image, top K, filters, minimum confidence) -> the ranking the gallery gives it now
Rank = Callable[[np.ndarray, int, Mapping[str, str], float], list[Candidate]]

SCORE_TOLERANCE = 1e-5  # float noise between runs and devices; a real change is far larger


def compare(
    search: RecordedSearch,
    now: Sequence[tuple[int, str, float]],
    *,
    model_name: str,
    embedding_key: str,
    gallery_photos: int,
    last_import: int | None,
    present: Mapping[str, int],
    imported_since: set[str],
) -> ReplayReport:
    """``now``: (photo id, sha256, score) ranked today; ``present``: sha256 -> photo id of every
    recorded candidate still catalogued; ``imported_since``: sha256s of today's candidates that
    were imported after the search was recorded."""
    then = search.latest
    differences: list[str] = []
    if embedding_key != then.embedding_key:
        differences.append(
            f"model changed: recorded with {then.model_name} (key {then.embedding_key[:12]}), "
            f"now {model_name} (key {embedding_key[:12]})"
        )
    if (gallery_photos, last_import) != (then.gallery.photos, then.gallery.last_import):
        differences.append(
            f"gallery changed: {then.gallery.photos} photo(s) after import {then.gallery.last_import} then, "
            f"{gallery_photos} after import {last_import} now"
        )
    old = [(c.photo_sha256, c.score) for c in then.candidates]
    new = [(sha, score) for _, sha, score in now]
    old_rank = {sha: i + 1 for i, (sha, _) in enumerate(old)}
    new_rank = {sha: i + 1 for i, (sha, _) in enumerate(new)}
    for c in then.candidates:
        if c.photo_sha256 not in present:
            differences.append(f"rank {c.rank}: photo #{c.photo_id} ({c.photo_sha256[:12]}) was removed since")
        elif c.photo_sha256 not in new_rank:
            differences.append(f"rank {c.rank}: photo #{c.photo_id} ({c.photo_sha256[:12]}) dropped out of the top")
    for rank, (photo_id, sha, score) in enumerate(now, start=1):
        if sha not in old_rank:
            why = "added since" if sha in imported_since else "new in the top"
            differences.append(f"rank {rank}: photo #{photo_id} ({sha[:12]}) {why}, score {score:.4f}")
        elif old_rank[sha] != rank:
            differences.append(f"photo #{photo_id} ({sha[:12]}) moved from rank {old_rank[sha]} to {rank}")
    shared = [(s0, s1) for (sha, s0) in old for (sha1, s1) in new if sha == sha1]
    drift = max((abs(a - b) for a, b in shared), default=0.0)
    if drift > SCORE_TOLERANCE:
        differences.append(f"scores changed by up to {drift:.6f}")
    identical = [sha for sha, _ in old] == [sha for sha, _ in new] and drift <= SCORE_TOLERANCE
    return ReplayReport(search.id, then.revision, identical, differences, list(now))


def replay(store: CaseworkStore, catalogue: Catalogue, manifest: Manifest, search_id: int, rank: Rank) -> ReplayReport:
    """Run a recorded search's newest ranking again (``rank``: the search as it runs now, from the
    query's recorded bytes) and say what changed."""
    search = store.search(search_id)
    then = search.latest
    kind, data = store.query_source(search_id)
    label = search.query_name if kind == QueryKind.FILE else f"recorded search {search_id}"
    ranked = rank(query_pixels(kind, data, label), then.top_k, then.filters, then.min_confidence)
    records = {p.id: p for p in catalogue.photos([c.photo_id for c in ranked])}
    now = [(c.photo_id, records[c.photo_id].sha256, c.score) for c in ranked if c.photo_id in records]
    by_sha = catalogue.paths_by_sha()
    present = {c.photo_sha256: by_sha[c.photo_sha256][0] for c in then.candidates if c.photo_sha256 in by_sha}
    since = {records[pid].sha256 for pid, *_ in now if records[pid].imported_at > then.started_at}
    return compare(
        search,
        now,
        model_name=manifest.name,
        embedding_key=manifest.embedding_key,
        gallery_photos=catalogue.count_photos(),
        last_import=catalogue.last_import_id(),
        present=present,
        imported_since=since,
    )
