"""The operator set in the window's Settings is the data folder's: the command line reads it too."""

from __future__ import annotations


def test_the_operator_set_in_settings_is_the_data_folder_s_for_the_command_line_too(
    qtbot, make_window, own_gallery_workspace
):
    from PySide6.QtCore import QTimer

    from core.common.operator import os_account, resolve_operator

    workspace = own_gallery_workspace
    window = make_window(workspace)
    assert workspace.desk.operator == os_account()  # nothing stored yet

    def set_and_accept() -> None:
        dialog = window._settings_dialog
        if dialog is None or not dialog.isVisible():
            QTimer.singleShot(20, set_and_accept)
            return
        assert dialog.operator.text() == os_account()
        dialog.operator.setText("  J. Smith ")
        dialog.accept()

    QTimer.singleShot(0, set_and_accept)
    window.edit_settings()
    qtbot.waitUntil(lambda: workspace.casework.last_event("operator set") is not None, timeout=10000)
    assert workspace.desk.operator == "J. Smith"
    assert resolve_operator(workspace.data_dir).name == "J. Smith"  # what a command on this folder reads
    entry = workspace.casework.last_event("operator set")
    assert (entry.operator, entry.payload["os_account"]) == ("J. Smith", os_account())
