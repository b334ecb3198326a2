"""The window opens its workspace in the background, and says so when it cannot; preferences
persist in QSettings."""

from __future__ import annotations

from html import escape

from app_helpers import draw_stroke


def test_a_gallery_that_cannot_be_opened_is_reported_and_the_window_keeps_working(qtbot, settings, tmp_path):
    from app.main_window import LaunchOptions, MainWindow

    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data folder should be")
    window = MainWindow(LaunchOptions(data_dir=not_a_folder, device="cpu"), settings)
    qtbot.addWidget(window)
    window.show()
    assert window.status_bar.model_label.text() == "Loading model…"  # the window is up before the model
    draw_stroke(qtbot, window.canvas, [(100, 100), (140, 300)])  # drawing works meanwhile
    qtbot.waitUntil(lambda: bool(window.last_error), timeout=60000)
    assert str(not_a_folder) in window.last_error and "could not be opened" in window.last_error
    assert window.workspace is None and window.status_bar.model_label.text() == "No model loaded"
    assert not window.menus.import_folder_action.isEnabled()
    window.document.undo_stack.setClean()  # the test's stroke is not work to save
    window.close()


def test_preferences_round_trip(settings):
    from app.settings import Preferences

    assert Preferences.load(settings) == Preferences()
    Preferences("/some/where", "cpu", 25, 7).save(settings)
    assert Preferences.load(settings) == Preferences("/some/where", "cpu", 25, 7)
    settings.setValue("device", "quantum")
    settings.setValue("top_k", "many")
    settings.setValue("report_top", "all")
    assert Preferences.load(settings) == Preferences("/some/where", "auto", 50, 10)


def test_top_k_is_remembered(qtbot, window, settings):
    window.grid.top_k.setValue(7)
    window.close()
    assert int(settings.value("top_k")) == 7


def test_about_box_names_the_model_and_the_terms_it_may_be_used_on(qtbot, window, gallery_workspace):
    info = gallery_workspace.models.info()
    assert info.licence and info.data_terms  # from the manifest
    box = window.show_about()
    qtbot.waitUntil(box.isVisible)
    text = box.text()
    assert info.name in text and info.sha256 in text
    assert escape(info.licence) in text and escape(info.data_terms) in text
    assert "investigative leads" in text
    box.close()
