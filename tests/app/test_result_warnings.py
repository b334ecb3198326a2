"""The window says what a result cannot: a candidate whose file is gone or changed since import is
marked on its card, and a gallery with nothing to search says so instead of an empty grid."""

from __future__ import annotations

from app_helpers import draw_figure_strokes, wait_for_results
from PySide6.QtCore import Qt

from tests.conftest import draw_person


def test_a_candidate_whose_file_is_gone_or_changed_is_marked(
    qtbot, make_window, make_photos, inference_model, tmp_path
):
    from core.workspace import Workspace

    photos = make_photos(3)
    with Workspace(tmp_path / "data", model=inference_model) as workspace:
        workspace.import_paths([photos[0].parent])
        photos[0].unlink()
        draw_person(321).save(photos[1], quality=90)
        window = make_window(workspace)
        draw_figure_strokes(qtbot, window.canvas)
        wait_for_results(qtbot, window, 3)
        cards = {}
        for row in range(3):
            index = window.candidates.index(row)
            cards[window.candidates.candidate(row).path] = (
                window.candidates.data(index),
                window.candidates.data(index, Qt.ToolTipRole),
            )
        assert "file missing since import" in cards[str(photos[0])][0]
        assert "file missing since import" in cards[str(photos[0])][1]
        assert "file changed since import" in cards[str(photos[1])][0]
        assert "since import" not in cards[str(photos[2])][0]
        window.document.undo_stack.setClean()  # the test's drawing is not work to save
        window.close()


def test_an_empty_gallery_says_there_is_nothing_to_search(qtbot, make_window, inference_model, tmp_path):
    from core.workspace import Workspace

    with Workspace(tmp_path / "empty", model=inference_model) as workspace:
        window = make_window(workspace)
        draw_figure_strokes(qtbot, window.canvas)
        qtbot.waitUntil(lambda: "Nothing to search" in window.grid.search_state.text(), timeout=30000)
        assert "no photos" in window.grid.search_state.text()
        window.document.undo_stack.setClean()  # the test's drawing is not work to save
        window.close()


def test_the_warnings_recorded_on_a_query_are_shown_with_where_their_measure_comes_from(
    qtbot, make_window, own_gallery_workspace, gallery_dir
):
    window = make_window(own_gallery_workspace)
    photo = sorted(gallery_dir.glob("*.jpg"))[0]  # a gallery photo, imported as if it were a scanned sketch
    window.sketch_files.import_scan(photo)
    qtbot.waitUntil(lambda: window.recorder.current_search_id() is not None, timeout=30000)
    search_id = window.recorder.current_search_id()
    recorded = own_gallery_workspace.casework.search(search_id).latest.query_warnings
    heads = [w.split(":")[0] for w in recorded]
    assert heads == ["The query looks like a photo, not a drawing", "The query is a gallery photo"]

    shown = window.grid.query_warning
    qtbot.waitUntil(shown.isVisible, timeout=10000)
    assert shown.text().splitlines() == recorded  # as recorded, word for word
    tooltip = shown.toolTip()
    assert f"recorded with search {search_id}" in tooltip.lower()
    assert "benchmarks/results/query-check.md" in tooltip  # where the colour measure's threshold comes from
    assert "sha256" in tooltip and "catalogued at import" in tooltip

    window.document.clear()  # no query: no warning about it
    qtbot.waitUntil(lambda: not shown.isVisible(), timeout=10000)
