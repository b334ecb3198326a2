"""Region agreement of a query and its candidates (core.model.regions), for the comparison view and
the case report: the photos' stored embeddings, the query embedded once more by the model open now
(the search did the same; it keeps no embedding), compared region by region."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.casework.query import query_pixels
from core.casework.records import QueryKind, RecordedSearch
from core.catalogue.catalogue import Catalogue
from core.model.embedded import require_finite
from core.model.handle import ModelHandle
from core.model.modality import Modality
from core.model.preprocess import normalise, prepare, resize_rgb
from core.model.regions import RegionLayout, RegionSimilarity, RegionsUnavailable, region_layout, region_similarity

BATCH = 32  # queries embedded together for a report (a case of hundreds of searches)
SCORE_AGREEMENT = 1e-3  # the regions' shares add up to the recorded score to float noise, or the figure is not shown

QuerySource = Callable[[int], tuple[QueryKind, bytes]]  # search id -> the recorded query's bytes


@dataclass(frozen=True)
class RegionComparison:
    """One candidate's region figures, or why there are none."""

    photo_id: int
    similarity: RegionSimilarity | None
    unavailable: str = ""  # one line: why there is no figure
    model_name: str = ""


@dataclass(frozen=True)
class QueryRegions:
    """A query's region figures for some of its candidates, with the query as the model saw it."""

    sketch_view: np.ndarray | None  # H x W x 3 uint8: cleaned, cropped to its marks, at the network's input size
    by_photo: dict[int, RegionComparison]
    unavailable: str = ""  # for the query as a whole (another model, a model without regions)


@dataclass(frozen=True)
class _EmbeddedQuery:
    view: np.ndarray  # the sketch as the network was given it (before normalising)
    embedding: np.ndarray


class RegionCompare:
    def __init__(self, catalogue: Catalogue, models: ModelHandle):
        self.catalogue = catalogue
        self.models = models  # the network loads with the first query embedded
        self.manifest = models.manifest
        self.key = self.manifest.embedding_key
        self.config = self.manifest.preprocess[Modality.SKETCH]
        try:
            self.layout: RegionLayout | None = region_layout(self.manifest, models.weights_file)
            self.unavailable = ""
        except RegionsUnavailable as exc:
            self.layout, self.unavailable = None, str(exc)

    def sketch_view(self, pixels: np.ndarray) -> np.ndarray:
        """The sketch as the network is given it (before normalising): its grid is the regions'."""
        rgb = np.asarray(pixels)
        rgb = np.repeat(rgb[:, :, None], 3, axis=2) if rgb.ndim == 2 else rgb[:, :, :3]
        return resize_rgb(prepare(np.ascontiguousarray(rgb), self.config), self.config)

    def _embed(self, pixels: Sequence[np.ndarray]) -> list[_EmbeddedQuery]:
        """Each query's view and its embedding, from one clean-up: the view normalised is what a
        search gives the network (core.model.preprocess), so the embedding is the search's."""
        views = [self.sketch_view(p) for p in pixels]
        model = self.models.model
        batch = np.stack([normalise(view, self.config) for view in views])
        embedded = require_finite(model.embed_preprocessed(batch, Modality.SKETCH), model, Modality.SKETCH)
        return [_EmbeddedQuery(v, e) for v, e in zip(views, embedded.embeddings, strict=True)]

    def for_pixels(
        self, pixels: np.ndarray, photo_ids: Sequence[int], recorded: dict[int, float] | None = None
    ) -> QueryRegions:
        """``recorded``: photo id -> the score its search recorded; a figure whose regions do not
        add up to it (the photo embedded again since, say) is left out and says so."""
        if self.layout is None:
            return QueryRegions(None, {}, self.unavailable)
        return self._compare(self._embed([pixels])[0], photo_ids, self._stored(photo_ids), recorded)

    def _stored(self, photo_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """photo id -> its stored embedding of the model open now (none: not embedded)."""
        ids, vectors = self.catalogue.embeddings_of(self.key, self.manifest.embedding_dim, photo_ids)
        return {int(i): v for i, v in zip(ids, vectors, strict=True)}

    def _compare(
        self,
        query: _EmbeddedQuery,
        photo_ids: Sequence[int],
        stored: dict[int, np.ndarray],
        recorded: dict[int, float] | None,
    ) -> QueryRegions:
        vector_of_query = np.asarray(query.embedding, dtype=np.float32).reshape(-1)
        found = {}
        for photo_id in photo_ids:
            vector = stored.get(int(photo_id))
            if vector is None:
                why = "the photo has no embedding of this model (removed or not embedded)"
                found[photo_id] = self._none(photo_id, why)
                continue
            similarity = region_similarity(self.layout, vector_of_query, vector)
            then = (recorded or {}).get(photo_id)
            if then is not None and abs(similarity.score - then) > SCORE_AGREEMENT:
                why = f"its regions add up to {similarity.score:+.4f}, not the recorded {then:+.4f} (embedded since)"
                found[photo_id] = self._none(photo_id, why)
                continue
            found[photo_id] = RegionComparison(photo_id, similarity, model_name=self.manifest.name)
        return QueryRegions(query.view, found)

    def for_searches(
        self, wanted: Sequence[tuple[RecordedSearch, Sequence[int]]], source: QuerySource
    ) -> list[QueryRegions]:
        """Each recorded search's newest ranking against the photos asked for, when it was made with
        the model open now. A query is embedded once however many searches used it (the same bytes:
        a file searched again, a ranking taken over), the rest a batch at a time."""
        results: list[QueryRegions | None] = [None] * len(wanted)
        queries: dict[tuple[QueryKind, str], _EmbeddedQuery] = {}
        pending: dict[tuple[QueryKind, str], np.ndarray] = {}  # the queries of the batch to embed
        waiting: list[int] = []  # searches whose query is in ``pending`` or ``queries``

        def compare_waiting() -> None:
            if pending:
                queries.update(zip(pending, self._embed(list(pending.values())), strict=True))
                pending.clear()
            stored = self._stored(sorted({p for i in waiting for p in wanted[i][1]}))  # one read for the batch
            for i in waiting:
                search, photo_ids = wanted[i]
                scores = {c.photo_id: c.score for c in search.latest.candidates}
                results[i] = self._compare(queries[_query_key(search)], photo_ids, stored, scores)
            waiting.clear()

        for i, (search, _) in enumerate(wanted):
            latest = search.latest
            if latest.embedding_key != self.key:
                why = (
                    f"the search was made with {latest.model_name} (key {latest.embedding_key[:12]}); the model "
                    f"open now is {self.manifest.name} (key {self.key[:12]})"
                )
                results[i] = QueryRegions(None, {}, why)
                continue
            if self.layout is None:
                results[i] = QueryRegions(None, {}, self.unavailable)
                continue
            key = _query_key(search)
            if key not in queries and key not in pending:
                kind, data = source(search.id)
                label = search.query_name if kind == QueryKind.FILE else f"search {search.id}"
                pending[key] = query_pixels(kind, data, label)
            waiting.append(i)
            if len(pending) >= BATCH:
                compare_waiting()
        compare_waiting()
        return [r for r in results if r is not None]

    def _none(self, photo_id: int, why: str) -> RegionComparison:
        return RegionComparison(photo_id, None, why, self.manifest.name)


def _query_key(search: RecordedSearch) -> tuple[QueryKind, str]:
    """The bytes a search's query is decoded from, by their recorded sha256 (the file's for a
    file, the picture's for a window search)."""
    return search.query_kind, search.query_sha256
