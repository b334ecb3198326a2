"""What a first-time user meets: an empty gallery says what to do, candidate cards say which photo
they show, unsaved drawings are not lost, quitting is immediate, settings show the folder in use,
attribute sheets import from the window, and a saved correction records only what the user changed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from app_helpers import draw_figure_strokes, draw_stroke, wait_for_results
from PySide6.QtCore import QRect, Qt, QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from app.attribute_text import local_time
from core.common.operator import os_account
from core.common.types import AttributeSource, AttributeValue, Candidate


def answer_next_question(qtbot, button, asked: list[str]) -> None:
    """Click ``button`` in the next modal message box, noting its text in ``asked``."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            asked.append(box.text())
            box.button(button).click()
        else:
            QTimer.singleShot(20, click)

    QTimer.singleShot(0, click)


# -- integrity: a saved correction ------------------------------------------------------------------
@pytest.fixture
def predicted_workspace(tmp_path, model_dir):
    """A gallery indexed with the bundled model, whose attribute head predicts every attribute."""
    from app.self_test import write_figures
    from core.workspace import Workspace

    workspace = Workspace(tmp_path / "data", model_dir, "cpu")
    assert workspace.import_paths([write_figures(tmp_path / "figures", 3)[0].parent]).added == 3
    yield workspace
    workspace.close()


def test_a_correction_stores_only_the_changed_values_with_who_and_when(qtbot, make_window, predicted_workspace):
    window = make_window(predicted_workspace)
    draw_figure_strokes(qtbot, window.canvas)
    wait_for_results(qtbot, window, 3)
    dialog = window.open_comparison(0)
    qtbot.waitUntil(lambda: dialog.record is not None, timeout=10000)
    before = dict(dialog.record.attributes)
    assert len(before) == len(predicted_workspace.schema.attributes) >= 3
    assert all(a.source == AttributeSource.MODEL for a in before.values())

    changed = {}
    for name in list(before)[:2]:  # the user corrects two values; the others stay unchecked guesses
        combo = dialog.attribute_combos[name]
        other = next(v for v in predicted_workspace.schema.spec(name).values if v != before[name].value)
        combo.setCurrentIndex(combo.findData(other))
        changed[name] = other
    assert dialog.corrections() == changed
    qtbot.mouseClick(dialog.save_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.status.text() == "Corrections saved.", timeout=10000)

    after = predicted_workspace.photo(dialog.record.id).attributes
    for name, value in changed.items():
        stated = after[name]
        assert (stated.value, stated.source, stated.set_by) == (value, AttributeSource.MANUAL, os_account())
        assert stated.set_at is not None
        shown = dialog.attribute_labels[name].text()
        assert f"set by hand by {os_account()}, {local_time(stated.set_at)}" in shown  # who and when
    for name in set(before) - set(changed):
        assert after[name] == before[name]  # still the model's guess, with its own confidence
        assert "predicted by the model" in dialog.attribute_labels[name].text()
    assert window.candidates.candidate(0).attributes[next(iter(changed))].source == AttributeSource.MANUAL
    dialog.close()


# -- a first-time user --------------------------------------------------------------------------------
def test_an_empty_gallery_says_what_to_do_with_the_button_there(
    qtbot, make_window, open_workspace, tmp_path, monkeypatch
):
    from app.self_test import write_figures

    window = make_window(open_workspace())
    qtbot.waitUntil(window.grid.gallery_is_empty, timeout=10000)
    assert window.grid.empty_import_button.isVisible() and window.grid.empty_import_button.isEnabled()
    assert not window.grid.view.isVisible()

    folder = write_figures(tmp_path / "first photos", 2)[0].parent
    # the user picks the folder in the (native) folder dialog
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folder))
    qtbot.mouseClick(window.grid.empty_import_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not window.grid.gallery_is_empty(), timeout=60000)
    assert window.grid.view.isVisible() and window.status_bar.gallery_label.text() == "Gallery: 2 photo(s)"
    window.gallery_jobs.job_dialog.close()


def test_candidate_cards_name_the_photo_and_tooltips_say_where_values_come_from(qtbot, window):
    from app.candidates_model import THUMB_SIZE, CandidatesModel

    moment = __import__("datetime").datetime(2026, 11, 30, 6, 0, 0)
    candidate = Candidate(
        rank=1,
        photo_id=12,
        path="/gallery/people/0012_front.jpg",
        score=0.87312,
        attributes={
            "bag": AttributeValue("no", 0.62, AttributeSource.MODEL),
            "gender": AttributeValue("female", 1.0, AttributeSource.MANUAL, "j.doe", moment),
            "hair": AttributeValue("long", 1.0, AttributeSource.IMPORTED),
        },
    )
    model = CandidatesModel(window.thumbnails)
    model.set_candidates([candidate])
    index = model.index(0)
    lines = model.data(index).split("\n")
    assert lines[:2] == ["#1 · score 0.873", "0012_front.jpg · id 12"]
    assert lines[2] == "female ~no bag 62% long"
    tooltip = model.data(index, Qt.ToolTipRole)
    assert "photo id 12" in tooltip and "/gallery/people/0012_front.jpg" in tooltip
    assert "predicted by the model, 62% confident" in tooltip
    assert "set by hand by j.doe, 2026-11-30" in tooltip
    assert "imported (who and when were not recorded)" in tooltip

    # the card's three lines fit under the thumbnail in the grid, at the window's font
    grid = window.grid.view.gridSize()
    text = window.grid.view.fontMetrics().boundingRect(
        QRect(0, 0, grid.width(), 1000), Qt.TextWordWrap, model.data(index)
    )
    assert text.width() <= grid.width() and THUMB_SIZE.height() + text.height() <= grid.height()


def test_quitting_asks_before_an_unsaved_drawing_is_lost(qtbot, window, tmp_path):
    asked: list[str] = []
    draw_stroke(qtbot, window.canvas, [(100, 100), (140, 300)])
    answer_next_question(qtbot, QMessageBox.Cancel, asked)
    assert not window.close()  # Ctrl+Q is the quit action, which closes the window
    assert window.isVisible() and len(asked) == 1 and "quitting" in asked[0]

    assert window.sketch_files.save_sketch(tmp_path / "kept.json")  # once saved, nothing is lost: no question
    assert window.close() and len(asked) == 1


def test_an_imported_scan_left_as_it_is_needs_no_saving_but_strokes_over_it_do(qtbot, window, tmp_path):
    from PIL import Image, ImageDraw

    page = Image.new("L", (400, 600), 175)
    ImageDraw.Draw(page).rectangle([150, 150, 250, 400], outline=90, width=6)
    page.save(tmp_path / "scan.jpg")
    window.sketch_files.import_scan(tmp_path / "scan.jpg")
    qtbot.waitUntil(lambda: window.document.background is not None, timeout=10000)
    assert not window.document.has_unsaved_work()  # the scan is on disk: nothing to lose
    asked: list[str] = []
    assert window.sketch_files.confirm_discard("opening another sketch") and asked == []

    draw_stroke(qtbot, window.canvas, [(100, 100), (140, 300)])  # drawn since the import: work to save
    answer_next_question(qtbot, QMessageBox.Cancel, asked)
    assert not window.close()
    assert len(asked) == 1 and "quitting" in asked[0]


def test_quitting_with_discard_closes(qtbot, window):
    asked: list[str] = []
    draw_stroke(qtbot, window.canvas, [(100, 100), (140, 300)])
    answer_next_question(qtbot, QMessageBox.Discard, asked)
    window.menus.quit_action.trigger()
    assert len(asked) == 1 and not window.isVisible()


def test_opening_a_scan_or_sketch_asks_before_replacing_the_drawing(qtbot, window, monkeypatch):
    opened = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: opened.append(args) or ("", ""))
    draw_stroke(qtbot, window.canvas, [(100, 100), (140, 300)])
    strokes = list(window.document.strokes)
    for action, doing in (
        (window.menus.import_sketch_action, "importing a scan"),
        (window.menus.open_sketch_action, "opening"),
    ):
        asked: list[str] = []
        answer_next_question(qtbot, QMessageBox.Cancel, asked)
        action.trigger()
        assert len(asked) == 1 and doing in asked[0]
    assert opened == [] and window.document.strokes == strokes  # cancelled: no file dialog, nothing replaced
    assert window.menus.import_sketch_action.shortcut().toString() == "Ctrl+O"


def test_quitting_does_not_wait_for_running_work(qtbot, window):
    started, release = threading.Event(), threading.Event()

    def slow_job(task):
        started.set()
        release.wait(60)  # e.g. an import batch or a model load that ignores the cancel flag for a while
        return "done"

    task = window.runner.submit(slow_job, pool="long", name="slow job")
    assert started.wait(10)
    assert window.close()
    # closed, the job told to stop, and it was not waited for: it is still running now
    assert not window.isVisible() and task.cancel.is_set()
    assert not release.is_set() and window.runner.active() == 1
    release.set()
    qtbot.waitUntil(lambda: window.runner.active() == 0, timeout=10000)


def test_settings_show_the_data_folder_in_use(qtbot, settings, tmp_path, untrained_model_dir):
    from app.main_window import LaunchOptions, MainWindow

    folder = tmp_path / "case-1234"
    window = MainWindow(LaunchOptions(data_dir=folder, model_dir=untrained_model_dir, device="cpu"), settings)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.workspaceReady, timeout=60000):
        window.show()
    workspace = window.workspace
    seen = {}

    def inspect_and_accept() -> None:
        dialog = window._settings_dialog
        if dialog is None or not dialog.isVisible():
            QTimer.singleShot(20, inspect_and_accept)
            return
        seen["folder"], seen["note"] = dialog.data_dir.text(), dialog.in_use_note.text()
        dialog.accept()

    QTimer.singleShot(0, inspect_and_accept)
    window.edit_settings()
    assert seen == {"folder": str(folder), "note": "In use now (from --data-dir)."}
    assert window.preferences.data_dir == ""  # accepting unchanged does not save --data-dir as the setting
    assert window.workspace is workspace  # nor reopen the gallery
    window.close()


def test_save_dialog_opens_in_documents_then_in_the_last_folder_used(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtCore import QStandardPaths

    documents = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation)
    expected = documents if documents and Path(documents).is_dir() else str(Path.home())
    assert window.sketch_files.sketch_folder() == expected
    draw_figure_strokes(qtbot, window.canvas)
    (tmp_path / "case").mkdir()
    assert window.sketch_files.save_sketch(tmp_path / "case" / "suspect.json")
    assert window.sketch_files.sketch_folder() == str(tmp_path / "case")

    suggested = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda _w, _t, path, _f: suggested.append(path) or ("", ""))
    window.menus.save_sketch_action.trigger()
    assert suggested == [str(tmp_path / "case" / "sketch.json")]


def test_each_kind_of_file_dialog_opens_in_the_folder_last_used_for_it(
    qtbot, make_window, own_gallery_workspace, tmp_path, monkeypatch
):
    from PySide6.QtCore import QStandardPaths

    documents = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation)
    default = documents if documents and Path(documents).is_dir() else str(Path.home())
    window = make_window(own_gallery_workspace)
    window.recorder.new_case("2026-0101", "Kiosk", "ana")
    qtbot.waitUntil(lambda: window.recorder.case is not None, timeout=10000)
    scans, reports, photos = (tmp_path / name for name in ("scans", "reports", "photos"))
    for folder in (scans, reports, photos / "camera-1"):
        folder.mkdir(parents=True)
    asked: list[tuple[str, str]] = []
    answers = {
        "Import scanned sketch": str(scans / "scan.png"),
        "Export case report": str(reports / "case-2026-0101.pdf"),
        "Import photos from folder": str(photos / "camera-1"),
    }

    def file_dialog(_parent, title, where, *_filters, **_options):
        asked.append((title, where))
        return (answers.get(title, ""), "") if "folder" not in title else answers[title]

    for name in ("getOpenFileName", "getSaveFileName", "getExistingDirectory"):
        monkeypatch.setattr(QFileDialog, name, file_dialog)
    monkeypatch.setattr(window.sketch_files, "import_scan", lambda path: None)
    monkeypatch.setattr(window.recorder, "export_report", lambda path: None)
    monkeypatch.setattr(window.gallery_jobs, "start_import", lambda roots: None)

    def first_use() -> None:
        window.menus.import_sketch_action.trigger()
        window.menus.export_report_action.trigger()
        window.menus.import_folder_action.trigger()
        window.menus.save_sketch_action.trigger()

    first_use()
    assert asked == [
        ("Import scanned sketch", default),
        ("Export case report", str(Path(default) / "case-2026-0101.pdf")),  # never the working folder
        ("Import photos from folder", default),
        ("Save sketch", str(Path(default) / "sketch.json")),  # a scan opened elsewhere is no sketch folder
    ]
    asked.clear()
    first_use()
    assert asked == [
        ("Import scanned sketch", str(scans)),
        ("Export case report", str(reports / "case-2026-0101.pdf")),
        ("Import photos from folder", str(photos)),  # beside the folder imported last
        ("Save sketch", str(Path(default) / "sketch.json")),
    ]


def test_file_menu_imports_a_sheet_keyed_by_person(qtbot, make_window, open_workspace, tmp_path):
    from tests.conftest import draw_person

    folder = tmp_path / "people"
    folder.mkdir()
    for i, name in enumerate(("0012_a.jpg", "0012_b.jpg", "0047_a.jpg")):
        draw_person(i).save(folder / name)
    workspace = open_workspace()
    workspace.import_paths([folder])
    window = make_window(workspace)
    assert window.menus.import_attributes_action in window.menuBar().actions()[0].menu().actions()
    sheet = tmp_path / "people.csv"
    sheet.write_text("id,gender\n0012,female\n0047,male\n")

    window.gallery_jobs.import_attribute_sheet(sheet, "id", "([0-9]+")  # the command line's error, in the window
    qtbot.waitUntil(lambda: "not a regular expression" in window.last_error, timeout=10000)

    window.gallery_jobs.import_attribute_sheet(sheet, "id", r"^(\d+)_")
    qtbot.waitUntil(lambda: "Set 3 attribute value(s)" in window.statusBar().currentMessage(), timeout=10000)
    records = {Path(r.path).name: r.attributes["gender"] for r in map(workspace.photo, workspace.photo_ids())}
    assert {n: (a.value, a.source) for n, a in records.items()} == {
        "0012_a.jpg": ("female", AttributeSource.IMPORTED),
        "0012_b.jpg": ("female", AttributeSource.IMPORTED),
        "0047_a.jpg": ("male", AttributeSource.IMPORTED),
    }
