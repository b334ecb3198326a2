"""What the main window's controllers share: the dialogs they open sit over the window, and what
they have to tell the user goes out as signals the window shows (a status line, a message box), so
that no controller holds the window itself."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget


class WindowController(QObject):
    message = Signal(str, int)  # status bar text, milliseconds shown (0: until the next message)
    alert = Signal(str, str)  # message, title: a message box that does not block
    failed = Signal(str)  # a failure said in the status bar only

    def __init__(self, dialog_parent: QWidget):
        super().__init__(dialog_parent)
        self.dialog_parent = dialog_parent
        self.workspace = None

    def set_workspace(self, workspace) -> None:
        self.workspace = workspace
