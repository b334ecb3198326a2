"""One gallery, two SketchSearch processes: a second window says at once that another holds the
gallery and refuses to change it, and a refusal is read whole (a dialog, a wrapped label)."""

from __future__ import annotations

from filelock import FileLock
from PySide6.QtWidgets import QApplication, QMessageBox


def shown_boxes() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]


def box_saying(qtbot, fragment: str) -> QMessageBox:
    qtbot.waitUntil(lambda: any(fragment in box.text() for box in shown_boxes()), timeout=10000)
    return next(box for box in shown_boxes() if fragment in box.text())


def test_a_second_window_on_the_gallery_warns_once_and_refuses_to_change_it(
    qtbot, make_window, open_workspace, tmp_path
):
    from app.self_test import write_figures

    folder = tmp_path / "photos"
    write_figures(folder, 2)
    data = tmp_path / "data"
    first = make_window(open_workspace(data))
    assert not first.gallery_jobs.refusal and not shown_boxes()  # the first window holds the gallery

    second = make_window(open_workspace(data))  # as another process would open it
    warning = box_saying(qtbot, "Another SketchSearch window has this gallery open")
    assert str(data) in warning.text() and "read-only" in warning.text()
    assert len(shown_boxes()) == 1  # one dialog at start
    qtbot.waitUntil(lambda: "read-only" in second.status_bar.gallery_label.text(), timeout=10000)
    assert second.status_bar.fits(second.status_bar.currentMessage())  # no line cut off beside the box
    warning.close()

    assert second.gallery_jobs.start_import([folder]) is None  # refused, whole, in a dialog
    refusal = box_saying(qtbot, "refuses imports")
    assert refusal.text() == second.gallery_jobs.refusal and refusal.text().endswith(".")
    refusal.close()
    second.gallery_jobs.prune_missing()
    box_saying(qtbot, "refuses imports").close()
    assert second.workspace.catalogue.count_photos() == 0

    dialog = first.gallery_jobs.start_import([folder])  # the first window imports as before
    qtbot.waitUntil(lambda: not dialog.running(), timeout=60000)
    assert dialog.summary.added == 2
    dialog.close()


def test_an_import_running_elsewhere_is_said_at_start_and_its_refusal_is_read_whole(
    qtbot, make_window, open_workspace, tmp_path
):
    from app.self_test import write_figures

    folder = tmp_path / "photos"
    write_figures(folder, 2)
    data = tmp_path / "data"
    workspace = open_workspace(data)
    with FileLock(data / "import.lock"):  # what an import run from the command line holds
        window = make_window(workspace)
        box_saying(qtbot, "is importing into this gallery").close()
        dialog = window.gallery_jobs.start_import([folder])
        qtbot.waitUntil(lambda: not dialog.running(), timeout=60000)
    refusal = dialog.counts
    assert "another import is running on this gallery; run this again when it has finished" in refusal.text()
    assert refusal.wordWrap()  # never cut off at the dialog's edge
    assert dialog.progress.text() == "Not started"
    assert refusal.heightForWidth(refusal.width()) <= refusal.height()
    dialog.close()
