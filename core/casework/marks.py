"""Marks that follow a photo through a case: the newest decision on each photo, whichever of the
case's searches it was made in, so that a later search of the case shows it on that photo's card.
A mark is still recorded against the search it was made in (core.casework.store.review)."""

from __future__ import annotations

from sqlalchemy import func, select

from core.casework.records import CaseMark, ReviewMark
from core.casework.tables import reviews, searches
from core.catalogue.catalogue import Catalogue


def case_marks(catalogue: Catalogue, case_id: int) -> dict[int, CaseMark]:
    """photo id -> the case's newest decision on it, in one query; a photo whose newest decision
    withdrew the mark (CLEAR) has none."""
    newest_first = func.row_number().over(partition_by=reviews.c.photo_id, order_by=reviews.c.id.desc())
    ranked = (
        select(reviews, newest_first.label("newness"))
        .join(searches, searches.c.id == reviews.c.search_id)
        .where(searches.c.case_id == case_id)
        .subquery()
    )
    fields = ("photo_id", "mark", "search_id", "rank", "note", "operator", "at")
    newest = select(*(ranked.c[name] for name in fields)).where(
        ranked.c.newness == 1, ranked.c.mark != ReviewMark.CLEAR.value
    )
    with catalogue.read_connection() as c:
        rows = c.execute(newest).all()
    return {
        photo_id: CaseMark(photo_id, ReviewMark(mark), search_id, rank, note, operator, at)
        for photo_id, mark, search_id, rank, note, operator, at in rows
    }
