"""The comparison view: Next after a correction that takes the photo out of the filtered ranking,
labels and hashes shown whole, and the region map of the sketch and the photo."""

from __future__ import annotations

from app_helpers import GALLERY_SIZE, draw_figure_strokes, wait_for_results
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel


def _wait_loaded(qtbot, dialog, photo_id: int) -> None:
    qtbot.waitUntil(lambda: dialog.record is not None and dialog.record.id == photo_id, timeout=10000)


def test_next_after_a_correction_drops_the_photo_from_the_filter_shows_the_one_after_it(
    qtbot, make_window, own_gallery_workspace
):
    workspace = own_gallery_workspace
    for photo_id in workspace.photo_ids().tolist():
        workspace.gallery.set_attribute(photo_id, "gender", "female")
    window = make_window(workspace)
    draw_figure_strokes(qtbot, window.canvas)
    wait_for_results(qtbot, window, GALLERY_SIZE)
    window.filters.set_filter("gender", "female")
    wait_for_results(qtbot, window, GALLERY_SIZE)
    ranked = [c.photo_id for c in window.candidates.candidates]

    dialog = window.open_comparison(2)
    _wait_loaded(qtbot, dialog, ranked[2])
    combo = dialog.attribute_combos["gender"]
    combo.setCurrentIndex(combo.findData("male"))
    qtbot.mouseClick(dialog.save_button, Qt.LeftButton)
    wait_for_results(qtbot, window, GALLERY_SIZE - 1)  # the corrected photo left the filtered ranking
    assert ranked[2] not in [c.photo_id for c in window.candidates.candidates]

    qtbot.mouseClick(dialog.next_button, Qt.LeftButton)
    _wait_loaded(qtbot, dialog, ranked[3])  # the one after it, not the one after that
    qtbot.mouseClick(dialog.previous_button, Qt.LeftButton)
    _wait_loaded(qtbot, dialog, ranked[1])
    dialog.close()


def test_attribute_names_provenance_and_hash_are_shown_whole(qtbot, make_window, own_gallery_workspace):
    workspace = own_gallery_workspace
    photo_id = workspace.photo_ids().tolist()[0]
    values = {spec.name: spec.values[-1] for spec in workspace.schema.attributes}
    workspace.gallery.set_attributes_by_hand(
        photo_id, values, operator="Detective Sergeant Marguerite Lefebvre-Okonkwo"
    )
    window = make_window(workspace)
    draw_figure_strokes(qtbot, window.canvas)
    wait_for_results(qtbot, window, GALLERY_SIZE)
    row = next(i for i, c in enumerate(window.candidates.candidates) if c.photo_id == photo_id)
    dialog = window.open_comparison(row)
    _wait_loaded(qtbot, dialog, photo_id)
    qtbot.wait(50)  # one layout pass

    form = dialog.attribute_form
    names = [form.itemAt(i, QFormLayout.LabelRole) for i in range(form.rowCount())]
    names = [item.widget() for item in names if item is not None and isinstance(item.widget(), QLabel)]
    assert len(names) == len(values)
    for label in names:  # on screen, not only laid out: a scrolled-off or squeezed part is cut
        assert label.visibleRegion().boundingRect().width() >= label.sizeHint().width(), f"'{label.text()}' is cut"
    for name, origin in dialog.attribute_labels.items():
        assert "Lefebvre-Okonkwo" in origin.text()
        shown = origin.visibleRegion().boundingRect()
        assert shown.width() == origin.width() and shown.height() >= origin.heightForWidth(origin.width()), name
    sha = dialog.sha_label
    assert sha.text() == dialog.record.sha256
    advance = sha.fontMetrics().horizontalAdvance(sha.text())
    assert advance <= sha.contentsRect().width(), "the sha256 is cut off"
    assert sha.visibleRegion().boundingRect().width() >= advance, "the sha256 is cut off"
    dialog.close()


def test_the_region_map_tints_each_region_of_sketch_and_photo_by_core_s_figures(
    qtbot, make_window, tmp_path, model_dir, gallery_dir
):
    from app.region_overlay import TINT_ALPHA, tint_colour
    from core.model.regions import REGION_AID
    from core.workspace import Workspace

    workspace = Workspace(tmp_path / "data", model_dir=model_dir)  # the shipped model pools a grid of regions
    assert workspace.import_paths([gallery_dir]).added == GALLERY_SIZE
    window = make_window(workspace)
    draw_figure_strokes(qtbot, window.canvas)
    wait_for_results(qtbot, window, GALLERY_SIZE)
    dialog = window.open_comparison(0)
    candidate = window.candidates.candidate(0)
    _wait_loaded(qtbot, dialog, candidate.photo_id)
    assert dialog.photo_view.overlay.cells == [] and not dialog.legend.isVisible()

    dialog.regions_button.setChecked(True)
    qtbot.waitUntil(lambda: dialog.region_similarity() is not None, timeout=20000)
    similarity = dialog.region_similarity()
    expected = workspace.regions.for_pixels(window.document.to_array(), [candidate.photo_id])
    assert similarity == expected.by_photo[candidate.photo_id].similarity  # core's figures, drawn as they are
    assert abs(similarity.score - candidate.score) < 1e-3  # the regions add up to the score shown
    manifest = workspace.manifest
    assert (similarity.rows, similarity.columns) == (manifest.parts, manifest.part_columns)
    for view in (dialog.sketch_view, dialog.photo_view):
        cells = view.overlay.cells
        assert len(cells) == similarity.rows * similarity.columns
        for i, cell in enumerate(cells):
            colour = cell.brush().color()
            assert colour == tint_colour(similarity.cells[i // similarity.columns][i % similarity.columns])
            assert colour.alpha() == TINT_ALPHA
        picture = view.item.boundingRect()
        assert cells[-1].rect().bottomRight() == picture.bottomRight()  # the grid covers the picture
    config = manifest.preprocess[next(iter(manifest.preprocess))]
    shown = dialog.sketch_view.item.pixmap()
    assert (shown.width(), shown.height()) == (config.width, config.height)  # the sketch as the model is given it
    assert dialog.legend.isVisible() and REGION_AID in dialog.legend.aid.text()
    assert manifest.name in dialog.legend.source.text() and "stored photo embedding" in dialog.legend.source.text()

    qtbot.mouseClick(dialog.next_button, Qt.LeftButton)  # the map follows the photo
    _wait_loaded(qtbot, dialog, window.candidates.candidate(1).photo_id)
    qtbot.waitUntil(lambda: dialog.region_similarity() is not None, timeout=20000)
    assert dialog.region_similarity() != similarity
    dialog.regions_button.setChecked(False)
    assert dialog.photo_view.overlay.cells == [] and dialog.sketch_view.overlay.cells == []
    dialog.close()
    window.document.undo_stack.setClean()  # the test's drawing is not work to save
    window.close()
    workspace.close()
