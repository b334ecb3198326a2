"""Filters re-rank without re-embedding; the comparison view saves corrections; the import dialog
imports a folder and reports bad files; the gallery panel lists folders."""

from __future__ import annotations

import pytest
from app_helpers import GALLERY_SIZE, draw_figure_strokes, wait_for_results
from PySide6.QtCore import Qt

from core.common.types import AttributeSource


def test_filters_narrow_the_grid_without_re_embedding(qtbot, make_window, own_gallery_workspace, monkeypatch):
    gallery_workspace = own_gallery_workspace
    window = make_window(gallery_workspace)
    ids = gallery_workspace.photo_ids().tolist()
    women = set(ids[:3])
    for photo_id in ids:
        gallery_workspace.gallery.set_attribute(photo_id, "gender", "female" if photo_id in women else "male")
    assert "gender" in window.filters.combos

    draw_figure_strokes(qtbot, window.canvas)
    wait_for_results(qtbot, window, GALLERY_SIZE)
    embedded = []
    original = gallery_workspace.embed_sketches
    monkeypatch.setattr(gallery_workspace, "embed_sketches", lambda s: embedded.append(1) or original(s))

    window.filters.set_filter("gender", "female")
    wait_for_results(qtbot, window, 3)
    assert {c.photo_id for c in window.candidates.candidates} == women
    assert "filtered" in window.grid.search_state.text()
    first = window.candidates.index(0)
    assert "female" in window.candidates.data(first)  # a manual value, shown without "~"
    assert "<b>female</b>" in window.candidates.data(first, Qt.ToolTipRole)

    window.filters.set_filter("gender", "male")
    wait_for_results(qtbot, window, GALLERY_SIZE - 3)
    window.filters.reset()
    wait_for_results(qtbot, window, GALLERY_SIZE)
    window.grid.top_k.setValue(2)
    wait_for_results(qtbot, window, 2)
    assert embedded == []  # filters and K re-rank the kept embedding


def test_predicted_values_are_told_apart_from_manual_ones():
    from app.candidates_model import format_attribute
    from core.common.types import AttributeValue

    assert format_attribute(AttributeValue("female", 0.73, AttributeSource.MODEL)) == "~female 73%"
    assert format_attribute(AttributeValue("female", 0.73, AttributeSource.MODEL), rich=True).startswith("<i>")
    assert format_attribute(AttributeValue("male", 1.0, AttributeSource.MANUAL), rich=True) == "<b>male</b>"


def test_captions_read_without_attribute_names():
    from app.candidates_model import caption
    from core.common.types import AttributeValue

    model = lambda value, confidence: AttributeValue(value, confidence, AttributeSource.MODEL)  # noqa: E731
    attributes = {
        "age": model("adult", 0.86),
        "backpack": model("no", 0.85),
        "bag": model("yes", 0.6),
        "upper_color": model("white", 0.7),
        "gender": AttributeValue("female", 1.0, AttributeSource.MANUAL),
    }
    assert caption(attributes) == "female ~white top 70% ~no backpack 85%"
    assert caption({"hat": model("no", 0.9), "age": model("teen", 0.5)}) == "~no hat 90% ~teen 50%"
    assert caption({}) == ""


def test_comparison_view_shows_the_photo_and_saves_a_correction(qtbot, make_window, own_gallery_workspace):
    gallery_workspace = own_gallery_workspace
    window = make_window(gallery_workspace)
    draw_figure_strokes(qtbot, window.canvas)
    wait_for_results(qtbot, window, GALLERY_SIZE)
    dialog = window.open_comparison(0)  # closed with the window
    qtbot.waitUntil(lambda: dialog.record is not None, timeout=10000)
    candidate = window.candidates.candidate(0)
    assert dialog.record.id == candidate.photo_id
    assert dialog.path_label.text() == candidate.path
    assert dialog.sha_label.text() == dialog.record.sha256
    assert not dialog.photo_view.item.pixmap().isNull()
    assert not dialog.sketch_view.item.pixmap().isNull()

    combo = dialog.attribute_combos["age"]
    combo.setCurrentIndex(combo.findData("senior"))
    assert dialog.save_button.isEnabled()
    qtbot.mouseClick(dialog.save_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.status.text() == "Corrections saved.", timeout=10000)
    saved = gallery_workspace.catalogue.photo(candidate.photo_id).attributes["age"]
    assert (saved.value, saved.source) == ("senior", AttributeSource.MANUAL)
    assert window.candidates.candidate(0).attributes["age"].value == "senior"
    assert not dialog.save_button.isEnabled()

    dialog.activateWindow()
    qtbot.keyClick(dialog, Qt.Key_Right)
    assert dialog.row == 1
    qtbot.waitUntil(
        lambda: dialog.record is not None and dialog.record.id == window.candidates.candidate(1).photo_id, timeout=10000
    )
    qtbot.keyClick(dialog, Qt.Key_Left)
    assert dialog.row == 0
    dialog.close()


def test_import_dialog_imports_a_folder_and_reports_a_bad_file(qtbot, make_window, open_workspace, tmp_path):
    from app.self_test import write_figures

    folder = tmp_path / "new photos"
    write_figures(folder, 3, start=100)
    (folder / "broken.jpg").write_bytes(b"")
    workspace = open_workspace()
    window = make_window(workspace)

    dialog = window.gallery_jobs.start_import([folder])
    qtbot.waitUntil(lambda: not dialog.running(), timeout=60000)
    summary = dialog.summary
    assert summary.added == 3 and not summary.cancelled
    assert [f.path for f in summary.failed] == [str(folder / "broken.jpg")]
    assert dialog.failures.topLevelItemCount() == 1
    assert dialog.failures.topLevelItem(0).text(1) == summary.failed[0].reason
    assert "3 added" in dialog.counts.text() and "1 failed" in dialog.counts.text()

    tree = window.gallery.tree
    qtbot.waitUntil(lambda: tree.topLevelItemCount() == 1 and tree.topLevelItem(0).text(1) == "3", timeout=10000)
    assert tree.topLevelItem(0).text(0) == str(folder)
    qtbot.waitUntil(lambda: window.status_bar.gallery_label.text() == "Gallery: 3 photo(s)", timeout=10000)
    dialog.close()

    window.gallery_jobs.remove_folder(str(folder))
    qtbot.waitUntil(lambda: tree.topLevelItemCount() == 0, timeout=10000)
    assert workspace.catalogue.count_photos() == 0


@pytest.fixture
def paused_after_first_commit(monkeypatch):
    """Make a workspace's imports (two photos a batch) stop, once a batch is committed, until
    ``resume`` is set (at the latest when the test ends); ``reports`` holds each progress report."""
    import threading

    paused, resume, reports = threading.Event(), threading.Event(), []

    def pause(workspace):
        _pause_imports(workspace, monkeypatch, paused, resume, reports)
        return paused, resume, reports

    yield pause
    resume.set()


def _pause_imports(workspace, monkeypatch, paused, resume, reports) -> None:
    real = workspace.import_paths

    def import_paths(roots, progress=None, cancel=None):
        def report(progress_now):
            reports.append(progress_now)
            progress(progress_now)
            if progress_now.added and not paused.is_set():
                paused.set()
                resume.wait(60)

        return real(roots, progress=report, cancel=cancel, batch_size=2)

    monkeypatch.setattr(workspace, "import_paths", import_paths)


def test_an_import_names_its_duplicates_and_the_panel_follows_its_batches_and_failures(
    qtbot, make_window, open_workspace, tmp_path, paused_after_first_commit
):
    from PySide6.QtWidgets import QApplication

    from app.self_test import write_figures

    folder = tmp_path / "camera"
    figures = write_figures(folder, 16)
    copy = folder / "zz-copy.jpg"
    copy.write_bytes(figures[0].read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a photo")
    workspace = open_workspace()
    window = make_window(workspace)
    paused, resume, reports = paused_after_first_commit(workspace)

    dialog = window.gallery_jobs.start_import([folder])
    assert paused.wait(60)
    tree = window.gallery.tree
    committed = str(reports[-1].added)
    # the import is still running, and the panel already counts the photos committed so far
    qtbot.waitUntil(lambda: tree.topLevelItemCount() == 1 and tree.topLevelItem(0).text(1) == committed, timeout=10000)
    assert dialog.running() and int(committed) < 16
    resume.set()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=60000)

    summary = dialog.summary
    assert (summary.added, summary.unchanged, len(summary.failed)) == (16, 0, 1)
    assert [(d.path, d.of) for d in summary.duplicates] == [(str(copy), str(figures[0]))]
    assert "16 added, 0 updated, 0 unchanged, 1 duplicate(s), 1 failed" in dialog.counts.text()
    rows = [(dialog.failures.topLevelItem(i).text(0), dialog.failures.topLevelItem(i).text(1)) for i in range(2)]
    assert rows == [(str(folder / "broken.jpg"), summary.failed[0].reason), (str(copy), f"duplicate of {figures[0]}")]
    dialog.copy_button.click()
    assert QApplication.clipboard().text().splitlines() == [f"{path}\t{why}" for path, why in rows]

    headers = [tree.headerItem().text(i) for i in range(tree.columnCount())]
    assert headers == ["Folder", "Photos", "Missing", "Failed"]
    # the broken file, as the catalogue recorded it at the import's end
    qtbot.waitUntil(lambda: [tree.topLevelItem(0).text(i) for i in (1, 3)] == ["16", "1"], timeout=10000)
    assert "1 failed" in window.gallery.total.text()
    dialog.close()


def test_cancel_leaves_the_progress_bar_where_the_import_stopped(
    qtbot, make_window, open_workspace, tmp_path, paused_after_first_commit
):
    from PySide6.QtWidgets import QDialogButtonBox

    from app.self_test import write_figures

    folder = tmp_path / "camera"
    write_figures(folder, 16)
    workspace = open_workspace()
    window = make_window(workspace)
    paused, resume, reports = paused_after_first_commit(workspace)
    dialog = window.gallery_jobs.start_import([folder])
    assert paused.wait(60)
    bar = dialog.progress
    qtbot.waitUntil(lambda: bar.value() == reports[-1].done, timeout=10000)
    dialog.buttons.button(QDialogButtonBox.Cancel).click()
    resume.set()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=60000)

    assert dialog.summary.cancelled and dialog.summary.added < 16
    assert (bar.maximum(), bar.value()) == (16, reports[-1].done)  # where it stopped, not 100%
    assert bar.value() < 16 and "cancelled" in bar.text().lower()
    assert "Import cancelled" in dialog.counts.text()
    dialog.close()


def test_a_gallery_imported_with_another_model_is_indexed_on_opening(
    qtbot, make_window, open_workspace, other_model, tmp_path
):
    from app.import_dialog import IndexingDialog
    from app.self_test import write_figures

    folder = tmp_path / "photos"
    write_figures(folder, 4)
    assert open_workspace(tmp_path / "data").import_paths([folder]).added == 4
    workspace = open_workspace(tmp_path / "data", model=other_model)
    window = make_window(workspace)

    qtbot.waitUntil(lambda: isinstance(window.gallery_jobs.job_dialog, IndexingDialog), timeout=10000)
    dialog = window.gallery_jobs.job_dialog
    assert "indexing 4 photo(s)" in dialog.heading.text()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=60000)
    assert dialog.summary.updated == 4 and not dialog.summary.failed
    assert "4 photo(s) indexed" in dialog.counts.text()
    assert workspace.gallery.count_unembedded() == 0 and workspace.verify().ok
    draw_figure_strokes(qtbot, window.canvas)
    wait_for_results(qtbot, window, 4)
    dialog.close()


def test_cancelling_an_import_reports_it(qtbot, make_window, open_workspace, tmp_path):
    from app.import_dialog import ImportDialog
    from app.self_test import write_figures

    folder = tmp_path / "more"
    write_figures(folder, 2)
    window = make_window(open_workspace())
    window.runner.pools["long"].setMaxThreadCount(1)
    blocker = window.runner.submit(lambda task: task.cancel.wait(5), pool="long")  # keeps the import queued
    dialog = ImportDialog(window.runner, window.workspace, [str(folder)], window)
    qtbot.addWidget(dialog)
    dialog.cancel()
    blocker.cancel.set()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=30000)
    assert dialog.summary.cancelled and dialog.summary.added == 0
    assert "cancelled" in dialog.counts.text()


def test_status_bar_names_model_device_and_gallery(qtbot, window):
    assert window.status_bar.model_label.text().startswith("Model: ")
    # the device and the runtime the loaded model runs on (this fixture's model has no ONNX export)
    assert window.workspace.model.runtime == "torch" and window.status_bar.device_label.text() == "CPU · PyTorch"
    qtbot.waitUntil(lambda: window.status_bar.gallery_label.text().startswith("Gallery: "), timeout=10000)


def test_a_damaged_thumbnail_keeps_its_placeholder_without_an_unexpected_error(
    qtbot, make_window, own_gallery_workspace, caplog
):
    """A stored thumbnail that cannot be decoded (a damaged catalogue row) is an expected data
    problem: its card keeps the placeholder, and nothing is logged as an unexpected error."""
    import sqlite3

    workspace = own_gallery_workspace
    photo_id = int(workspace.photo_ids()[0])
    with sqlite3.connect(workspace.catalogue.path) as db:
        db.execute("UPDATE photos SET thumbnail = ? WHERE id = ?", (b"not an image", photo_id))
    window = make_window(workspace)
    with caplog.at_level("ERROR"):
        assert window.thumbnails.get(photo_id) is window.thumbnails.placeholder
        qtbot.waitUntil(lambda: photo_id in window.thumbnails._failed, timeout=10000)
    assert window.thumbnails.get(photo_id) is window.thumbnails.placeholder
    assert "unexpected error" not in caplog.text


def test_the_status_bar_names_the_model_without_nested_parentheses(qtbot, model_dir):
    from app.status_bar import WindowStatusBar
    from core.model.handle import ModelHandle

    info = ModelHandle(model_dir, "cpu").info()  # the bundled model: "trained (IHDA-style …)"
    bar = WindowStatusBar()
    qtbot.addWidget(bar)
    bar.show_model(info)
    text = bar.model_label.text()
    assert text == f"Model: {info.name} (trained)"
    tooltip = bar.model_label.toolTip().splitlines()
    assert tooltip[0] == info.name and tooltip[1] == "trained: IHDA-style sketch/photo co-training"
    assert f"sha256: {info.sha256}" in tooltip and not any("{" in line for line in tooltip)  # no dumped dicts
