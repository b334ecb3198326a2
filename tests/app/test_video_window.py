"""File → Import video… in the window: progress and the summary, the video in the gallery panel,
a candidate card and the comparison view that say where the crop was seen, "Open at this time",
re-scan and removal per video."""

from __future__ import annotations

import pytest
from app_helpers import draw_figure_strokes, wait_for_results
from PySide6.QtWidgets import QFileDialog, QInputDialog

from tests.video_clips import people_photos, walking_frames, write_clip


@pytest.fixture
def bundled_workspace(tmp_path, model_dir):
    from core.workspace import Workspace

    workspace = Workspace(tmp_path / "data", model_dir, "cpu")
    yield workspace
    workspace.close()


def test_a_video_imported_from_the_menu_shows_where_each_candidate_was_seen(
    qtbot, make_window, bundled_workspace, tmp_path, monkeypatch
):
    from app.candidates_model import THUMB_SIZE
    from app.video_import import VideoImportDialog

    clip = write_clip(tmp_path / "walker.mp4", walking_frames(people_photos(1), seconds=6))
    window = make_window(bundled_workspace)
    qtbot.waitUntil(lambda: window.menus.import_video_action.isEnabled(), timeout=30000)
    asked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: asked.append(a) or ([str(clip)], ""))
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *a, **k: (2.0, True))
    assert window.menus.import_video_action in window.menuBar().actions()[0].menu().actions()  # File menu
    window.menus.import_video_action.trigger()
    assert "Videos (*.mp4" in asked[0][3]
    dialog = window.gallery_jobs.job_dialog
    assert isinstance(dialog, VideoImportDialog)
    qtbot.waitUntil(lambda: not dialog.running(), timeout=120000)
    (summary,) = dialog.summary
    assert summary.added == 1 and summary.frames_sampled == 12
    assert "1 person crop(s) added from 12 frame(s) of 1 video(s)" in dialog.counts.text()
    dialog.close()

    tree = window.gallery.tree
    qtbot.waitUntil(lambda: tree.topLevelItemCount() == 1 and tree.topLevelItem(0).text(1) == "1", timeout=10000)
    assert tree.topLevelItem(0).text(0) == str(clip)  # listed per video, as a folder is

    draw_figure_strokes(qtbot, window.canvas)
    wait_for_results(qtbot, window, 1)
    candidate = window.candidates.candidate(0)
    source = candidate.video
    assert source is not None and source.video_path == str(clip)
    card = window.candidates.data(window.candidates.index(0))
    assert card.splitlines()[-1] == f"{source.time_text} · walker.mp4"
    photo_id = candidate.photo_id
    window.thumbnails.get(photo_id)
    qtbot.waitUntil(lambda: photo_id in window.thumbnails._pixmaps, timeout=10000)
    assert window.thumbnails.get(photo_id).size() == THUMB_SIZE  # the crop with its frame under it

    comparison = window.open_comparison(0)
    qtbot.waitUntil(lambda: comparison.video_box.isVisible(), timeout=10000)
    assert not comparison.video_box.frame.pixmap().isNull()
    assert f"at <b>{source.time_text}</b> (frame {source.frame_index})" in comparison.video_box.about.text()
    frame = comparison.video_box.open_frame()
    assert frame.windowTitle() == f"walker.mp4 at {source.time_text}"
    assert frame.image.size().toTuple() == source.frame_size
    x0, y0, x1, y1 = source.box
    assert frame.image.pixelColor(x0, (y0 + y1) // 2).red() > 200  # the box is drawn on the frame
    frame.close()
    comparison.close()

    window.gallery.rescanRequested.emit(str(clip))  # re-scan: the video is known, nothing changes
    again = window.gallery_jobs.job_dialog
    assert isinstance(again, VideoImportDialog)
    qtbot.waitUntil(lambda: not again.running(), timeout=60000)
    assert again.summary[0].status == "unchanged" and "1 imported before" in again.counts.text()
    again.close()

    window.gallery_jobs.remove_folder(str(clip))
    qtbot.waitUntil(lambda: tree.topLevelItemCount() == 0, timeout=10000)
    assert bundled_workspace.catalogue.count_photos() == 0


def test_the_video_dialog_opens_where_the_last_video_was_chosen_and_a_read_only_window_refuses_it(
    qtbot, make_window, open_workspace, settings, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app.settings import PHOTO_FOLDERS, last_folder

    camera = tmp_path / "camera-7"
    camera.mkdir()
    clip = camera / "walker.mp4"
    clip.write_bytes(b"not read: the refusal comes first")
    data = tmp_path / "data"
    first = make_window(open_workspace(data))
    qtbot.waitUntil(lambda: first.menus.import_video_action.isEnabled(), timeout=30000)
    asked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: asked.append(a[2]) or ([str(clip)], ""))
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *a, **k: (2.0, False))  # the rate not given: no import
    first.menus.import_video_action.trigger()
    first.menus.import_video_action.trigger()
    assert asked[0] != str(camera) and asked[1] == str(camera)  # the folder the last video came from
    assert last_folder(settings, PHOTO_FOLDERS) != str(camera)  # photo folders keep their own
    assert first.gallery_jobs.job_dialog is None

    def boxes_saying(fragment: str) -> list[QMessageBox]:
        return [
            w
            for w in QApplication.topLevelWidgets()
            if isinstance(w, QMessageBox) and w.isVisible() and fragment in w.text()
        ]

    second = make_window(open_workspace(data))  # the gallery held by the first window: read-only
    qtbot.waitUntil(lambda: bool(boxes_saying("read-only")), timeout=10000)
    boxes_saying("read-only")[0].close()
    qtbot.waitUntil(lambda: second.menus.import_video_action.isEnabled(), timeout=30000)
    second.menus.import_video_action.trigger()
    qtbot.waitUntil(lambda: bool(boxes_saying("refuses imports")), timeout=10000)
    boxes_saying("refuses imports")[0].close()
    assert len(asked) == 2  # refused before a file is asked for
    assert second.gallery_jobs.start_video_import([clip]) is None
    qtbot.waitUntil(lambda: bool(boxes_saying("refuses imports")), timeout=10000)
    boxes_saying("refuses imports")[0].close()
    assert second.gallery_jobs.job_dialog is None and second.workspace.catalogue.count_photos() == 0
