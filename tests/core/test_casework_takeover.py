"""The search on screen taken over into a case (a new search, bound in the audit log, that states
where it comes from), and the case's newest mark on each photo, whichever search it was made in."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.casework.records import ReviewMark
from core.common.errors import CaseworkError
from tests.core.test_audit_tamper import tamper
from tests.core.test_casework import record
from tests.core.test_cli import cli


def test_a_search_taken_over_into_a_case_is_a_new_bound_search_that_says_where_it_comes_from(
    tmp_path, make_photos, untrained_model_dir, capsys
):
    from core.workspace import Workspace

    photos = make_photos(6)
    data = ["--data-dir", tmp_path / "data", "--model", untrained_model_dir]
    with Workspace(tmp_path / "data", untrained_model_dir, "cpu") as workspace:
        workspace.desk.operator = "ana"
        workspace.import_paths([photos[0].parent])
        _, no_case = workspace.searcher.search_file_recorded(photos[2], top_k=4, where={}, min_confidence=0.0)
        workspace.desk.review(no_case, 1, ReviewMark.POSSIBLE, "marked before the case was opened")
        case = workspace.desk.new_case("2026-0077", "Station assault")
        taken, revision = workspace.desk.take_over_search(no_case, case.id, "on screen when case 2026-0077 was opened")
        store = workspace.casework

        assert (taken, revision) == (no_case + 1, 1)
        source, copy = store.search(no_case), store.search(taken)
        assert copy.case_id == case.id and source.case_id is None
        assert copy.origin == f"taken over from search {no_case} (no case): on screen when case 2026-0077 was opened"
        assert source.origin == ""
        assert (copy.query_kind, copy.query_name, copy.query_sha256, copy.query_png) == (
            source.query_kind, source.query_name, source.query_sha256, source.query_png
        )  # fmt: skip
        assert store.query_source(taken) == store.query_source(no_case)  # replays the same file bytes
        assert copy.latest.candidates == source.latest.candidates  # ranks, photos, sha256, scores, thumbnails
        then, now = source.latest, copy.latest
        assert (now.filters, now.min_confidence, now.top_k, now.gallery) == (
            then.filters, then.min_confidence, then.top_k, then.gallery
        )  # fmt: skip
        assert (now.started_at, now.finished_at) == (then.started_at, then.finished_at)  # when it was ranked
        entry = store.audit_entries()[-1]
        assert entry.kind == "search" and entry.case_id == case.id and entry.seq == now.audit_seq
        assert entry.payload["origin"] == copy.origin
        assert entry.payload["taken_over_from"] == {"search_id": no_case, "revision": 1, "case_id": None}
        assert entry.payload["bound_rows"]["searches"] and entry.payload["bound_rows"]["search_revisions"]

        # the case now holds the search; the marks made before stay with the original
        assert [s.id for s in store.searches_of_case(case.id)] == [taken] and store.case("2026-0077").searches == 1
        assert store.current_marks(taken) == {} and len(store.current_marks(no_case)) == 1
        review = workspace.desk.review(taken, 2, ReviewMark.EXCLUDED, "taller than described")
        assert review.search_id == taken and store.current_marks(taken)[review.photo_id].mark == ReviewMark.EXCLUDED

        with pytest.raises(CaseworkError, match="in that case already"):
            workspace.desk.take_over_search(taken, case.id)
        workspace.desk.close_case("2026-0077")
        with pytest.raises(CaseworkError, match="closed"):
            workspace.desk.take_over_search(no_case, case.id)
        # out of the closed case, under no case again (what "Mark without a case" does)
        out, _ = workspace.desk.take_over_search(taken, None, "marked without a case")
        assert store.search(out).origin == f"taken over from search {taken} (case 2026-0077): marked without a case"

    code, printed, _ = cli(capsys, *data, "audit", "verify")
    assert code == 0 and printed.startswith("ok: ")
    code, printed, _ = cli(capsys, *data, "case", "show", "2026-0077")
    assert code == 0 and f"origin: taken over from search {no_case} (no case)" in printed

    # the copy is bound like any search: a change behind the log is named
    tamper(tmp_path / "data" / "catalogue.sqlite3", f"UPDATE searches SET query_name = 'another' WHERE id = {taken}")
    code, printed, _ = cli(capsys, *data, "audit", "verify")
    assert code == 1 and f"search {taken} differs" in printed


@pytest.fixture
def store(tmp_path):
    from core.casework.store import CaseworkStore
    from core.catalogue.catalogue import Catalogue
    from tests.core.test_catalogue import new_photo

    catalogue = Catalogue(tmp_path / "data")
    catalogue.register_model("ab" * 32, "m", 4, {})
    catalogue.add_photos([new_photo(i) for i in range(1, 6)], "ab" * 32)
    yield CaseworkStore(catalogue)
    catalogue.close()


def test_the_case_newest_mark_on_a_photo_follows_it_into_later_searches(store):
    from core.casework.marks import case_marks

    case, other = store.new_case("C-1", "robbery", "ana"), store.new_case("C-2", "fraud", "ana")
    first, _ = record(store, case.id, (1, 2, 3))
    later, _ = record(store, case.id, (3, 2, 1, 4))
    elsewhere, _ = record(store, other.id, (1, 2))
    no_case, _ = record(store, None, (4, 1))
    assert case_marks(store.catalogue, case.id) == {}

    store.review(first, 1, ReviewMark.POSSIBLE, "ana", "tattoo")  # photo 1
    store.review(first, 2, ReviewMark.EXCLUDED, "ana")  # photo 2, changed in the later search
    store.review(first, 3, ReviewMark.EXCLUDED, "ana")  # photo 3, withdrawn in the later search
    store.review(later, 2, ReviewMark.POSSIBLE, "bo", "same jacket")  # photo 2
    store.review(later, 1, ReviewMark.CLEAR, "bo")  # photo 3
    store.review(elsewhere, 1, ReviewMark.EXCLUDED, "ana")  # photo 1 in another case
    store.review(no_case, 1, ReviewMark.EXCLUDED, "ana")  # photo 4 under no case

    marks = case_marks(store.catalogue, case.id)
    assert sorted(marks) == [1, 2]
    assert (marks[1].mark, marks[1].search_id, marks[1].rank, marks[1].note, marks[1].operator) == (
        ReviewMark.POSSIBLE, first, 1, "tattoo", "ana"
    )  # fmt: skip
    assert (marks[2].mark, marks[2].search_id, marks[2].rank, marks[2].note, marks[2].operator) == (
        ReviewMark.POSSIBLE, later, 2, "same jacket", "bo"
    )  # fmt: skip
    newest = store.reviews(later)[0]
    assert isinstance(marks[2].at, datetime) and marks[2].at == newest.at
    assert sorted(case_marks(store.catalogue, other.id)) == [1]
    assert store.verify_audit().ok


def test_case_marks_is_one_query(store):
    from sqlalchemy import event

    from core.casework.marks import case_marks

    case = store.new_case("C-1", "robbery", "ana")
    for _ in range(5):
        search, _ = record(store, case.id, (1, 2, 3))
        store.review(search, 1, ReviewMark.POSSIBLE, "ana")
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    event.listen(store.catalogue.engine, "before_cursor_execute", listener)
    try:
        assert list(case_marks(store.catalogue, case.id)) == [1]
    finally:
        event.remove(store.catalogue.engine, "before_cursor_execute", listener)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
