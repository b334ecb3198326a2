"""A case in the window is where the marks go: opening one takes over the search on screen, the
open case comes back at the next start, marking with no case open asks first, and a photo's mark
in the case shows again on its card in a later search of the case."""

from __future__ import annotations

import pytest
from app_helpers import GALLERY_SIZE, click, draw_figure_strokes, draw_stroke, when_modal
from pypdf import PdfReader
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox

from core.casework.records import ReviewMark


def fill_new_case(number: str, title: str):
    def fill(dialog) -> None:
        dialog.number.setText(number)
        dialog.title.setText(title)
        dialog.accept()

    return fill


def pick_case(number: str):
    def pick(dialog: QInputDialog) -> None:
        (label,) = [item for item in dialog.comboBoxItems() if item.startswith(number)]
        dialog.setTextValue(label)
        dialog.accept()

    return pick


def report_text(path) -> str:
    return " ".join("\n".join(p.extract_text() for p in PdfReader(path).pages).split())


def wait_for_record(qtbot, window, other_than=None, timeout=60000) -> int:
    qtbot.waitUntil(
        lambda: window.recorder.current_search_id() not in (None, other_than) and not window.recorder.pending(),
        timeout=timeout,
    )
    return window.recorder.current_search_id()


def wait_for_records_written(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.runner.pools["record"].activeThreadCount() == 0, timeout=20000)


# -- the search on screen goes into the case opened --------------------------------------------------
def test_a_case_started_after_importing_a_sketch_reports_the_search_and_its_marks(
    qtbot, make_window, own_gallery_workspace, pku_root, tmp_path, monkeypatch
):
    """Import a sketch, Case → New case, mark two candidates (one with a note), export the report:
    the report holds the search and both marks, and the search states where it came from."""
    from app.casework import NewCaseDialog

    workspace = own_gallery_workspace
    window = make_window(workspace)
    window.sketch_files.import_scan(pku_root / "sketch" / "1.jpg")
    before = wait_for_record(qtbot, window)
    assert workspace.casework.search(before).case_id is None  # shown under no case, so recorded there

    when_modal(NewCaseDialog, fill_new_case("2026-0077", "Station assault"))
    window.menus.new_case_action.trigger()
    qtbot.waitUntil(lambda: window.recorder.case is not None, timeout=10000)
    case = window.recorder.case
    taken = wait_for_record(qtbot, window, other_than=before, timeout=10000)

    window.grid.view.setCurrentIndex(window.candidates.index(0))
    window.menus.possible_action.trigger()
    window.grid.view.setCurrentIndex(window.candidates.index(1))
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: ("excluded", True))
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("taller than described", True))
    window.menus.note_mark_action.trigger()
    qtbot.waitUntil(lambda: len(window.candidates.marks) == 2, timeout=10000)

    store = workspace.casework
    searches = store.searches_of_case(case.id)
    assert [s.id for s in searches] == [taken]
    assert searches[0].origin.startswith(f"taken over from search {before} (no case)")
    assert "2026-0077 was started" in searches[0].origin
    assert [c.photo_id for c in searches[0].latest.candidates] == [
        c.photo_id for c in store.search(before).latest.candidates
    ]
    assert {r.mark for r in store.current_marks(taken).values()} == {ReviewMark.POSSIBLE, ReviewMark.EXCLUDED}
    assert store.reviews(before) == []  # nothing went to the search under no case

    report = tmp_path / "report.pdf"
    with qtbot.waitSignal(window.recorder.reportWritten, timeout=60000):
        window.recorder.export_report(str(report))
    text = report_text(report)
    assert "Searches: 1." in text and "No search has been recorded" not in text
    assert f"Origin: taken over from search {before} (no case)" in text
    assert "Possible lead: " in text and "Excluded: " in text and "taller than described" in text
    assert store.verify_audit().ok


def test_opening_a_case_with_nothing_on_screen_records_nothing(qtbot, make_window, own_gallery_workspace):
    workspace = own_gallery_workspace
    case = workspace.desk.new_case("2026-0080", "Harbour")
    window = make_window(workspace)
    window.recorder.open_case("2026-0080")
    qtbot.waitUntil(lambda: window.recorder.case is not None, timeout=10000)
    wait_for_records_written(qtbot, window)
    assert workspace.casework.searches_of_case(case.id) == [] and workspace.casework.searches_of_case(None) == []

    draw_figure_strokes(qtbot, window.canvas)  # and what is drawn next is recorded in the case itself
    search_id = wait_for_record(qtbot, window)
    recorded = workspace.casework.search(search_id)
    assert recorded.case_id == case.id and recorded.origin == ""


# -- the open case comes back ---------------------------------------------------------------------
def test_the_open_case_comes_back_at_the_next_start_unless_closed_meanwhile(
    qtbot, make_window, own_gallery_workspace, gallery_workspace, untrained_model_dir, capsys
):
    from core.cli.commands import main as cli_main

    workspace = own_gallery_workspace
    first = make_window(workspace)
    first.recorder.new_case("2026-0078", "Bridge", "ana")
    qtbot.waitUntil(lambda: first.recorder.case is not None, timeout=10000)
    first.close()

    second = make_window(workspace)  # the next start, on the same data folder
    qtbot.waitUntil(lambda: second.recorder.case is not None, timeout=10000)
    assert second.recorder.case.number == "2026-0078" and second.status_bar.case_label.text() == "Case 2026-0078"
    assert "2026-0078" in second.windowTitle()
    other = make_window(gallery_workspace)  # another data folder has its own (none)
    wait_for_records_written(qtbot, other)
    assert other.recorder.case is None
    other.close()
    second.close()

    # closed from the command line in between: not restored, and the status bar says so
    data = ["--data-dir", workspace.data_dir, "--model", untrained_model_dir]
    assert cli_main([str(a) for a in (*data, "case", "close", "2026-0078")]) == 0
    capsys.readouterr()
    third = make_window(workspace)
    qtbot.waitUntil(lambda: "2026-0078" in third.status_bar.currentMessage(), timeout=10000)
    message = third.status_bar.currentMessage()
    assert "closed" in message and "no case" in message
    assert third.recorder.case is None and third.status_bar.case_label.text() == "No case"
    assert not workspace.casework.case("2026-0078").is_open  # not opened again behind the user's back
    third.close()
    fourth = make_window(workspace)  # said once: the choice is forgotten
    wait_for_records_written(qtbot, fourth)
    assert "2026-0078" not in fourth.status_bar.currentMessage() and fourth.recorder.case is None


# -- marking with no case open asks first ------------------------------------------------------------
@pytest.fixture
def shown_search(qtbot, make_window, own_gallery_workspace):
    """A window with no case open and a drawn search recorded under no case."""
    window = make_window(own_gallery_workspace)
    draw_figure_strokes(qtbot, window.canvas)
    search_id = wait_for_record(qtbot, window)
    window.grid.view.setCurrentIndex(window.candidates.index(0))
    return window, own_gallery_workspace, search_id


def all_reviews(workspace):
    return [r for s in workspace.casework.searches_of_case(None) for r in workspace.casework.reviews(s.id)] + [
        r for c in workspace.desk.cases() for s in workspace.casework.searches_of_case(c.id)
        for r in workspace.casework.reviews(s.id)
    ]  # fmt: skip


def test_marking_with_no_case_asks_and_cancel_marks_nothing(qtbot, shown_search):
    window, workspace, _ = shown_search
    asked = []
    when_modal(QMessageBox, click("Cancel"), asked)
    window.menus.possible_action.trigger()  # the P key
    assert len(asked) == 1 and "No case is open" in asked[0].text()
    assert [b.text() for b in asked[0].buttons() if b.text() != "Cancel"] == [
        "New case…", "Open case…", "Mark without a case"
    ]  # fmt: skip
    wait_for_records_written(qtbot, window)
    assert all_reviews(workspace) == [] and window.candidates.marks == {} and window.recorder.case is None


def test_marking_without_a_case_records_it_under_no_case_and_asks_once(qtbot, shown_search):
    window, workspace, search_id = shown_search
    asked = []
    when_modal(QMessageBox, click("Mark without a case"), asked)
    window.menus.exclude_action.trigger()  # the X key
    qtbot.waitUntil(lambda: len(window.candidates.marks) == 1, timeout=10000)
    assert window.grid.current_row() == 0  # the card marked stays selected (the grid is not reset)
    window.grid.view.setCurrentIndex(window.candidates.index(1))
    window.menus.possible_action.trigger()  # not asked again
    qtbot.waitUntil(lambda: len(window.candidates.marks) == 2, timeout=10000)
    assert len(asked) == 1
    assert [r.mark for r in workspace.casework.reviews(search_id)] == [ReviewMark.EXCLUDED, ReviewMark.POSSIBLE]


def test_marking_with_no_case_can_start_one_first(qtbot, shown_search):
    from app.casework import NewCaseDialog

    window, workspace, search_id = shown_search
    photo = window.candidates.candidate(0).photo_id
    when_modal(QMessageBox, click("New case…"))
    when_modal(NewCaseDialog, fill_new_case("2026-0079", "Depot"))
    window.menus.possible_action.trigger()
    qtbot.waitUntil(lambda: len(window.candidates.marks) == 1, timeout=10000)
    case = workspace.casework.case("2026-0079")
    (taken,) = workspace.casework.searches_of_case(case.id)
    assert taken.origin.startswith(f"taken over from search {search_id} (no case)")
    assert [(r.photo_id, r.mark) for r in workspace.casework.reviews(taken.id)] == [(photo, ReviewMark.POSSIBLE)]
    assert workspace.casework.reviews(search_id) == [] and window.recorder.case.number == "2026-0079"


def test_marking_with_no_case_can_open_one_first(qtbot, shown_search):
    window, workspace, search_id = shown_search
    workspace.desk.new_case("2026-0081", "Market")
    photo = window.candidates.candidate(0).photo_id
    when_modal(QMessageBox, click("Open case…"))
    when_modal(QInputDialog, pick_case("2026-0081"))
    window.menus.clear_mark_action.trigger()  # the U key asks too
    qtbot.waitUntil(lambda: window.recorder.case is not None, timeout=10000)
    wait_for_records_written(qtbot, window)
    case = workspace.casework.case("2026-0081")
    (taken,) = workspace.casework.searches_of_case(case.id)
    assert "2026-0081 was opened" in taken.origin
    assert [(r.photo_id, r.mark) for r in workspace.casework.reviews(taken.id)] == [(photo, ReviewMark.CLEAR)]
    assert workspace.casework.reviews(search_id) == []


# -- marks follow the photo --------------------------------------------------------------------------
def test_a_photo_marked_earlier_in_the_case_shows_its_mark_in_a_later_search(qtbot, make_window, own_gallery_workspace):
    from app.candidates_model import MARK_COLOURS, EarlierMarkRole, MarkRole

    workspace = own_gallery_workspace
    window = make_window(workspace)
    window.recorder.new_case("2026-0082", "Quay", "ana")
    qtbot.waitUntil(lambda: window.recorder.case is not None, timeout=10000)
    draw_figure_strokes(qtbot, window.canvas)
    first = wait_for_record(qtbot, window)
    marked = window.candidates.candidate(0).photo_id
    excluded = window.candidates.candidate(1).photo_id
    assert window.case_controls.review_row(0, ReviewMark.POSSIBLE, "same scar")
    assert window.case_controls.review_row(1, ReviewMark.EXCLUDED)
    qtbot.waitUntil(lambda: len(window.candidates.marks) == 2, timeout=10000)

    draw_stroke(qtbot, window.canvas, [(60, 60), (90, 140)])  # the sketch changes: a new search of the case
    later = wait_for_record(qtbot, window, other_than=first)
    qtbot.waitUntil(lambda: window.candidates.total() == GALLERY_SIZE, timeout=20000)
    row = {window.candidates.candidate(r).photo_id: r for r in range(window.candidates.total())}

    def card(photo_id, role=Qt.DisplayRole):
        return window.candidates.data(window.candidates.index(row[photo_id]), role)

    qtbot.waitUntil(lambda: card(marked, EarlierMarkRole) is not None, timeout=10000)
    earlier = card(marked, EarlierMarkRole)
    assert (earlier.mark, earlier.search_id, earlier.note) == (ReviewMark.POSSIBLE, first, "same scar")
    assert card(marked, MarkRole) is None  # not a mark of this search
    assert "Earlier in this case: ✓ possible lead" in card(marked, Qt.ToolTipRole)
    assert f"in search {first}" in card(marked, Qt.ToolTipRole) and "same scar" in card(marked, Qt.ToolTipRole)
    assert f"possible lead earlier in search {first}" in card(marked, Qt.AccessibleTextRole)
    assert card(marked, Qt.DecorationRole).cacheKey() != window.thumbnails.get(marked).cacheKey()  # badged
    assert card(excluded, EarlierMarkRole).mark == ReviewMark.EXCLUDED
    dimmed = card(marked, Qt.BackgroundRole)
    assert dimmed is not None and dimmed != MARK_COLOURS[ReviewMark.POSSIBLE]  # unlike a mark of this search

    window.grid.mark_filter.setCurrentIndex(2)  # excluded: the earlier mark counts
    assert [c.photo_id for c in window.candidates.candidates] == [excluded]
    window.grid.mark_filter.setCurrentIndex(0)

    window.grid.view.setCurrentIndex(window.candidates.index(row[marked]))
    window.menus.exclude_action.trigger()  # a new mark: recorded against this search
    qtbot.waitUntil(lambda: card(marked, MarkRole) == ReviewMark.EXCLUDED, timeout=10000)
    assert card(marked, EarlierMarkRole) is None and "Earlier" not in card(marked, Qt.ToolTipRole)
    assert [(r.photo_id, r.mark) for r in workspace.casework.reviews(later)] == [(marked, ReviewMark.EXCLUDED)]
    assert len(workspace.casework.reviews(first)) == 2
    assert workspace.desk.case_marks(window.recorder.case.id)[marked].search_id == later
