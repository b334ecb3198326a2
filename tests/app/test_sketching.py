"""The canvas and the live search: strokes drawn with the mouse reach the search and fill the grid;
undo/redo; save and reopen; an imported scan becomes the background; stale results are dropped."""

from __future__ import annotations

import numpy as np
from app_helpers import GALLERY_SIZE, draw_figure_strokes, draw_stroke, wait_for_results
from PIL import Image, ImageDraw
from PySide6.QtCore import QPointF, Qt


def test_strokes_drawn_with_the_mouse_fill_the_candidate_grid(qtbot, window):
    assert window.candidates.rowCount() == 0
    draw_figure_strokes(qtbot, window.canvas)
    assert len(window.document.strokes) == 2
    wait_for_results(qtbot, window, GALLERY_SIZE)

    candidates = window.candidates.candidates
    assert [c.rank for c in candidates] == list(range(1, GALLERY_SIZE + 1))
    scores = [c.score for c in candidates]
    assert scores == sorted(scores, reverse=True)
    first = window.candidates.index(0)
    assert window.candidates.data(first).startswith("#1 · score ")
    photo_id = candidates[0].photo_id
    qtbot.waitUntil(lambda: photo_id in window.thumbnails._pixmaps, timeout=10000)  # decoded off the GUI thread
    assert "candidate" in window.grid.search_state.text()


def test_query_image_holds_the_strokes(qtbot, window):
    draw_stroke(qtbot, window.canvas, [(100, 100), (140, 300)])
    pixels = window.document.to_array()
    assert pixels.dtype == np.uint8 and pixels.shape == (window.document.height, window.document.width, 3)
    assert pixels.min() == 0 and pixels.max() == 255  # black ink on white paper


def test_undo_and_redo_with_the_keyboard(qtbot, window):
    draw_figure_strokes(qtbot, window.canvas)
    assert len(window.document.strokes) == 2
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key_Z, Qt.ControlModifier)
    assert len(window.document.strokes) == 1
    qtbot.keyClick(window.canvas, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert len(window.document.strokes) == 2
    window.menus.clear_action.trigger()
    assert window.document.is_empty()
    window.menus.undo_action.trigger()
    assert len(window.document.strokes) == 2
    wait_for_results(qtbot, window, GALLERY_SIZE)  # undo searches again


def test_eraser_removes_ink_but_not_the_paper(qtbot, window):
    draw_stroke(qtbot, window.canvas, [(60, 200), (220, 200)])
    window.canvas.set_tool("eraser")
    window.canvas.set_pen_width(40)
    draw_stroke(qtbot, window.canvas, [(60, 200), (220, 200)])
    assert window.document.strokes[-1].eraser
    assert window.document.to_array().min() > 200  # the ink is gone, the paper is white


def test_pen_size_keys_and_zoom(qtbot, window):
    window.canvas.setFocus()
    width = window.canvas.pen_width
    qtbot.keyClick(window.canvas, Qt.Key_BracketRight)
    assert window.canvas.pen_width > width
    qtbot.keyClick(window.canvas, Qt.Key_BracketLeft)
    qtbot.keyClick(window.canvas, Qt.Key_BracketLeft)
    assert window.canvas.pen_width < width
    zoom = window.canvas.zoom()
    window.canvas.zoom_by(2.0, QPointF(50, 50))
    assert window.canvas.zoom() == zoom * 2
    anchor = window.canvas.to_document(QPointF(50, 50))
    window.canvas.pan_by(10, 0)
    assert window.canvas.to_document(QPointF(60, 50)) == anchor


def test_tablet_pressure_sets_the_line_width(qtbot, window):
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtGui import QPointingDevice, QTabletEvent
    from PySide6.QtWidgets import QApplication

    canvas = window.canvas
    device = QPointingDevice.primaryPointingDevice()
    for kind, x, pressure in (
        (QEvent.TabletPress, 80, 0.2),
        (QEvent.TabletMove, 120, 0.6),
        (QEvent.TabletMove, 160, 1.0),
        (QEvent.TabletRelease, 160, 0.0),
    ):
        point = QPointF(x, 200)
        buttons = Qt.NoButton if kind == QEvent.TabletRelease else Qt.LeftButton
        event = QTabletEvent(
            kind,
            device,
            point,
            canvas.mapToGlobal(point),
            pressure,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            Qt.NoModifier,
            Qt.LeftButton,
            buttons,
        )
        QApplication.sendEvent(canvas, event)
    stroke = window.document.strokes[-1]
    assert [round(p, 1) for _, _, p in stroke.points[:3]] == [0.2, 0.6, 1.0]


def test_save_and_reopen_a_sketch(qtbot, window, tmp_path):
    draw_figure_strokes(qtbot, window.canvas)
    before = window.document.to_array()
    strokes = [s.to_json() for s in window.document.strokes]
    assert window.sketch_files.save_sketch(tmp_path / "suspect.json")
    assert (tmp_path / "suspect.json").is_file() and (tmp_path / "suspect.png").is_file()
    assert {(p.name, p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {
        ("suspect.json", 0o600),
        ("suspect.png", 0o600),
    }  # private, and no temporary file left beside them
    window.menus.clear_action.trigger()
    assert window.document.is_empty()

    assert window.sketch_files.open_sketch(tmp_path / "suspect.png")  # the picture's vectors beside it are found
    assert [s.to_json() for s in window.document.strokes] == strokes
    assert np.array_equal(window.document.to_array(), before)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "suspect.png").convert("RGB")), before)


def test_opening_a_broken_sketch_shows_a_message(qtbot, window, tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    assert not window.sketch_files.open_sketch(tmp_path / "broken.json")
    assert "broken.json" in window.last_error and "cannot open the sketch" in window.last_error


def test_imported_scan_becomes_the_background(qtbot, window, tmp_path):
    # a grey, low-contrast "photo of paper" with a figure in the middle and wide margins
    page = Image.new("L", (600, 800), 170)
    draw = ImageDraw.Draw(page)
    draw.ellipse([260, 200, 340, 280], outline=110, width=6)
    draw.rectangle([240, 280, 360, 480], outline=110, width=6)
    draw.line([270, 480, 260, 620], fill=110, width=6)
    page.save(tmp_path / "scan.jpg")

    window.sketch_files.import_scan(tmp_path / "scan.jpg")
    qtbot.waitUntil(lambda: window.document.background is not None, timeout=10000)
    background = window.document.background
    height, width = background.shape
    assert width < 300 * 2 and height < 600 * 2  # cropped to the drawing (then enlarged at most 2x)
    assert background.min() < 30 and background.max() == 255  # auto-contrast
    assert (window.document.width, window.document.height) == (width, height)
    draw_stroke(qtbot, window.canvas, [(100, 100), (120, 160)])  # drawing over it
    assert len(window.document.strokes) == 1 and window.document.background is not None
    wait_for_results(qtbot, window, GALLERY_SIZE)


def test_a_stale_result_never_overwrites_a_newer_one(qtbot, window):
    shown = []
    window.live.results.connect(lambda request, candidates: shown.append(request))
    draw_stroke(qtbot, window.canvas, [(100, 100), (140, 300)])
    window.live.search_now()  # no debounce: request A is in flight ...
    draw_stroke(qtbot, window.canvas, [(150, 100), (180, 300)])
    window.live.search_now()  # ... when request B is made
    latest = window.live._latest
    wait_for_results(qtbot, window)
    qtbot.wait(100)
    assert shown == [latest]


def test_searches_wait_for_the_workspace_and_errors_reach_the_user(qtbot, make_window, gallery_workspace):
    window = make_window(gallery_workspace)
    window.live.set_workspace(None)
    draw_stroke(qtbot, window.canvas, [(100, 100), (140, 300)])
    qtbot.wait(400)
    assert window.candidates.rowCount() == 0  # nothing to search with yet, nothing frozen either
    window.live.set_workspace(gallery_workspace)
    wait_for_results(qtbot, window, GALLERY_SIZE)

    window.live.where = {"no_such_attribute": "x"}
    window.live.rerank()
    qtbot.waitUntil(lambda: "no_such_attribute" in window.last_error, timeout=10000)
    assert window.grid.search_state.text() == "Search failed"
