"""Casework in the window: a case opened, a drawn search recorded once per burst of strokes, two
candidates reviewed and filtered by mark, a re-rank recorded as a revision, the report exported."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
from app_helpers import GALLERY_SIZE, click, draw_figure_strokes, draw_stroke, when_modal
from PIL import Image
from pypdf import PdfReader
from PySide6.QtWidgets import QMessageBox

from core.casework.records import ReviewMark
from core.casework.report import DISCLAIMER
from core.common.operator import os_account, stored_operator


def test_open_case_draw_review_two_and_export_the_report(qtbot, make_window, tmp_path, inference_model, gallery_dir):
    from app.candidates_model import MarkRole
    from core.workspace import Workspace

    workspace = Workspace(tmp_path / "data", model=inference_model)
    assert workspace.import_paths([gallery_dir]).added == GALLERY_SIZE
    window = make_window(workspace)
    assert window.status_bar.case_label.text() == "No case"

    window.recorder.new_case("2026-0077", "Station assault", "ana", "witness sketch")
    qtbot.waitUntil(lambda: window.recorder.case is not None, timeout=10000)
    assert window.status_bar.case_label.text() == "Case 2026-0077" and "2026-0077" in window.windowTitle()
    assert workspace.desk.operator == "ana"
    assert stored_operator(workspace.data_dir) == "ana"  # the data folder's operator: the command line's too

    draw_figure_strokes(qtbot, window.canvas)  # one burst of two strokes
    qtbot.waitUntil(lambda: window.candidates.total() == GALLERY_SIZE, timeout=60000)
    qtbot.waitUntil(lambda: window.recorder.current_search_id() is not None, timeout=20000)
    search_id = window.recorder.current_search_id()
    case = workspace.casework.case("2026-0077")
    recorded = workspace.casework.searches_of_case(case.id)
    assert [s.id for s in recorded] == [search_id]  # the burst is one record
    assert [c.photo_id for c in recorded[0].latest.candidates] == [c.photo_id for c in window.candidates.candidates]
    seen = np.asarray(Image.open(io.BytesIO(recorded[0].query_png)).convert("RGB"))
    assert np.array_equal(seen, window.document.to_array())  # the pixels the model was given

    first, second = window.candidates.candidate(0), window.candidates.candidate(1)
    window.grid.view.setCurrentIndex(window.candidates.index(0))
    window.menus.possible_action.trigger()
    assert window.case_controls.review_row(1, ReviewMark.EXCLUDED, "taller than described")
    qtbot.waitUntil(lambda: len(window.candidates.marks) == 2, timeout=10000)
    assert window.candidates.data(window.candidates.index(0), MarkRole) == ReviewMark.POSSIBLE
    assert "excluded" in window.candidates.data(window.candidates.index(1))

    window.grid.mark_filter.setCurrentIndex(1)  # possible leads
    assert [c.photo_id for c in window.candidates.candidates] == [first.photo_id]
    window.grid.mark_filter.setCurrentIndex(2)  # excluded
    assert [c.photo_id for c in window.candidates.candidates] == [second.photo_id]
    window.grid.mark_filter.setCurrentIndex(3)  # not reviewed
    assert window.candidates.total() == GALLERY_SIZE - 2
    window.grid.mark_filter.setCurrentIndex(0)

    window.grid.top_k.setValue(5)  # a re-rank: a revision of the same search, not a new one
    qtbot.waitUntil(lambda: len(workspace.casework.search(search_id).revisions) == 2, timeout=20000)
    assert len(workspace.casework.searches_of_case(case.id)) == 1
    assert workspace.casework.search(search_id).latest.top_k == 5

    report = tmp_path / "report.pdf"
    window.recorder.report_top = 3  # Settings: "Report: top N per search"
    with qtbot.waitSignal(window.recorder.reportWritten, timeout=60000):
        window.recorder.export_report(str(report))
    text = " ".join("\n".join(p.extract_text() for p in PdfReader(report).pages).split())
    assert "2026-0077" in text and "Station assault" in text
    account = f"(OS account: {os_account()})" if os_account() != "ana" else ""
    assert f"Possible lead: ana {account}" in text and f"Excluded: ana {account}" in text
    assert "taller than described" in text
    assert " ".join(DISCLAIMER.split()) in text
    assert "Candidates: 3 of 5 shown (the top 3 and every reviewed one)" in text
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", report, tmp_path / "page"], check=True)
        assert Image.open(tmp_path / "page-1.png").size[0] > 100
    assert workspace.casework.verify_audit().ok
    window.document.undo_stack.setClean()  # the test's drawing is not work to save
    window.close()
    workspace.close()


def test_a_search_over_an_imported_scan_keeps_the_scan_file(qtbot, make_window, tmp_path, inference_model, gallery_dir):

    from PIL import ImageDraw

    from core.workspace import Workspace

    page = Image.new("L", (400, 600), 175)
    ImageDraw.Draw(page).rectangle([150, 150, 250, 400], outline=90, width=6)
    page.save(tmp_path / "scan.jpg")
    workspace = Workspace(tmp_path / "data", model=inference_model)
    workspace.import_paths([gallery_dir])
    window = make_window(workspace)

    window.sketch_files.import_scan(tmp_path / "scan.jpg")
    qtbot.waitUntil(lambda: window.document.background is not None, timeout=10000)
    draw_stroke(qtbot, window.canvas, [(100, 100), (120, 160)])  # drawn over it
    qtbot.waitUntil(lambda: window.recorder.current_search_id() is not None, timeout=30000)
    search_id = window.recorder.current_search_id()
    kind, data = workspace.casework.query_source(search_id)
    recorded = workspace.casework.search(search_id)
    assert recorded.case_id is None  # no case open: recorded under no case
    assert recorded.query_name.startswith("drawing over imported scan ") and "scan.jpg" in recorded.query_name
    with workspace.catalogue.read_connection() as c:
        from sqlalchemy import text

        stored = c.execute(text("SELECT query_file FROM searches WHERE id = :i"), {"i": search_id}).scalar_one()
    assert stored == (tmp_path / "scan.jpg").read_bytes()  # the scan file as it was read
    seen = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(seen, window.document.to_array())  # and the pixels searched, for replay

    window.document.clear()  # a new drawing without the scan records no scan
    draw_stroke(qtbot, window.canvas, [(100, 100), (140, 200)])
    qtbot.waitUntil(lambda: window.recorder.current_search_id() not in (None, search_id), timeout=30000)
    assert workspace.casework.search(window.recorder.current_search_id()).query_name == "drawing"
    window.document.undo_stack.setClean()  # the test's drawing is not work to save
    window.close()
    workspace.close()


def test_after_the_case_is_closed_a_mark_asks_and_goes_to_a_record_under_no_case(
    qtbot, make_window, tmp_path, inference_model, gallery_dir
):
    from core.workspace import Workspace

    workspace = Workspace(tmp_path / "data", model=inference_model)
    workspace.import_paths([gallery_dir])
    window = make_window(workspace)
    window.recorder.new_case("2026-0078", "Bridge", "ana")
    qtbot.waitUntil(lambda: window.recorder.case is not None, timeout=10000)
    draw_figure_strokes(qtbot, window.canvas)
    qtbot.waitUntil(lambda: window.recorder.current_search_id() is not None, timeout=60000)
    in_case = window.recorder.current_search_id()

    window.recorder.close_case()
    qtbot.waitUntil(lambda: window.recorder.case is None, timeout=10000)
    asked = []
    when_modal(QMessageBox, click("Mark without a case"), asked)
    photo = window.candidates.candidate(0).photo_id
    assert window.case_controls.review_row(0, ReviewMark.POSSIBLE, "")  # asked first: no case is open
    qtbot.waitUntil(lambda: window.recorder.current_search_id() not in (None, in_case), timeout=10000)
    qtbot.waitUntil(lambda: bool(window.candidates.marks), timeout=10000)
    taken = workspace.casework.search(window.recorder.current_search_id())
    assert len(asked) == 1 and taken.case_id is None  # the ranking on screen, taken over under no case
    assert taken.origin == f"taken over from search {in_case} (case 2026-0078): marked without a case"
    assert [(r.photo_id, r.mark) for r in workspace.casework.reviews(taken.id)] == [(photo, ReviewMark.POSSIBLE)]
    assert workspace.casework.reviews(in_case) == []  # the closed case is left as it was

    window.grid.top_k.setValue(7)  # a re-rank of the ranking on screen: a revision, under no case
    qtbot.waitUntil(lambda: len(workspace.casework.search(taken.id).revisions) == 2, timeout=20000)
    assert len(workspace.casework.search(in_case).revisions) == 1
    assert workspace.casework.verify_audit().ok
    window.document.undo_stack.setClean()
    window.close()
    workspace.close()


def test_an_undo_back_to_an_imported_scan_is_recorded_as_that_scan(
    qtbot, make_window, tmp_path, inference_model, gallery_dir
):
    from PIL import ImageDraw

    from core.workspace import Workspace

    for name, box in (("first.png", [150, 150, 250, 400]), ("second.png", [120, 100, 280, 500])):
        page = Image.new("L", (400, 600), 230)
        ImageDraw.Draw(page).rectangle(box, outline=40, width=6)
        page.save(tmp_path / name)
    workspace = Workspace(tmp_path / "data", model=inference_model)
    workspace.import_paths([gallery_dir])
    window = make_window(workspace)

    def searched_name(after: int | None) -> str:
        qtbot.waitUntil(lambda: window.recorder.current_search_id() not in (None, after), timeout=30000)
        return workspace.casework.search(window.recorder.current_search_id()).query_name

    window.sketch_files.import_scan(tmp_path / "first.png")
    qtbot.waitUntil(lambda: window.document.background is not None, timeout=10000)
    first = searched_name(None)
    assert first.startswith("imported scan ") and "first.png" in first  # searched as imported: no strokes
    window.sketch_files.import_scan(tmp_path / "second.png")
    qtbot.waitUntil(lambda: window.document.undo_stack.count() == 2, timeout=10000)
    second = searched_name(window.recorder.current_search_id())
    assert "second.png" in second
    window.document.undo_stack.undo()  # back to the first scan
    again = searched_name(window.recorder.current_search_id())
    assert again.startswith("imported scan ") and "first.png" in again
    draw_stroke(qtbot, window.canvas, [(100, 100), (120, 160)])
    assert searched_name(window.recorder.current_search_id()).startswith("drawing over imported scan ")
    window.document.undo_stack.setClean()
    window.close()
    workspace.close()


def check_now(workspace):
    return workspace.casework.verify_audit()


def test_the_audit_log_is_exported_from_the_window_and_a_damaged_log_is_said_aloud(
    qtbot, make_window, tmp_path, inference_model, gallery_dir, monkeypatch
):
    import json
    import os
    import sqlite3

    from PySide6.QtWidgets import QFileDialog

    from core.workspace import Workspace

    workspace = Workspace(tmp_path / "data", model=inference_model)
    assert workspace.import_paths([gallery_dir]).added == GALLERY_SIZE
    window = make_window(workspace)
    window.recorder.new_case("2026-0101", "Audit", "ana", "")
    qtbot.waitUntil(lambda: window.recorder.case is not None, timeout=10000)
    draw_figure_strokes(qtbot, window.canvas)
    qtbot.waitUntil(lambda: window.recorder.current_search_id() is not None, timeout=30000)

    chosen = [tmp_path / "out" / "audit.json", tmp_path / "out" / "audit-damaged.json"]
    chosen[0].parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *_: (str(chosen.pop(0)), ""))
    with qtbot.waitSignal(window.recorder.auditExported, timeout=30000) as written:
        window.menus.export_audit_action.trigger()
    path, check = written.args
    document = json.loads(open(path, encoding="utf-8").read())
    assert check.ok and document["verified"] == {"ok": True, "problems": []}
    entries = workspace.casework.verify_audit().entries
    assert check.entries == entries >= 3  # the import, the case, the search at least
    assert [e["kind"] for e in document["entries"]][-1] == "search"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert "verified" in window.status_bar.currentMessage() and path in window.status_bar.currentMessage()

    # someone who holds the catalogue file edits an entry, with plain sqlite3
    with sqlite3.connect(workspace.catalogue.path) as db:
        db.execute("DROP TRIGGER audit_log_no_update")
        db.execute("UPDATE audit_log SET operator = 'eve' WHERE seq = 2")
    with qtbot.waitSignal(window.errorShown, timeout=30000) as shown:
        window.menus.export_audit_action.trigger()
    damaged_path = tmp_path / "out" / "audit-damaged.json"
    assert "does not verify" in shown.args[0] and str(damaged_path) in shown.args[0]
    damaged = json.loads(damaged_path.read_text(encoding="utf-8"))
    # written all the same, and the file names what is wrong (the first problem of a broken chain)
    assert damaged["verified"]["ok"] is False and damaged["verified"]["problems"] == [check_now(workspace).problem]
