"""The status bar's button for an adaptation that is alive (running, or ended with its window not
closed yet): how far it got and the time left; a click shows its window. Light on purpose: the
window builds it at start, before anything of the training is loaded."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton, QWidget


class AdaptIndicator(QPushButton):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFlat(True)
        self.setCursor(Qt.PointingHandCursor)
        self.setToolTip("Show the adaptation's window")
        self.hide()

    def show_run(self, run) -> None:
        """``run``: an AdaptRun, or None once there is none to show."""
        if run is None:
            self.hide()
            return
        self.setText(run.summary())
        self.show()
