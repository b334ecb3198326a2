"""A ranking taken over into another case: the search on screen when a case is opened (or marked
without a case after its case was closed) is recorded again there, so that the marks made next go
where the window says they go. The copy is a new search: the same query, ranking, filters, times
and gallery state as the newest revision of the original, with its origin in its audit entry
(``origin``, ``taken_over_from``). The original is left as it was, marks and all."""

from __future__ import annotations

from sqlalchemy import select

from core.casework.records import QueryKind, SearchQuery
from core.casework.store import CaseworkStore
from core.casework.tables import searches
from core.common.errors import CaseworkError


def recorded_query(store: CaseworkStore, search_id: int) -> SearchQuery:
    """What a recorded search searched with, as it was recorded."""
    columns = (searches.c.query_kind, searches.c.query_name, searches.c.query_png)
    with store.catalogue.read_connection() as c:
        row = c.execute(
            select(*columns, searches.c.query_strokes, searches.c.query_file).where(searches.c.id == search_id)
        ).first()
    if row is None:
        raise CaseworkError(f"no recorded search {search_id}")
    kind, name, png, strokes, file_bytes = row
    return SearchQuery(QueryKind(kind), name, png, strokes, file_bytes)


def take_over_search(
    store: CaseworkStore, search_id: int, case_id: int | None, operator: str, occasion: str = ""
) -> tuple[int, int]:
    """Record search ``search_id``'s newest ranking again in case ``case_id`` (None: under no
    case), by ``operator``; ``occasion`` says when (``on screen when case 7 was opened``).
    Returns (new search id, 1)."""
    source = store.search(search_id)
    if source.case_id == case_id:
        raise CaseworkError(f"search {search_id} is recorded in that case already")
    if not source.revisions:
        raise CaseworkError(f"recorded search {search_id} has no results")
    latest = source.latest
    where = "no case" if source.case_id is None else f"case {store.case_by_id(source.case_id).number}"
    origin = f"taken over from search {search_id} ({where})" + (f": {occasion}" if occasion else "")
    taken_from = {"search_id": search_id, "revision": latest.revision, "case_id": source.case_id}
    return store.record_search(
        recorded_query(store, search_id),
        case_id=case_id,
        operator=operator,
        app_version=source.app_version,  # the version that ranked it
        model_name=latest.model_name,
        embedding_key=latest.embedding_key,
        filters=latest.filters,
        min_confidence=latest.min_confidence,
        top_k=latest.top_k,
        candidates=latest.candidates,
        started_at=latest.started_at,
        finished_at=latest.finished_at,
        query_warnings=latest.query_warnings,
        gallery=latest.gallery,
        provenance={"origin": origin, "taken_over_from": taken_from},
    )
