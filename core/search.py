"""Sketch search: embed sketches with the sketch encoder, rank photos in the index, keep only the
photos that match the attribute filters (as a selector inside the search, so K matches come back
whenever K exist).

Each function is given what it reads (a :class:`SearchedGallery`, the model), never the workspace:
a sketch goes from here to the model, the attribute table, the index and the catalogue, and back.
:class:`Searcher` holds them for one gallery, and records a search with a sketch file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.casework.desk import CaseDesk
from core.casework.query import file_query
from core.casework.records import ReplayReport
from core.casework.replay import replay as replay_search
from core.catalogue.catalogue import AttributeTable, Catalogue
from core.catalogue.videos import read_video_sources
from core.common.clock import utcnow
from core.common.errors import SketchSearchError
from core.common.imaging import load_sketch_rgb
from core.common.types import AttributeSource, Candidate, FileCheck, SearchResult
from core.gallery.file_check import check_file
from core.index.attribute_table import AttributeTables
from core.index.service import IndexService
from core.index.vectors import FLAT, SCORE_SLACK, SQ8
from core.model.attributes import AttributeSchema
from core.model.embedded import require_finite
from core.model.handle import ModelHandle
from core.model.modality import Modality

if TYPE_CHECKING:  # the network loads only when a sketch is embedded
    from core.model.embedded import EmbeddingModel

Sketch = str | Path | np.ndarray
MAX_TOP_K = 1000  # the most candidates per sketch the command line keeps (the window's own limit too)


@dataclass(frozen=True)
class SearchedGallery:
    """What a search reads: the index (FAISS, under its lock), the catalogue (the candidates' records
    and, for an approximate index, their exact embeddings), the attribute table filters select from,
    and the attribute schema filters are checked against."""

    index: IndexService
    catalogue: Catalogue
    attributes: AttributeTables
    schema: AttributeSchema


def sketch_label(sketch: Sketch, position: int) -> str:
    return str(sketch) if isinstance(sketch, (str, Path)) else f"<sketch {position + 1}>"


def sketch_pixels(sketch: Sketch) -> np.ndarray:
    """A file path or an image array -> H x W x 3 uint8 RGB (greyscale arrays are expanded)."""
    if isinstance(sketch, (str, Path)):
        return load_sketch_rgb(sketch)
    array = np.asarray(sketch)
    if array.dtype != np.uint8:
        raise ValueError(f"a sketch array must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"a sketch array must be H x W, H x W x 3 or H x W x 4, got {array.shape}")
    return np.ascontiguousarray(array[:, :, :3])


def validate_filters(schema: AttributeSchema, where: Mapping[str, str] | None) -> dict[str, str]:
    filters = dict(where or {})
    for name, value in filters.items():
        schema.check(name, value)
    return filters


def check_min_confidence(min_confidence: float) -> None:
    """A confidence is in [0, 1]; NaN (which compares false with everything) is refused too."""
    if not 0.0 <= min_confidence <= 1.0:
        raise SketchSearchError(f"minimum confidence must be between 0 and 1, got {min_confidence}")


def allowed_photo_ids(
    table: AttributeTable, schema: AttributeSchema, filters: Mapping[str, str], min_confidence: float = 0.0
) -> np.ndarray | None:
    """Ids of the photos whose effective value of every filtered attribute is the one asked for
    (model predictions count only at ``min_confidence`` or above). None: no filter at all."""
    if not filters:
        return None
    keep = np.ones(len(table.ids), dtype=bool)
    for name, value in filters.items():
        j = table.names.index(name)
        code = schema.spec(name).values.index(value)
        keep &= (table.values[:, j] == code) & (table.confidence[:, j] >= min_confidence)
    return table.ids[keep]


def rank(scores: np.ndarray, ids: np.ndarray, records: Mapping[int, tuple[str, dict, FileCheck]]) -> list[Candidate]:
    """One query's FAISS output -> candidates (ids of -1, i.e. fewer matches than K, are dropped)."""
    candidates = []
    for score, photo_id in zip(scores.tolist(), ids.tolist()):
        if photo_id < 0 or photo_id not in records:
            continue
        path, attributes, file = records[photo_id]
        candidates.append(
            Candidate(
                rank=len(candidates) + 1,
                photo_id=photo_id,
                path=path,
                score=float(score),
                attributes=attributes,
                file=file,
            )
        )
    return candidates


def rescore_exactly(
    catalogue: Catalogue, index: IndexService, queries: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The approximate index picks the candidates from quantised codes; the score shown for each is
    the exact cosine similarity with its embedding stored in the catalogue (a few rows read by
    primary key), and the candidates are ordered by it (equal scores by photo id)."""
    queries = np.asarray(queries, np.float32).reshape(len(ids), -1)
    found, vectors = catalogue.embeddings_of(index.embedding_key, index.dim, np.unique(ids[ids >= 0]).tolist())
    rows = np.searchsorted(found, ids.clip(min=0))
    known = (ids >= 0) & (rows < len(found)) & (found[rows.clip(max=max(len(found) - 1, 0))] == ids)
    scores = np.full(ids.shape, -np.inf, np.float32)
    for q in range(len(ids)):
        scores[q, known[q]] = vectors[rows[q, known[q]]] @ queries[q]
    ids = np.where(known, ids, -1)
    order = np.lexsort((ids, -scores), axis=1)  # best first; equal scores by photo id
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def exact_from_codes(
    index: IndexService, queries: np.ndarray, k: int, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The exact top ``k`` from an exhaustive 8-bit index: its best ``depth`` candidates by their
    codes, re-scored from the float32 vectors it holds beside them. A code's score is within the
    index's ``error_bound`` of the exact one, so once the k-th exact score among the candidates is at
    least the last candidate's code score plus that bound, no photo left out can beat it: the top k
    is the exact top k. A query not so proven (a dense crowd of near scores) is searched again four
    times as deep, until proven or every (allowed) photo is a candidate."""
    queries = np.ascontiguousarray(queries, np.float32).reshape(-1, index.dim)
    k = max(1, min(int(k), len(index) or 1))
    depth = index.policy.rescore_depth(k)
    out_scores = np.full((len(queries), k), -np.inf, np.float32)
    out_ids = np.full((len(queries), k), -1, np.int64)
    pending = np.arange(len(queries))
    while len(pending):
        codes, candidates, exact, bound, total = index.search_codes(queries[pending], depth, allowed)
        order = np.lexsort((candidates, -exact), axis=1)  # best first; equal scores by photo id
        scores, ids = np.take_along_axis(exact, order, axis=1), np.take_along_axis(candidates, order, axis=1)
        width = min(k, ids.shape[1])
        out_scores[pending, :width], out_ids[pending, :width] = scores[:, :width], ids[:, :width]
        if ids.shape[1] < k:
            break  # fewer photos than k: every one was a candidate
        every = (candidates < 0).any(axis=1) | (depth >= total)
        proven = scores[:, k - 1] >= codes[:, -1] + bound + SCORE_SLACK
        pending = pending[~(every | proven)]
        depth *= 4
    return out_scores, out_ids


def contradicting(
    records: Mapping[int, tuple[str, dict, FileCheck]], filters: Mapping[str, str], min_confidence: float
) -> list[int]:
    """Ids of the candidates whose stored values (read to be shown) do not pass ``filters`` as the
    attribute table says they do: compared as :func:`allowed_photo_ids` compares (a predicted value
    counts at ``min_confidence`` or above, in float32 as the table holds it; a stated one always)."""
    wrong = []
    for photo_id, (_, attributes, _) in records.items():
        for name, value in filters.items():
            found = attributes.get(name)
            confidence = found.confidence if found is not None and found.source == AttributeSource.MODEL else 1.0
            if found is None or found.value != value or np.float32(confidence) < np.float32(min_confidence):
                wrong.append(photo_id)
                break
    return wrong


def search_embeddings(
    gallery: SearchedGallery,
    queries: np.ndarray,
    top_k: int,
    where: Mapping[str, str] | None = None,
    min_confidence: float = 0.0,
) -> list[list[Candidate]]:
    """Rank the gallery for already-embedded sketches (re-ranking after a filter change needs no
    new embedding). A filtered candidate whose stored values contradict the attribute table (a cache
    file edited, or written from a stale table) is never shown: the table is read again from the
    catalogue and the search run again, and what still contradicts it (a write meanwhile) is left out."""
    filters = validate_filters(gallery.schema, where)
    check_min_confidence(min_confidence)
    for attempt in range(2):
        scores, ids, records, sources = _ranked(gallery, queries, top_k, filters, min_confidence)
        wrong = contradicting(records, filters, min_confidence) if filters else []
        if not wrong:
            break
        if attempt == 0:
            shown = ", ".join(map(str, wrong[:10]))
            gallery.attributes.distrust(f"photo(s) {shown} passed the filters, but their stored values do not")
        else:
            for photo_id in wrong:
                del records[photo_id]
    ranked = [rank(scores[q], ids[q], records) for q in range(len(queries))]
    if not sources:
        return ranked
    # candidates cut from video carry where they were seen
    return [[replace(c, video=sources.get(c.photo_id)) for c in candidates] for candidates in ranked]


def _ranked(
    gallery: SearchedGallery, queries: np.ndarray, top_k: int, filters: Mapping[str, str], min_confidence: float
):
    """(scores, ids, records of the candidates: path, attributes, file state, and where those cut from
    video were seen) of one search."""
    # the attribute table is read only for a filter: at a million photos its first read takes seconds,
    # which an unfiltered search (the first sketch after opening the window) must not wait for
    allowed = (
        allowed_photo_ids(gallery.attributes.table(), gallery.schema, filters, min_confidence) if filters else None
    )
    kind = gallery.index.kind
    if kind == SQ8:
        scores, ids = exact_from_codes(gallery.index, queries, top_k, allowed)
    else:
        scores, ids = gallery.index.search(queries, top_k, allowed)
        if kind != FLAT:
            scores, ids = rescore_exactly(gallery.catalogue, gallery.index, queries, ids)
    wanted = sorted({int(i) for i in ids.ravel() if i >= 0})
    with gallery.catalogue.snapshot() as cursor:  # the records and their video provenance, as one
        photos = gallery.catalogue.read_photos(cursor, wanted)
        sources = read_video_sources(cursor, wanted)
    # only the shown candidates' files are checked: a stat each, a hash only when one was touched
    records = {r.id: (r.path, r.attributes, check_file(r)) for r in photos}
    return scores, ids, records, sources


def embed_sketches(model: EmbeddingModel, sketches: Sequence[Sketch]) -> np.ndarray:
    """Sketches (files or arrays) -> unit embeddings, as one batch through the sketch encoder."""
    pixels = [sketch_pixels(s) for s in sketches]
    return require_finite(model.embed_images(pixels, Modality.SKETCH), model, Modality.SKETCH).embeddings


class Searcher:
    """A gallery searched with its model: sketches embedded (the network loads with the first),
    ranked in a :class:`SearchedGallery`, and a search with a sketch file recorded at the
    :class:`CaseDesk` with the very bytes it read, or run again from its record."""

    def __init__(self, models: ModelHandle, gallery: SearchedGallery, desk: CaseDesk):
        self.models = models
        self.gallery = gallery
        self.desk = desk

    def embed_sketches(self, sketches: Sequence[Sketch]) -> np.ndarray:
        pixels = [sketch_pixels(s) for s in sketches]  # a sketch that cannot be read fails before the network loads
        return embed_sketches(self.models.model, pixels)

    def search_embeddings(
        self, queries: np.ndarray, top_k: int = 10, where: Mapping[str, str] | None = None, min_confidence: float = 0.0
    ) -> list[list[Candidate]]:
        return search_embeddings(self.gallery, queries, top_k, where, min_confidence)

    def search(
        self,
        sketches: Sequence[Sketch],
        top_k: int = 10,
        where: Mapping[str, str] | None = None,
        min_confidence: float = 0.0,
    ) -> list[SearchResult]:
        validate_filters(self.gallery.schema, where)  # a bad filter fails before any sketch is embedded
        ranked = self.search_embeddings(self.embed_sketches(sketches), top_k, where, min_confidence)
        return [SearchResult(sketch_label(s, i), c) for i, (s, c) in enumerate(zip(sketches, ranked))]

    def search_file_recorded(
        self,
        path: Path,
        top_k: int = 10,
        where: Mapping[str, str] | None = None,
        min_confidence: float = 0.0,
        case_id: int | None = None,
    ) -> tuple[SearchResult, int]:
        """Search with a sketch file and record it (the bytes searched are the bytes recorded)."""
        validate_filters(self.gallery.schema, where)
        started = utcnow()
        query, pixels = file_query(path)
        ranked = self.search_embeddings(self.embed_sketches([pixels]), top_k, where, min_confidence)[0]
        search_id, _ = self.desk.record_search(
            query, ranked, where=where, min_confidence=min_confidence, top_k=top_k, started_at=started, case_id=case_id
        )
        return SearchResult(str(path), ranked), search_id

    def replay(self, search_id: int) -> ReplayReport:
        """Run a recorded search's newest ranking again and say what changed (core.casework.replay)."""

        def rank(pixels: np.ndarray, top_k: int, where: Mapping[str, str], min_confidence: float) -> list[Candidate]:
            return self.search_embeddings(self.embed_sketches([pixels]), top_k, where, min_confidence)[0]

        return replay_search(self.desk.store, self.gallery.catalogue, self.models.manifest, search_id, rank)
