"""Region agreement of a query and its candidates (core.model.regions), for the comparison view and
the case report: the photos' stored embeddings, the query embedded once more by the model open now
(the search did the same; it keeps no embedding), compared region by region."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.casework.query import query_pixels
from core.casework.records import QueryKind, RecordedSearch
from core.catalogue.catalogue import Catalogue
from core.model.manifest import Manifest
from core.model.modality import Modality
from core.model.preprocess import prepare, resize_rgb
from core.model.regions import RegionLayout, RegionSimilarity, RegionsUnavailable, region_layout, region_similarity

BATCH = 16  # queries embedded together for a report (a case of hundreds of searches)
SCORE_AGREEMENT = 1e-3  # the regions' shares add up to the recorded score to float noise, or the figure is not shown

EmbedSketches = Callable[[list[np.ndarray]], np.ndarray]  # query pixels -> unit embeddings (the model open now)
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


class RegionCompare:
    def __init__(self, catalogue: Catalogue, manifest: Manifest, weights_file: Path | None, embed: EmbedSketches):
        self.catalogue = catalogue
        self.manifest = manifest
        self.key = manifest.embedding_key
        self.embed = embed
        try:
            self.layout: RegionLayout | None = region_layout(manifest, weights_file)
            self.unavailable = ""
        except RegionsUnavailable as exc:
            self.layout, self.unavailable = None, str(exc)

    def sketch_view(self, pixels: np.ndarray) -> np.ndarray:
        """The sketch as the network is given it (before normalising): its grid is the regions'."""
        config = self.manifest.preprocess[Modality.SKETCH]
        rgb = np.asarray(pixels)
        rgb = np.repeat(rgb[:, :, None], 3, axis=2) if rgb.ndim == 2 else rgb[:, :, :3]
        return resize_rgb(prepare(np.ascontiguousarray(rgb), config), config)

    def for_pixels(
        self, pixels: np.ndarray, photo_ids: Sequence[int], recorded: dict[int, float] | None = None
    ) -> QueryRegions:
        """``recorded``: photo id -> the score its search recorded; a figure whose regions do not
        add up to it (the photo embedded again since, say) is left out and says so."""
        if self.layout is None:
            return QueryRegions(None, {}, self.unavailable)
        return self._compare(self.embed([pixels])[0], pixels, photo_ids, recorded)

    def _compare(
        self, query: np.ndarray, pixels: np.ndarray, photo_ids: Sequence[int], recorded: dict[int, float] | None
    ) -> QueryRegions:
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        ids, vectors = self.catalogue.embeddings_of(self.key, self.manifest.embedding_dim, photo_ids)
        stored = {int(i): v for i, v in zip(ids, vectors, strict=True)}
        found = {}
        for photo_id in photo_ids:
            vector = stored.get(int(photo_id))
            if vector is None:
                why = "the photo has no embedding of this model (removed or not embedded)"
                found[photo_id] = self._none(photo_id, why)
                continue
            similarity = region_similarity(self.layout, query, vector)
            then = (recorded or {}).get(photo_id)
            if then is not None and abs(similarity.score - then) > SCORE_AGREEMENT:
                why = f"its regions add up to {similarity.score:+.4f}, not the recorded {then:+.4f} (embedded since)"
                found[photo_id] = self._none(photo_id, why)
                continue
            found[photo_id] = RegionComparison(photo_id, similarity, model_name=self.manifest.name)
        return QueryRegions(self.sketch_view(pixels), found)

    def for_searches(
        self, wanted: Sequence[tuple[RecordedSearch, Sequence[int]]], source: QuerySource
    ) -> list[QueryRegions]:
        """Each recorded search's newest ranking against the photos asked for, when it was made with
        the model open now; the queries are embedded a batch at a time."""
        results: list[QueryRegions | None] = []
        for start in range(0, len(wanted), BATCH):
            pending = []
            for search, photo_ids in wanted[start : start + BATCH]:
                latest = search.latest
                if latest.embedding_key != self.key:
                    why = (
                        f"the search was made with {latest.model_name} (key {latest.embedding_key[:12]}); the model "
                        f"open now is {self.manifest.name} (key {self.key[:12]})"
                    )
                    results.append(QueryRegions(None, {}, why))
                    continue
                if self.layout is None:
                    results.append(QueryRegions(None, {}, self.unavailable))
                    continue
                kind, data = source(search.id)
                label = search.query_name if kind == QueryKind.FILE else f"search {search.id}"
                scores = {c.photo_id: c.score for c in latest.candidates}
                pending.append((len(results), query_pixels(kind, data, label), photo_ids, scores))
                results.append(None)
            if pending:
                queries = self.embed([pixels for _, pixels, _, _ in pending])
                for (i, pixels, photo_ids, scores), query in zip(pending, queries, strict=True):
                    results[i] = self._compare(query, pixels, photo_ids, scores)
        return [r for r in results if r is not None]

    def _none(self, photo_id: int, why: str) -> RegionComparison:
        return RegionComparison(photo_id, None, why, self.manifest.name)
